"""The worker: its intakes and the journal's maintenance around one Importer, until shut down.

For weeks-long runs the journal is compacted every ``compact_interval`` seconds, forgetting rows
settled more than ``retention_days`` ago. Several workers may share one journal: each store is
driven by the one holding its lease, and a worker adopts the stores of one that died.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import anyio

from async_refimport._application import with_region
from async_refimport._log import get_logger
from async_refimport._metrics import WorkerMetrics
from async_refimport.engine.importer import Importer
from async_refimport.journal.sqlite import default_journal_path
from async_refimport.worker.config import WorkerConfig
from async_refimport.worker.intake import Intake, IntakeContext, IntakeFactory, intakes_for

log = get_logger(__name__)

DAY = 86_400.0


class Worker:
    """Runs intakes and the maintenance around one Importer until :meth:`shutdown`.

    Args:
        config: The worker's settings.
        intakes: How to build each intake (default: those ``config`` asks for); each runs in the
            worker's task group for as long as the worker does.
    """

    def __init__(
        self, config: WorkerConfig, intakes: Sequence[IntakeFactory] | None = None
    ) -> None:
        self.config = config
        self.metrics = WorkerMetrics()
        self.importer: Importer | None = None
        self.intakes: list[Intake] = []
        self._factories = list(intakes_for(config) if intakes is None else intakes)
        self._stopping = False
        self._stop = anyio.Event()
        #: The worker's start-up line (intakes' keys, journal, pid), once it takes work.
        self.announced: dict[str, Any] = {}

    def ready(self) -> bool:
        """Whether the worker takes work now (``/readyz``).

        Returns:
            False while it starts or stops, while a store cannot be used as set up or the
            journal cannot be written (the log says why), or while an intake is not ready.
        """
        imp = self.importer
        if self._stopping or imp is None or imp.stopping:
            return False
        if imp.setup_errors:
            # A store cannot be used as set up (its rows wait): fix the set-up; the log says how.
            return False
        if imp.journal_trouble:
            return False  # rows cannot be recorded now (a full disk ...): the log says why
        return all(intake.ready for intake in self.intakes)

    def shutdown(self) -> None:
        """Stop intake and the Importer (the first step of the two-step shutdown)."""
        self._stopping = True
        self._stop.set()

    async def run(self, *, announce: bool = True) -> None:
        """Open the Importer, start every intake, and run until :meth:`shutdown`.

        Args:
            announce: Print the start-up line (one JSON object) on stdout once taking work.

        Raises:
            RefImportError: the journal cannot be opened, an intake cannot start.
            OSError: a port in use, a spool directory that cannot be made.
        """
        cfg = self.config
        journal = cfg.journal or default_journal_path()
        async with Importer(
            journal,
            region=cfg.defaults.region,
            settings=cfg.settings,
            owner=cfg.owner,
        ) as imp:
            self.importer = imp
            ctx = IntakeContext(
                imp, cfg, self.metrics, with_region(cfg.defaults, imp.region), self.ready
            )
            self.intakes = [make(ctx) for make in self._factories]
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.metrics.consume, imp, name="metrics")
                for intake in self.intakes:
                    await tg.start(intake.run)
                tg.start_soon(self._maintain, imp, name="maintenance")
                self._announce(journal, announce)
                await self._stop.wait()
                log.info("worker.stopping")
                imp.stop()
                tg.cancel_scope.cancel()
        log.info("worker.stopped")

    def _announce(self, journal: object, to_stdout: bool) -> None:
        """Say the worker takes work: in the log, and on stdout unless told not to."""
        self.announced = {"http": None, "spool": None}
        for intake in self.intakes:
            self.announced.update(intake.describe())
        self.announced.update(journal=str(journal), pid=os.getpid())
        log.info("worker.ready", **self.announced)
        if to_stdout:
            print(json.dumps(self.announced), flush=True)

    async def _maintain(self, imp: Importer) -> None:
        """Compact the journal now and then, and adopt stores left to this worker, until stopped."""
        cfg = self.config
        next_compact = time.monotonic()
        while not imp.stopping:
            if time.monotonic() >= next_compact:
                await self._compact(imp)
                next_compact = time.monotonic() + cfg.compact_interval
            try:
                await self._adopt(imp)
            except Exception as exc:
                log.warning("worker.rescan_failed", error=str(exc))
            await anyio.sleep(cfg.settings.rescan_interval)

    async def _compact(self, imp: Importer) -> None:
        older_than = time.time() - self.config.retention_days * DAY
        try:
            removed = await imp.compact(older_than)
        except Exception as exc:  # a locked journal: try again next time
            log.warning("journal.compact_failed", error=str(exc))
        else:
            if removed:
                log.info("journal.compacted", rows=removed)

    async def _adopt(self, imp: Importer) -> None:
        # Rows another process queued on the shared journal, or left behind when it died, need
        # a lane here too: it waits for the store's lease and drives the store once it holds it
        # (lanes this process already has rescan the journal by themselves).
        if not imp.stopping:
            for store in await imp.adopt():
                log.info("worker.adopted_store", store_id=store.store_id, region=store.region)
