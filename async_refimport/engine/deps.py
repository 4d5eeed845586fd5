"""What every lane of one Importer shares: :class:`LaneDeps`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from async_refimport._events import Event
from async_refimport._models import StoreRef
from async_refimport.aws.preflight import Preflight
from async_refimport.completion.base import CompletionWatcher
from async_refimport.gateway.base import OmicsGateway, ReferencePage
from async_refimport.journal.base import Journal


@dataclass(slots=True)
class LaneDeps:
    """What every lane shares.

    Attributes:
        journal: The Importer's journal.
        gateway: The HealthOmics seam.
        watcher: Completion detection.
        emit: Sends an event to the Importer's subscribers.
        changed: Tells the Importer a lane's state changed (``drain`` looks again).
        owner: This process's name in store leases.
        clock: Monotonic seconds.
        wall: Epoch seconds.
        sleep: Async sleep.
        preflight: The sources' pre-flight, if any.
        answered: Whether any request to the store has been answered (retried attempts
            included).
        reachable: Told once the store's first call succeeded (its set-up works).
        listed: First pages read just before the lane starts (``Importer.verify_setup``), by
            store key, with when (``clock``): taken instead of a second first call.
    """

    journal: Journal
    gateway: OmicsGateway
    watcher: CompletionWatcher
    emit: Callable[[Event], None]
    changed: Callable[[], None]
    owner: str
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    preflight: Preflight | None = None
    answered: Callable[[StoreRef], bool] = lambda store: False
    reachable: Callable[[StoreRef], None] = lambda store: None
    listed: dict[str, tuple[float, ReferencePage]] = field(default_factory=dict)
