"""What both journals share: the rule on a name journaled from another source, lease owners, and
the error of an item that refimport cannot read."""

from __future__ import annotations

import os
import socket
import unicodedata
import uuid
from enum import StrEnum
from typing import TypeVar

from async_refimport._errors import FieldError, JournalError
from async_refimport._log import get_logger
from async_refimport._models import ImportRequest, RowState, StoreRef, quoted

log = get_logger(__name__)


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


def other_spellings(name: str) -> list[str]:
    """The spellings of ``name`` in the other Unicode normalization forms (NFC, NFD): a name the
    service would take for another, which a user would take for the same.

    Args:
        name: A row's name.

    Returns:
        Those spellings that differ from ``name`` (none for an ASCII name: the common case).
    """
    if name.isascii():
        return []
    forms = (unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name))
    return [form for form in dict.fromkeys(forms) if form != name]


def warn_other_spelling(store: StoreRef, name: str, journaled: str) -> None:
    """Warn that ``name`` is journaled for ``store`` as ``journaled``, in another Unicode
    normalization: the two are imported as two references, which look alike.

    Args:
        store: The row's store.
        name: The new row's name.
        journaled: The name journaled before.
    """
    log.warning(
        "journal.name_normalization",
        store_id=store.store_id,
        name=name,
        form=_form(name),
        journaled_form=_form(journaled),
        note="journaled before in another Unicode normalization: the service keeps both",
    )


def _form(name: str) -> str:
    """The Unicode normalization form ``name`` is in: ``NFC``, ``NFD`` or ``mixed``."""
    for form in ("NFC", "NFD"):
        if unicodedata.is_normalized(form, name):
            return form
    return "mixed"


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


INVALID_ITEM = "InvalidJournalItem"
"""The :attr:`JournalError.code` of an item or row of the journal that no refimport wrote as it
is (a hand edit, another program writing a shared table): the error names it and what is wrong."""

_E = TypeVar("_E", bound=StrEnum)


def invalid_item(where: str, problem: str) -> JournalError:
    """The error of a journal item (a row, a job, a store) that refimport cannot read.

    Args:
        where: The item (``row 5``, ``item ROW#123/ROW``).
        problem: What is wrong with it (``state 'BOGUS' is not one of ...``).

    Returns:
        The error (code :data:`INVALID_ITEM`), which says how to get out of it.
    """
    return JournalError(
        f"{where}: {problem} (was it edited by hand, or written by something else?); "
        "fix or delete it",
        code=INVALID_ITEM,
    )


def enum_of(kind: type[_E], value: object, where: str, field: str) -> _E:
    """``value`` as a member of ``kind`` (a state), or the error naming the item.

    Args:
        kind: The enum (:class:`RowState`, :class:`JobState`).
        value: What the journal holds.
        where: The item, for the error.
        field: The field, for the error.

    Returns:
        The member.

    Raises:
        JournalError: ``value`` is none of them (code :data:`INVALID_ITEM`).
    """
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise invalid_item(where, f"{field} {quoted(str(value))} is not one of {allowed}") from None


def store_of(key: object, where: str) -> StoreRef:
    """The store a journal's store key names, or the error naming the item.

    Args:
        key: The key the journal holds.
        where: The item, for the error.

    Returns:
        The store.

    Raises:
        JournalError: ``key`` is not a store key (code :data:`INVALID_ITEM`).
    """
    try:
        if not isinstance(key, str):
            raise ValueError(key)
        return StoreRef.from_key(key)
    except ValueError:
        raise invalid_item(
            where, f"store key {quoted(str(key))} is not profile|region|endpoint|store id"
        ) from None
