"""One lane per reference store: the loop that keeps one store busy with one job at a time.

A lane packs the store's queued rows into jobs of up to ``max_sources_per_job``, writes each job
ahead in the journal, starts it, waits for it through the completion watcher and settles its rows,
then starts the next one at once. On start it first resumes whatever the journal says is unfinished.
It knows the journal and the gateway only through their protocols.

How a failed Start is handled is decided by :func:`~async_refimport.engine.start.classify`, a pure
function from the error to a :class:`~async_refimport.engine.start.StartAction`; the
:class:`~async_refimport.engine.start.Starter` is the loop that acts on those decisions.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import anyio
import anyio.abc
import structlog

from async_refimport._errors import (
    JournalError,
    LeaseLostError,
    PermanentServiceError,
    ServiceError,
    StoreBookedError,
)
from async_refimport._events import (
    JobFinished,
    JobStarted,
    RowSettled,
    StoreChecked,
    StorePaused,
)
from async_refimport._log import get_logger
from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport._retry import backoff_delay
from async_refimport._settings import ImporterSettings
from async_refimport.completion.base import LearnsFromHistory
from async_refimport.engine.deps import LaneDeps
from async_refimport.engine.presence import StoreNames
from async_refimport.engine.setup import first_page
from async_refimport.engine.start import NOT_FOUND, Starter
from async_refimport.gateway.base import JobSnapshot
from async_refimport.journal.base import FinalJobStatus, JobRecord, QueuedRow, Settlement

log = get_logger(__name__)


class Lane:
    """Drives one store. ``run`` returns only when cancelled (the Importer owns its task)."""

    def __init__(self, store: StoreRef, deps: LaneDeps, settings: ImporterSettings) -> None:
        self.store = store
        self._deps = deps
        self._settings = settings
        self.idle = False
        self.active_job: str | None = None
        self._wake = anyio.Event()
        self._names = StoreNames(
            deps.gateway, store, settings, clock=deps.clock, sleep=deps.sleep, pause=self._pause
        )
        # The md5 the service reported for references seen in any listing, by reference id.
        self._md5 = self._names.md5
        self._starter = Starter(
            store, deps, settings, check_lease=self._check_lease_fresh, pause=self._pause
        )
        self._tg: anyio.abc.TaskGroup | None = None
        self._prefetching = False
        # When this process last took or renewed the store's lease (the lane's clock).
        self._leased_at = 0.0

    @property
    def quiet(self) -> bool:
        """Idle, with nothing of its own calling AWS (no pre-flight, no listing under way)."""
        return self.idle and not self._prefetching and not self._names.listing

    def notify(self) -> None:
        """New rows were queued for this store."""
        self.idle = False
        self._wake.set()

    async def run(self) -> None:
        """Take the store's lease (waiting while another process holds it), then work the store.

        Raises:
            SetupError: the store cannot be used as set up (its first call says why).
            LeaseLostError: another process took the store over.
            JournalError: the journal failed.
        """
        d = self._deps
        with structlog.contextvars.bound_contextvars(
            store_id=self.store.store_id, region=self.store.region
        ):
            waited = False
            while not await d.journal.acquire_lease(self.store, d.owner, self._settings.lease_ttl):
                # Another process drives the store; take over if its lease lapses (it died).
                if not waited:
                    await self._say_who_holds_the_lease()
                waited = True
                # Idle here: the holder works the store's queue, this Importer's rows included
                # (an idle lane rescans the journal). Counting this lane as busy would make two
                # Importers sharing a journal each drain() until the other closes: for ever.
                if not self.idle:
                    self.idle = True
                    d.changed()
                await d.sleep(self._settings.lease_ttl / 3)
            self.idle = False
            self._leased_at = d.clock()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._renew_lease)
                    self._tg = tg
                    await self._work()
                    tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The work or the lease renewal failed: raise that error itself (SetupError,
                # JournalError, LeaseLostError ...), which the Importer tells apart, not a group.
                errors = group.exceptions
                if len(errors) == 1 and isinstance(errors[0], Exception):
                    raise errors[0] from None
                raise
            finally:
                with anyio.move_on_after(5, shield=True):
                    await d.journal.release_lease(self.store, d.owner)

    async def _renew_lease(self) -> None:
        d = self._deps
        while True:
            await d.sleep(self._settings.lease_ttl / 3)
            await self._renew(before=None)

    async def _renew(self, *, before: str | None) -> None:
        """Renew the lease, or raise :class:`LeaseLostError`.

        A renewal that comes later than ``lease_ttl`` after the last one counts as a loss even
        when it succeeds: the lease lapsed meanwhile (the process was paused, SIGSTOP or a frozen
        VM), another process may have driven the store and be paused itself now, and this lane's
        view (the store's jobs, its names) is stale. The Importer then restarts the lane from
        the journal, recovering whatever job the store has.
        """
        d, ttl = self._deps, self._settings.lease_ttl
        lapsed = d.clock() - self._leased_at > ttl
        if lapsed or not await d.journal.acquire_lease(self.store, d.owner, ttl):
            # Another process took (or could have taken) the store over: stop driving it.
            log.error("lane.lease_lost", before=before, lapsed=lapsed)
            raise LeaseLostError(
                f"lost the lease on store {self.store}"
                + (f" before sending a {before}" if before else ""),
                store_key=self.store.key,
                owner=d.owner,
            )
        self._leased_at = d.clock()

    async def _say_who_holds_the_lease(self) -> None:
        """Tell the user why the store waits, and for how long at most."""
        d = self._deps
        held = await d.journal.lease_holder(self.store)
        if held is None:
            return
        holder, until = held
        wait = max(0.0, until - d.wall())
        log.warning("lane.waiting_for_lease", holder=holder, seconds=round(wait, 1))
        d.emit(
            StorePaused(
                self.store,
                f"another process ({holder}) drives this store; waiting up to {wait:.0f} s "
                "for its lease to be released or to lapse",
            )
        )

    async def _check_lease_fresh(self) -> None:
        """Before a Start, make sure this process still holds the store.

        A process paused (SIGSTOP, a frozen VM) past its lease may wake up about to send a
        Start while another worker has taken the store over: the journal fences its writes, but
        not a call to the service. Renewals run every third of the lease; if the last one is
        older than two thirds, renew now, and stop if the lease is someone else's.
        """
        if self._deps.clock() - self._leased_at <= self._settings.lease_ttl * 2 / 3:
            return
        await self._renew(before="Start")

    async def _work(self) -> None:
        d = self._deps
        listed_at, page = d.listed.pop(self.store.key, (d.clock(), None))
        if not self._names.seeded and page is None:
            # The first call, before anything is recovered or sent: a set-up that cannot work
            # (credentials, access, store, endpoint) raises SetupError here, rows left queued.
            # One page: a big store's other pages are read only as its rows need them.
            page = await first_page(
                d.gateway,
                self.store,
                setup_timeout=self._settings.setup_timeout,
                retry_wait=self._settings.busy_wait,
                answered=d.answered,
                sleep=d.sleep,
                clock=d.clock,
            )
            listed_at = d.clock()
        if page is not None:
            log.info("store.checked", references=len(page.references), more=not page.last)
            # Listed a while ago: looked at again once existence_ttl has passed since.
            self._names.seed(page, listed_at)
        d.reachable(self.store)
        if isinstance(d.watcher, LearnsFromHistory):
            # Start warm: predict the first job from the jobs this journal has seen end.
            await d.watcher.warm(d.journal, d.preflight)
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
            rows = await self._check_sources(rows)
            if not rows:
                continue
            token = uuid.uuid4().hex
            try:
                job = await d.journal.begin_job(self.store, rows, token, owner=d.owner)
            except StoreBookedError as exc:
                # The journal holds an active job on this store that this lane is not driving.
                # This process holds the store's lease, so the job is its to drive (one left by
                # a process whose lease lapsed): recover it rather than wait for it for ever.
                log.warning("import_job.store_booked", error=str(exc))
                unfinished = await d.journal.unfinished_jobs(self.store)
                for job in unfinished:
                    log.info("import_job.recovering", job_id=job.job_id)
                    await self._drive(job, recovered=True)
                if not unfinished:
                    await d.sleep(self._settings.busy_wait)
                continue
            await self._drive(job, recovered=False)

    # -- sources --------------------------------------------------------------------------------

    async def _check_sources(self, rows: list[QueuedRow]) -> list[QueuedRow]:
        """Fail rows whose object is missing or too large (see :mod:`async_refimport.aws.preflight`); the rest."""
        preflight = self._deps.preflight
        if preflight is None or preflight.off_reason is not None or not rows:
            return rows
        if not preflight.applies(self.store):
            return rows
        found = await preflight.check((r.source_file, self.store.profile) for r in rows)
        failed = [
            Settlement(r.row_id, RowState.FAILED, None, found[r.source_file].failure)
            for r in rows
            if r.source_file in found and found[r.source_file].failure
        ]
        if failed:
            log.warning("store.sources_missing", rows=len(failed))
            await self._settle_queued(failed)
        gone = {s.row_id for s in failed}
        return [r for r in rows if r.row_id not in gone]

    async def _prefetch(self) -> None:
        """Check the sources of the rows queued next (errors only cost the prefetch)."""
        d = self._deps
        try:
            if (
                d.preflight is not None
                and d.preflight.off_reason is None
                and d.preflight.applies(self.store)
            ):
                rows = await d.journal.queued_rows(self.store, self._settings.max_sources_per_job)
                await d.preflight.check((r.source_file, self.store.profile) for r in rows)
        except Exception as exc:
            log.debug("preflight.prefetch_failed", error=str(exc))
        finally:
            self._prefetching = False

    def _job_bytes(self, job: JobRecord) -> int | None:
        """The job's total source size, when the pre-flight knows every one."""
        preflight = self._deps.preflight
        if preflight is None:
            return None
        sizes = [preflight.size(r.source_file) for r in job.rows]
        if not sizes or any(s is None for s in sizes):
            return None
        return sum(s for s in sizes if s is not None)

    # -- existence ------------------------------------------------------------------------------

    async def _skip_present(self, rows: list[QueuedRow]) -> list[QueuedRow]:
        """Settle rows whose name the store already holds; return the rest.

        A row sent before (in a job that was lost or failed as a whole) whose name is now held
        may hold it by our own job: its ``creationJobId`` is asked, and then it is IMPORTED.
        """
        d = self._deps
        if not self._names.seeded:
            return rows  # not listed yet: _work reads the store's first page before anything
        known = await self._names.present(
            [r.name for r in rows],
            queued=lambda: d.journal.queued_count(self.store),
            spawn=self._tg,
        )
        already = [r for r in rows if r.name in known]
        if already:
            ours = await self._ours(
                {known[r.name] for r in already if r.attempts}, await self._job_ids(already)
            )
            await self._settle_queued(
                [
                    Settlement(
                        r.row_id,
                        RowState.IMPORTED,
                        known[r.name],
                        None,
                        self._md5.get(known[r.name]),
                    )
                    if known[r.name] in ours
                    else Settlement(
                        r.row_id,
                        RowState.ALREADY_PRESENT,
                        known[r.name],
                        "already in the store",
                        self._md5.get(known[r.name]),
                    )
                    for r in already
                ]
            )
            d.emit(StoreChecked(self.store, len(already)))
        return [r for r in rows if r.name not in known]

    async def _job_ids(self, rows: list[QueuedRow]) -> set[str]:
        """Our job ids for the store, when any of ``rows`` was sent before (else none needed)."""
        if not any(r.attempts for r in rows):
            return set()
        return await self._deps.journal.known_job_ids(self.store)

    async def _ours(self, references: set[str], jobs: set[str]) -> set[str]:
        """Which of ``references`` one of ``jobs`` made (asked: creationJobId, paced)."""
        if not references or not jobs:
            return set()
        return {ref for ref in references if await self._names.made_by(ref, jobs)}

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
                outcome = await self._starter.start(job, maybe_sent=recovered)
                if isinstance(outcome, ServiceError):
                    await self._reject(job, outcome)
                    return
                job = outcome
            assert job.job_id is not None
            with structlog.contextvars.bound_contextvars(job_id=job.job_id):
                if recovered and job.started_at is not None:
                    started = d.clock() - max(0.0, d.wall() - job.started_at)
                elif self._starter.sent_at is not None:
                    started = self._starter.sent_at
                else:
                    started = d.clock()
                self._starter.sent_at = None
                self.active_job = job.job_id
                d.emit(
                    JobStarted(
                        self.store, job.job_id, job.client_token, len(job.rows), d.wall(), recovered
                    )
                )
                log.info("import_job.started", sources=len(job.rows), recovered=recovered)
                if d.preflight is not None and self._tg is not None and not self._prefetching:
                    # While the store works, check the next pack: it is ready when this ends.
                    self._prefetching = True
                    self._tg.start_soon(self._prefetch)
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
                        status=FinalJobStatus.LOST,
                        message="the service no longer knows the import job",
                    )
                    return
                await self._settle(job, snapshot)

    async def _watch(self, job: JobRecord, started: float) -> JobSnapshot | None:
        """The job's final snapshot; None only once the service has lost it for good.

        A 404 for an id the service itself handed out is not, alone, a verdict: many AWS control
        planes answer 404 for a while after the create that returned the id. The lane polls again
        with backoff for ``consistency_grace`` seconds, then asks ListReferenceImportJobs; only a
        job missing from both is lost (its rows are requeued).
        """
        d, s = self._deps, self._settings
        assert job.job_id is not None
        missing_since: float | None = None
        tries = 0
        while True:
            try:
                return await d.watcher.wait(
                    self.store, job.job_id, len(job.rows), started, size=self._job_bytes(job)
                )
            except PermanentServiceError as exc:
                if exc.code != NOT_FOUND:
                    # Expired credentials or a revoked permission: the job runs on regardless.
                    # Keep it and its rows as they are, and look again after a pause.
                    self._pause(exc)
                    await d.sleep(s.busy_wait)
                    continue
            now = d.clock()
            missing_since = now if missing_since is None else missing_since
            waited = now - missing_since
            if waited < s.consistency_grace:
                tries += 1
                delay = min(backoff_delay(s.retry, tries), s.consistency_grace - waited)
                log.info("import_job.not_found_yet", waited=round(waited, 3), retry_in=delay)
                await d.sleep(delay)
                continue
            if not await self._listed(job):
                return None
            # Listed but not readable: the job exists. Never settle its rows on a guess.
            log.warning("import_job.listed_but_not_found", waited=round(waited, 3))
            missing_since, tries = None, 0
            await d.sleep(s.busy_wait)

    async def _listed(self, job: JobRecord) -> bool:
        """Whether ListReferenceImportJobs shows the job (True when the List itself fails)."""
        d = self._deps
        since = datetime.fromtimestamp(job.written_at - self._settings.lookup_margin, UTC)
        try:
            jobs = await d.gateway.list_imports(self.store, since)
        except ServiceError as exc:
            log.warning("import_job.list_failed", error=str(exc))
            return True
        return any(j.job_id == job.job_id for j in jobs)

    def _pause(self, error: BaseException) -> None:
        log.error("store.paused", error=str(error), wait=self._settings.busy_wait)
        self._deps.emit(StorePaused(self.store, str(error)))

    async def _reject(self, job: JobRecord, error: ServiceError) -> None:
        """Fail the rows of a job whose Start was refused for good, with the service's words."""
        log.error("import_job.rejected", error=str(error))
        settlements = [
            Settlement(r.row_id, RowState.FAILED, None, f"{error.code}: {error.message}")
            for r in job.rows
        ]
        await self._finish(job, settlements, status=FinalJobStatus.REJECTED, message=str(error))

    # -- settling -------------------------------------------------------------------------------

    async def _settle(self, job: JobRecord, snapshot: JobSnapshot) -> None:
        """Turn the job's final snapshot into each row's outcome (see the README's outcome table).

        A job CANCELLED by someone else (the console, another tool) was stopped on purpose: its
        rows that did not finish fail with that reason rather than being sent again behind the
        canceller's back; submitting them again queues them anew.
        """
        by_name = {s.name: s for s in snapshot.sources if s.name}
        by_file = {s.source_file: s for s in snapshot.sources if s.source_file}
        cancelled = snapshot.status == FinalJobStatus.CANCELLED
        settlements: list[Settlement] = []
        failed: list[tuple[QueuedRow, str | None]] = []
        requeue: list[int] = []
        for row in job.rows:
            source = by_name.get(row.name) or by_file.get(row.source_file)
            if source is not None and source.status == "FINISHED" and source.reference_id:
                settlements.append(Settlement(row.row_id, RowState.IMPORTED, source.reference_id))
                self._names.add(row.name, source.reference_id)
            elif source is not None and source.status in ("FINISHED", "FAILED"):
                failed.append((row, source.message))
            elif cancelled:
                reason = f"import job {job.job_id} was cancelled outside async_refimport"
                if snapshot.message:
                    reason += f" ({snapshot.message})"
                settlements.append(Settlement(row.row_id, RowState.FAILED, None, reason))
            else:
                requeue.append(row.row_id)
        if cancelled:
            log.warning("import_job.cancelled_outside", message=snapshot.message)
        if failed:
            made = {s.reference_id for s in settlements if s.reference_id}
            settlements.extend(await self._settle_failed(job, failed, made, snapshot.created))
        settlements = await self._with_checksums(settlements, snapshot)
        await self._finish(
            job, settlements, requeue=requeue, status=snapshot.status, message=snapshot.message
        )

    async def _settle_failed(
        self,
        job: JobRecord,
        failed: list[tuple[QueuedRow, str | None]],
        made: set[str],
        created: datetime | None,
    ) -> list[Settlement]:
        """The outcome of each row whose source failed: its name held now is ALREADY_PRESENT
        (taken by another client, or before a crash), or IMPORTED when the reference holding it
        was made by an earlier job of ours (asked: creationJobId; a job sent again after its
        first run went unseen); else FAILED with the message. This job made none of them: their
        sources failed. ``made``: the references this job made; ``created``: when it began."""
        began = created or datetime.fromtimestamp(job.started_at or job.written_at, UTC)
        existing = await self._taken_names(failed, made, began)
        jobs: set[str] = set()
        if existing:
            jobs = await self._deps.journal.known_job_ids(self.store) - {job.job_id or ""}
        ours = await self._ours(set(existing.values()), jobs)
        settlements = []
        for row, message in failed:
            ref = existing.get(row.name)
            if ref is None:
                settlements.append(
                    Settlement(row.row_id, RowState.FAILED, None, message or "import failed")
                )
                continue
            self._names.add(row.name, ref)
            if ref in ours:
                settlements.append(Settlement(row.row_id, RowState.IMPORTED, ref))
                continue
            settlements.append(
                Settlement(
                    row.row_id,
                    RowState.ALREADY_PRESENT,
                    ref,
                    f"name already in the store ({message or 'import failed'})",
                    self._md5.get(ref),
                )
            )
        return settlements

    async def _with_checksums(
        self, settlements: list[Settlement], snapshot: JobSnapshot
    ) -> list[Settlement]:
        """Imported rows with the md5 the service reports for their new reference.

        GetReferenceImportJob does not carry it; one listing of the references created since the
        job began does, for all of them. Without it (a failed or lagging listing) a row settles
        all the same, its md5 unknown.
        """
        known, new = self._md5, dict[str, str]()
        if any(
            s.state is RowState.IMPORTED and s.reference_id and s.reference_id not in known
            for s in settlements
        ):
            # From the job's creation time exactly (the service's clock stamps both the job and its
            # references): a wider window would list other jobs' references too, and a busy store
            # creates hundreds a minute. One job runs per store, so this window holds this job's.
            # Kept for this job only: the journal keeps them from now on.
            try:
                new = await self._deps.gateway.reference_checksums(self.store, snapshot.created)
            except ServiceError as exc:
                log.warning("store.checksums_failed", error=str(exc))
        return [
            replace(s, md5=known.get(s.reference_id) or new.get(s.reference_id))
            if s.reference_id and not s.md5
            else s
            for s in settlements
        ]

    async def _taken_names(
        self, failed: list[tuple[QueuedRow, str | None]], made: set[str], created: datetime
    ) -> dict[str, str]:
        """Which failed rows' names the store holds now, by name, with the reference id.

        A source that failed because its name exists had its reference created moments ago, maybe
        by another tool: ListReferences may not show it yet. What a source's failure says is never
        read (AWS documents no wording): when :meth:`_list_may_lag`, the names not listed are
        looked up again, with backoff, for up to ``consistency_grace`` seconds; else once.
        """
        d, s = self._deps, self._settings
        existing = await self._names.lookup([row.name for row, _ in failed])
        late = [r.name for r, _ in failed if r.name not in existing]
        if late and not await self._list_may_lag(made, created):
            late = []  # the List is current: a name it does not show, the store does not hold
        began, tries = d.clock(), 0
        while late and (waited := d.clock() - began) < s.consistency_grace:
            tries += 1
            delay = min(backoff_delay(s.retry, tries), s.consistency_grace - waited)
            log.info("store.name_not_listed_yet", names=len(late), retry_in=delay)
            await d.sleep(delay)
            found = await self._names.lookup(late)
            existing.update(found)
            late = [n for n in late if n not in found]
        return existing

    async def _list_may_lag(self, made: set[str], created: datetime) -> bool:
        """Whether ListReferences may not show yet a name taken before a source failed, from what
        the service shows: the references created since the job began are listed. One there that
        this job did not make (a name taken meanwhile), or one it made missing there (the List
        lags behind this job's writes, so maybe behind an earlier one), says it may; so does a
        listing that fails. A job that made nothing gives the List nothing to be judged by: a
        name taken before it began (and not listed yet) looks the same as a bad source, so the
        List may lag (the simulator's seed 16103406)."""
        if not made:
            return True
        try:
            listed = set(await self._deps.gateway.reference_checksums(self.store, created))
        except ServiceError as exc:
            log.warning("store.checksums_failed", error=str(exc))
            return True
        return bool(listed - made) or not made <= listed

    async def _finish(
        self,
        job: JobRecord,
        settlements: list[Settlement],
        *,
        status: FinalJobStatus | str,
        message: str | None,
        requeue: list[int] | None = None,
    ) -> None:
        """Settle the job's rows in one journal transaction, then tell what became of them.

        Args:
            job: The job.
            settlements: The rows' outcomes.
            status: The job's final status (the service's, or ``REJECTED``/``LOST``).
            message: The job's status message, if any.
            requeue: Rows to queue again (their attempt counted).

        Raises:
            JournalError: the journal did not settle the job within ``shutdown_grace``.
        """
        d = self._deps
        requeue = requeue or []
        # Shielded: the settlement is one transaction and must land even while closing; bounded,
        # so a stuck journal cannot hold up cancellation for ever.
        results = None
        with anyio.move_on_after(self._settings.shutdown_grace, shield=True):
            results = await d.journal.finish_job(
                job,
                settlements,
                status=status,
                message=message,
                requeue=requeue,
                max_attempts=self._settings.max_attempts,
                owner=d.owner,
            )
        if results is None:
            raise JournalError(
                f"the journal did not settle job {job.job_id} within"
                f" {self._settings.shutdown_grace} s"
            )
        self._tell_finished(job, str(status), results)

    def _tell_finished(self, job: JobRecord, status: str, results: list[RowResult]) -> None:
        """Log and emit a settled job's outcome: each final row, then the job's counts."""
        d = self._deps
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
