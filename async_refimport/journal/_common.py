"""What both journals share: the rule on a name journaled from another source, and lease owners."""

from __future__ import annotations

import os
import socket
import uuid

from async_refimport._errors import FieldError
from async_refimport._models import ImportRequest, RowState, StoreRef


def source_conflict(
    store: StoreRef, request: ImportRequest, state: str, source_file: str | None
) -> FieldError | None:
    """The problem with journaling ``request`` when its name is journaled for ``store`` already.

    A name is one genome, so another source is refused unless the row failed (a re-run retries
    failures with the new fields).

    Args:
        store: The request's store.
        request: The request.
        state: The journaled row's state.
        source_file: The journaled row's source file.

    Returns:
        The refusal, or ``None`` if the request may be journaled.
    """
    if state == RowState.FAILED or source_file == request.source_file:
        return None
    shown = "present" if state == RowState.ALREADY_PRESENT else str(state).lower()
    return FieldError(
        "source_file",
        f"{request.name!r} is already {shown} in store {store.store_id} from {source_file}",
        row_name=request.name,
    )


def lease_owner_name() -> str:
    """A lease owner's name for this process: ``host:pid:random`` (see :func:`holder_is_gone`).

    Returns:
        A name no other process (of any host) will use.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(owner: str) -> bool:
    """Whether ``owner`` names a process of this host that no longer runs.

    Only a certainty counts: another host's process, a name of another form, or a pid that is
    alive (perhaps reused) all answer False, and the lease is then left to expire.

    Args:
        owner: A lease owner's name (:func:`lease_owner_name`).

    Returns:
        True if the process is certainly gone.
    """
    host, _, rest = owner.partition(":")
    pid, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
