"""One lane per reference store: the loop that keeps one store busy with one job at a time.

A lane packs the store's queued rows into jobs of up to ``max_sources_per_job``, writes each job
ahead in the journal, starts it, waits for it through the completion watcher and settles its rows,
then starts the next one at once. On start it first resumes whatever the journal says is unfinished.
It knows the journal and the gateway only through their protocols.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import structlog

from ._errors import (
    CredentialsError,
    LeaseLostError,
    PermanentServiceError,
    ServiceError,
    StoreBookedError,
    StoreBusyError,
    TransientServiceError,
)
from ._events import (
    Event,
    JobFinished,
    JobStarted,
    RequestRetried,
    RowSettled,
    StoreChecked,
    StorePaused,
)
from ._gateway import START, JobSnapshot, OmicsGateway, SourceSpec
from ._journal import JobRecord, Journal, QueuedRow, Settlement
from ._log import get_logger
from ._models import RowState, StoreRef
from ._polling import CompletionWatcher
from ._retry import retrying
from ._settings import ImporterSettings

log = get_logger(__name__)

_LIVE = (None, "ACTIVE")


@dataclass(slots=True)
class LaneDeps:
    """What every lane shares."""

    journal: Journal
    gateway: OmicsGateway
    watcher: CompletionWatcher
    emit: Callable[[Event], None]
    changed: Callable[[], None]
    owner: str
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep


class Lane:
    """Drives one store. ``run`` returns only when cancelled (the Importer owns its task)."""

    def __init__(self, store: StoreRef, deps: LaneDeps, settings: ImporterSettings) -> None:
        self.store = store
        self._deps = deps
        self._settings = settings
        self.idle = False
        self.active_job: str | None = None
        self._wake = anyio.Event()
        self._present: dict[str, str] | None = None
        self._present_at = 0.0
        self._sent_at: float | None = None

    def notify(self) -> None:
        """New rows were queued for this store."""
        self.idle = False
        self._wake.set()

    async def run(self) -> None:
        d = self._deps
        with structlog.contextvars.bound_contextvars(
            store_id=self.store.store_id, region=self.store.region
        ):
            waited = False
            while not await d.journal.acquire_lease(self.store, d.owner, self._settings.lease_ttl):
                # Another process drives the store; take over if its lease lapses (it died).
                (log.debug if waited else log.info)("lane.waiting_for_lease")
                waited = True
                await d.sleep(self._settings.lease_ttl / 3)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._renew_lease)
                    await self._work()
                    tg.cancel_scope.cancel()
            finally:
                with anyio.move_on_after(5, shield=True):
                    await d.journal.release_lease(self.store, d.owner)

    async def _renew_lease(self) -> None:
        d = self._deps
        while True:
            await d.sleep(self._settings.lease_ttl / 3)
            if not await d.journal.acquire_lease(self.store, d.owner, self._settings.lease_ttl):
                # Another process took the store over (we were presumed dead): stop driving it.
                log.error("lane.lease_lost")
                raise LeaseLostError(
                    f"lost the lease on store {self.store}", store_key=self.store.key, owner=d.owner
                )

    async def _work(self) -> None:
        d = self._deps
        for job in await d.journal.unfinished_jobs(self.store):
            log.info("import_job.recovering", job_id=job.job_id, client_token=job.client_token)
            await self._drive(job, recovered=True)
        while True:
            self._wake = anyio.Event()
            rows = await d.journal.queued_rows(self.store, self._settings.max_sources_per_job)
            if not rows:
                self.idle = True
                d.changed()
                # Another process sharing the journal may queue rows for this store too.
                with anyio.move_on_after(self._settings.rescan_interval):
                    await self._wake.wait()
                continue
            self.idle = False
            rows = await self._skip_present(rows)
            if not rows:
                continue
            token = uuid.uuid4().hex
            try:
                job = await d.journal.begin_job(self.store, rows, token, owner=d.owner)
            except StoreBookedError as exc:
                # Another process holds an active job on this store: let it finish first.
                log.warning("import_job.store_booked", error=str(exc))
                await d.sleep(self._settings.busy_wait)
                continue
            await self._drive(job, recovered=False)

    # -- existence ------------------------------------------------------------------------------

    async def _skip_present(self, rows: list[QueuedRow]) -> list[QueuedRow]:
        """Settle rows whose name the store already holds; return the rest."""
        d = self._deps
        if self._present is None:
            present = await self._list_present()
            if present is None:
                return []
            self._present, self._present_at = present, d.clock()
        elif d.clock() - self._present_at > self._settings.existence_ttl:
            try:
                refs = await d.gateway.list_references(self.store)
            except ServiceError as exc:
                # The first listing worked: keep it; names taken since are caught when settling.
                log.warning("store.relist_failed", error=str(exc))
            else:
                self._present = {r.name: r.reference_id for r in refs if r.status in _LIVE}
            self._present_at = d.clock()
        known = self._present
        already = [r for r in rows if r.name in known]
        if already:
            await self._settle_queued(
                [
                    Settlement(
                        r.row_id, RowState.ALREADY_PRESENT, known[r.name], "already in the store"
                    )
                    for r in already
                ]
            )
            d.emit(StoreChecked(self.store, len(already)))
        return [r for r in rows if r.name not in known]

    async def _list_present(self) -> dict[str, str] | None:
        """The store's names at first use; on a permanent error the store's rows fail."""
        d = self._deps
        while True:
            try:
                refs = await d.gateway.list_references(self.store)
            except PermanentServiceError as exc:
                # The store is unusable as configured (no credentials, no access, no such store):
                # fail what waits for it with the reason rather than retrying for ever.
                log.error("store.unusable", error=str(exc))
                await self._fail_queued(f"{exc.code}: {exc.message}")
                return None
            except TransientServiceError as exc:
                log.warning("store.list_failed", error=str(exc))
                await d.sleep(self._settings.busy_wait)
                continue
            log.info("store.checked", references=len(refs))
            return {r.name: r.reference_id for r in refs if r.status in _LIVE}

    async def _fail_queued(self, message: str) -> None:
        d = self._deps
        while rows := await d.journal.queued_rows(self.store, 1000):
            await self._settle_queued(
                [Settlement(r.row_id, RowState.FAILED, None, message) for r in rows]
            )

    async def _settle_queued(self, settlements: list[Settlement]) -> None:
        d = self._deps
        await d.journal.settle_queued(settlements, store=self.store, owner=d.owner)
        for result in await d.journal.results([s.row_id for s in settlements]):
            d.emit(RowSettled(result))

    # -- one job --------------------------------------------------------------------------------

    async def _drive(self, job: JobRecord, *, recovered: bool) -> None:
        d = self._deps
        with structlog.contextvars.bound_contextvars(client_token=job.client_token):
            if job.job_id is None:
                started_job = await self._start(job, maybe_sent=recovered)
                if started_job is None:
                    return
                job = started_job
            assert job.job_id is not None
            with structlog.contextvars.bound_contextvars(job_id=job.job_id):
                if recovered and job.started_at is not None:
                    started = d.clock() - max(0.0, d.wall() - job.started_at)
                elif self._sent_at is not None:
                    started = self._sent_at
                else:
                    started = d.clock()
                self._sent_at = None
                self.active_job = job.job_id
                d.emit(
                    JobStarted(
                        self.store, job.job_id, job.client_token, len(job.rows), d.wall(), recovered
                    )
                )
                log.info("import_job.started", sources=len(job.rows), recovered=recovered)
                try:
                    snapshot = await self._watch(job, started)
                finally:
                    self.active_job = None
                if snapshot is None:
                    log.error("import_job.lost")
                    await self._finish(
                        job,
                        [],
                        requeue=[r.row_id for r in job.rows],
                        status="LOST",
                        message="the service no longer knows the import job",
                    )
                    return
                await self._settle(job, snapshot)

    async def _watch(self, job: JobRecord, started: float) -> JobSnapshot | None:
        """The job's final snapshot; None when the service says it does not exist (404)."""
        d = self._deps
        assert job.job_id is not None
        while True:
            try:
                return await d.watcher.wait(self.store, job.job_id, len(job.rows), started)
            except PermanentServiceError as exc:
                if exc.code == "ResourceNotFoundException":
                    return None
                # Expired credentials or a revoked permission: the job runs on regardless. Keep
                # it and its rows as they are, and look again after a pause.
                self._pause(exc)
                await d.sleep(self._settings.busy_wait)

    def _pause(self, error: BaseException) -> None:
        log.error("store.paused", error=str(error), wait=self._settings.busy_wait)
        self._deps.emit(StorePaused(self.store, str(error)))

    async def _start(self, job: JobRecord, *, maybe_sent: bool) -> JobRecord | None:
        """Get a job id for a written-ahead job: adopt the job if it exists, else start it.

        ``maybe_sent`` says an earlier attempt (a crashed run, an ambiguous 408 or a lost
        connection) may have created the job; then the service is searched before anything is
        sent again, because it may have forgotten the clientToken by now.
        """
        d = self._deps
        sources = [SourceSpec(r.source_file, r.name, r.description, dict(r.tags)) for r in job.rows]
        while True:
            try:
                async for attempt in retrying(
                    self._settings.retry, sleep=d.sleep, on_retry=self._on_start_retry
                ):
                    with attempt:
                        if maybe_sent:
                            found = await self._find(job, sources)
                            if found is not None:
                                log.info("import_job.adopted", job_id=found)
                                with anyio.CancelScope(shield=True):
                                    adopted = await d.journal.record_job_id(
                                        job, found, owner=d.owner
                                    )
                                return adopted
                        # Shielded: a Start in flight is finished and its id journaled even while
                        # the importer closes, so the next run need not search for it.
                        with anyio.move_on_after(self._settings.shutdown_grace, shield=True):
                            try:
                                # The job's clock starts when the request leaves, not when the
                                # answer (and its journal write) is back: polls then land on time.
                                self._sent_at = d.clock()
                                job_id = await d.gateway.start_import(
                                    self.store, job.role_arn, sources, job.client_token
                                )
                            except TransientServiceError as exc:
                                maybe_sent = maybe_sent or exc.ambiguous
                                raise
                            return await d.journal.record_job_id(job, job_id, owner=d.owner)
                        # The grace period ran out mid-call: the job stays written ahead.
                        maybe_sent = True
                        raise TransientServiceError(
                            "start did not finish within the grace period",
                            code="Timeout",
                            operation=START,
                            store_id=self.store.store_id,
                            ambiguous=True,
                        )
            except StoreBusyError:
                # Someone else's job, or ours if an ambiguous attempt created it: `maybe_sent`
                # makes the next round look for it first.
                log.info("store.busy", wait=self._settings.busy_wait)
                await d.sleep(self._settings.busy_wait)
            except TransientServiceError as exc:
                # Retries are exhausted but the rows must not be dropped: the job stays written
                # ahead; look for it and try again after a pause.
                log.warning("import_job.start_failed", error=str(exc))
                maybe_sent = maybe_sent or exc.ambiguous
                await d.sleep(self._settings.busy_wait)
            except PermanentServiceError as exc:
                if maybe_sent or isinstance(exc, CredentialsError):
                    # The job may exist (an earlier attempt was ambiguous), or the credentials
                    # lapsed mid-run: failing its rows could orphan a running import. Keep the
                    # job written ahead and try again after a pause.
                    self._pause(exc)
                    await d.sleep(self._settings.busy_wait)
                    continue
                log.error("import_job.rejected", error=str(exc))
                settlements = [
                    Settlement(r.row_id, RowState.FAILED, None, f"{exc.code}: {exc.message}")
                    for r in job.rows
                ]
                await self._finish(job, settlements, status="REJECTED", message=str(exc))
                return None

    def _on_start_retry(self, attempt: int, error: BaseException, delay: float) -> None:
        code = getattr(error, "code", type(error).__name__)
        log.info("import_job.start_retry", attempt=attempt, code=code, delay=round(delay, 3))
        self._deps.emit(RequestRetried(START, self.store, attempt, str(code), delay))

    async def _find(self, job: JobRecord, sources: list[SourceSpec]) -> str | None:
        """Find a job the service created for these exact sources since the write-ahead."""
        d = self._deps
        since = datetime.fromtimestamp(job.written_at - self._settings.lookup_margin, UTC)
        known = await d.journal.known_job_ids(self.store)
        wanted = {(s.source_file, s.name) for s in sources}
        candidates = [
            j for j in await d.gateway.list_imports(self.store, since) if j.job_id not in known
        ]
        for candidate in candidates:
            snapshot = await d.gateway.get_import(self.store, candidate.job_id)
            if {(s.source_file, s.name) for s in snapshot.sources} == wanted:
                return candidate.job_id
        log.info("import_job.lookup_empty", candidates=len(candidates))
        return None

    # -- settling -------------------------------------------------------------------------------

    async def _settle(self, job: JobRecord, snapshot: JobSnapshot) -> None:
        by_name = {s.name: s for s in snapshot.sources if s.name}
        by_file = {s.source_file: s for s in snapshot.sources if s.source_file}
        settlements: list[Settlement] = []
        failed: list[tuple[QueuedRow, str | None]] = []
        requeue: list[int] = []
        for row in job.rows:
            source = by_name.get(row.name) or by_file.get(row.source_file)
            if source is None or source.status not in ("FINISHED", "FAILED"):
                requeue.append(row.row_id)
            elif source.status == "FINISHED" and source.reference_id:
                settlements.append(Settlement(row.row_id, RowState.IMPORTED, source.reference_id))
                if self._present is not None:
                    self._present[row.name] = source.reference_id
            else:
                failed.append((row, source.message))
        if failed:
            existing = await self._existing_names([row.name for row, _ in failed])
            for row, message in failed:
                if row.name in existing:
                    # The name was taken (by another client, or before a crash): it is present.
                    if self._present is not None:
                        self._present[row.name] = existing[row.name]
                    settlements.append(
                        Settlement(
                            row.row_id,
                            RowState.ALREADY_PRESENT,
                            existing[row.name],
                            f"name already in the store ({message or 'import failed'})",
                        )
                    )
                else:
                    settlements.append(
                        Settlement(row.row_id, RowState.FAILED, None, message or "import failed")
                    )
        await self._finish(
            job, settlements, requeue=requeue, status=snapshot.status, message=snapshot.message
        )

    async def _existing_names(self, names: list[str]) -> dict[str, str]:
        """Which of ``names`` the store holds now: one filtered call per name when they are few,
        else one listing of the store (whichever needs fewer paced calls)."""
        gateway = self._deps.gateway
        pages = len(self._present or {}) // 100 + 1
        try:
            if len(names) <= pages:
                found: dict[str, str] = {}
                for name in names:
                    for ref in await gateway.list_references(self.store, name=name):
                        if ref.name == name and ref.status in _LIVE:
                            found[name] = ref.reference_id
                return found
            refs = await gateway.list_references(self.store)
        except ServiceError as exc:
            log.warning("store.name_check_failed", error=str(exc))
            return {}
        wanted = set(names)
        return {r.name: r.reference_id for r in refs if r.name in wanted and r.status in _LIVE}

    async def _finish(
        self,
        job: JobRecord,
        settlements: list[Settlement],
        *,
        status: str,
        message: str | None,
        requeue: list[int] | None = None,
    ) -> None:
        d = self._deps
        requeue = requeue or []
        # Shielded: the settlement is one transaction and must land even while closing.
        with anyio.CancelScope(shield=True):
            results = await d.journal.finish_job(
                job,
                settlements,
                status=status,
                message=message,
                requeue=requeue,
                max_attempts=self._settings.max_attempts,
                owner=d.owner,
            )
        counts = {state: 0 for state in RowState}
        for result in results:
            counts[result.state] += 1
            if result.state is RowState.FAILED:
                log.warning(
                    "row.failed", job_id=job.job_id, name=result.name, message=result.message
                )
            if result.state.is_final:
                d.emit(RowSettled(result))
        duration = d.wall() - (job.started_at or job.written_at)
        log.info(
            "import_job.finished",
            job_id=job.job_id,
            status=status,
            imported=counts[RowState.IMPORTED],
            already_present=counts[RowState.ALREADY_PRESENT],
            failed=counts[RowState.FAILED],
            requeued=counts[RowState.QUEUED],
        )
        d.emit(
            JobFinished(
                self.store,
                job.job_id,
                status,
                counts[RowState.IMPORTED],
                counts[RowState.ALREADY_PRESENT],
                counts[RowState.FAILED],
                counts[RowState.QUEUED],
                duration,
                d.wall(),
            )
        )
