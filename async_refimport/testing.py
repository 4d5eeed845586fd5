"""Helpers for testing code that embeds an :class:`~async_refimport.Importer`, without AWS.

Like :mod:`structlog.testing`, this module is public but meant for tests only: nothing in the
library imports it. It holds:

* :class:`MemoryGateway`, an in-memory HealthOmics at the gateway seam (one running job per
  store, clientToken idempotency, faults on demand);
* :class:`VirtualClock`, a monotonic clock and a ``sleep`` that advances it at once, so hours of
  backoff and polling take no real time;
* :func:`memory_importer`, an open Importer on both and a temporary SQLite journal.

::

    from async_refimport import ImportRequest, RowState
    from async_refimport.testing import memory_importer

    async def test_my_service_imports() -> None:
        async with memory_importer() as run:
            ids = await run.importer.submit([ImportRequest(store, role, "s3://b/x.fa", "x")])
            [result] = await run.importer.wait(ids)
        assert result.state is RowState.IMPORTED
        assert run.gateway.calls["start"] == 1

It speaks no HTTP and checks no FASTA; for those, test against the emulator
(:mod:`async_refimport.emulator`).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.lowlevel

from async_refimport._settings import ImporterSettings
from async_refimport.engine.importer import Importer
from async_refimport.gateway.memory import MemoryGateway, MemoryJob

__all__ = ["ImporterRun", "MemoryGateway", "MemoryJob", "VirtualClock", "memory_importer"]


class VirtualClock:
    """Monotonic seconds that move only when someone sleeps.

    Pass the instance as an Importer's ``clock`` and its :meth:`sleep` as its ``sleep``.

    Attributes:
        now: The current time, in seconds.
        slept: Every second slept so far.
    """

    def __init__(self, start: float = 0.0) -> None:
        """Start the clock.

        Args:
            start: The time it starts at.
        """
        self.now = start
        self.slept = 0.0

    def __call__(self) -> float:
        """The current time.

        Returns:
            :attr:`now`.
        """
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` at once (negative: not at all).

        Still a checkpoint: other tasks run, and cancellation lands.

        Args:
            seconds: How long to "sleep".
        """
        seconds = max(0.0, seconds)
        self.now += seconds
        self.slept += seconds
        await anyio.lowlevel.checkpoint()


@dataclass(frozen=True, slots=True)
class ImporterRun:
    """What :func:`memory_importer` opened.

    Attributes:
        importer: The open Importer.
        gateway: Its in-memory HealthOmics (its ``calls``, ``jobs`` and faults).
        clock: Its virtual clock, or ``None`` when it runs in real time.
        journal_path: Its SQLite journal.
    """

    importer: Importer
    gateway: MemoryGateway
    clock: VirtualClock | None
    journal_path: Path


@asynccontextmanager
async def memory_importer(
    directory: str | Path | None = None,
    *,
    gateway: MemoryGateway | None = None,
    region: str = "us-east-1",
    settings: ImporterSettings | None = None,
    virtual_time: bool = True,
    **options: Any,
) -> AsyncIterator[ImporterRun]:
    """An open :class:`~async_refimport.Importer` on a :class:`MemoryGateway` and a SQLite
    journal, closed on leaving.

    Args:
        directory: Where the journal is written (default: a temporary directory, removed on
            leaving; pass pytest's ``tmp_path`` to keep it for a second Importer).
        gateway: The in-memory HealthOmics (default: a new one).
        region: The Region of requests that name none.
        settings: The Importer's settings (default: the stock ones).
        virtual_time: Run on a :class:`VirtualClock` (backoff and polls cost no real time).
        **options: Other :class:`~async_refimport.Importer` arguments (``owner`` ...).

    Yields:
        The Importer, its gateway, its clock and its journal's path.
    """
    gateway = gateway if gateway is not None else MemoryGateway()
    clock = VirtualClock() if virtual_time else None
    if clock is not None:
        options.update(clock=clock, sleep=clock.sleep)
    with tempfile.TemporaryDirectory(prefix="refimport-test-") as scratch:
        path = Path(directory if directory is not None else scratch) / "journal.sqlite"
        importer = Importer(path, gateway=gateway, region=region, settings=settings, **options)
        async with importer:
            yield ImporterRun(importer, gateway, clock, path)
