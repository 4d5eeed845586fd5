"""The public face of the engine: :class:`Importer`, an async context manager.

One Importer owns one task group with one lane per store. It can be shared by every request of an
async service: ``submit`` is safe to call concurrently, rows of every caller are packed together
per store, and each caller awaits only its own rows with ``wait``. Example::

    async with Importer(journal="refimport.sqlite", region="us-east-1") as imp:
        ids = await imp.submit([ImportRequest(store_id, role_arn, "s3://b/hg38.fa", "hg38")])
        [result] = await imp.wait(ids)          # RowResult(state=IMPORTED, reference_id=...)

Closing (leaving the ``async with`` block, or ``stop()``) is graceful: no new job is started, a
StartReferenceImportJob in flight is finished and journaled, and jobs still running at AWS are
picked up again by the next Importer on the same journal.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from async_refimport._errors import (
    FieldError,
    ImporterClosedError,
    JournalError,
    LeaseLostError,
    RequestValidationError,
    ServiceError,
    SetupError,
    TransientServiceError,
)
from async_refimport._events import Event, RequestRetried, RowsQueued, StorePaused
from async_refimport._log import get_logger
from async_refimport._models import ImportRequest, RowResult, RowState, StoreRef
from async_refimport._models import validate_requests as _validate_requests
from async_refimport._pacing import Pacer
from async_refimport._settings import ImporterSettings, with_shortcuts
from async_refimport.aws.clients import ClientPool
from async_refimport.aws.preflight import Preflight, S3SourceChecker
from async_refimport.completion.base import CompletionWatcher
from async_refimport.completion.events import EventWatcher, queue_clients
from async_refimport.completion.polling import PollingWatcher
from async_refimport.engine.accounts import IdleAccounts
from async_refimport.engine.deps import LaneDeps
from async_refimport.engine.lane import Lane
from async_refimport.engine.planning import plan_stores, verify_stores
from async_refimport.engine.setup import default_region
from async_refimport.engine.status import (
    ApiStats,
    ImporterState,
    ImporterStatus,
    StorePlan,
    StoreStatus,
    api_stats,
    store_statuses,
)
from async_refimport.engine.waiting import RowWaiter
from async_refimport.gateway.aws import AwsGateway, OmicsGateway, ReferencePage
from async_refimport.journal import lease_owner_name, resolve_journal
from async_refimport.journal.base import Journal

__all__ = [
    "ApiStats",
    "Importer",
    "ImporterSettings",
    "ImporterStatus",
    "StorePlan",
    "StoreStatus",
    "default_region",
]

log = get_logger(__name__)

#: Seconds between the error lines of a journal outage a worker rides out (debug lines between).
_JOURNAL_FAILURE_REPEAT = 300.0
RESULTS_PAGE = 1000
"""Rows read back from the journal at a time (:meth:`Importer.iter_results`)."""


class Importer:
    """Imports reference genomes, exactly once, into HealthOmics reference stores.

    Args:
        journal: A SQLite journal path (default: :func:`default_journal_path`), a
            ``dynamodb://TABLE`` URL (a journal shared by a fleet), or a :class:`Journal`.
        region: Region for requests that name none (default: the AWS SDK's configuration).
        max_sources_per_job: Shortcut for ``settings.max_sources_per_job``.
        settings: Retry, pacing, polling and other knobs.
        gateway: The HealthOmics seam (default: aioboto3); tests may pass a
            :class:`MemoryGateway`.
        watcher: Completion detection (default: predictive polling).
        owner: This process's name in store leases (default: host, pid and a random suffix).
        sleep: Async sleep for backoff, polling and waits (injectable for tests).
        clock: Monotonic seconds for pacing, polling and job durations (injectable for tests:
            with a ``sleep`` that advances it, hours of backoff and polling take no real time).
        events_queue_url: Shortcut for ``settings.events.queue_urls``: SQS queue(s) an
            EventBridge rule feeds with HealthOmics' job status events (one per Region). Lanes
            are then woken the moment their job ends, and polling becomes a sparse safety net
            (``settings.events``). See the README, "Job status events".
    """

    def __init__(
        self,
        journal: str | os.PathLike[str] | Journal | None = None,
        *,
        region: str | None = None,
        max_sources_per_job: int | None = None,
        settings: ImporterSettings | None = None,
        gateway: OmicsGateway | None = None,
        watcher: CompletionWatcher | None = None,
        owner: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        events_queue_url: str | Sequence[str] | None = None,
    ) -> None:
        settings = with_shortcuts(
            settings, max_sources_per_job=max_sources_per_job, events_queue_url=events_queue_url
        )
        self.settings = settings
        self._journal: Journal = resolve_journal(journal, region=region)
        self.region = region
        self._pacer = Pacer(settings.pacing, clock=clock, sleep=sleep)
        self._own_gateway = gateway is None
        # One pool for every AWS client of this Importer (omics, S3 checks, SQS events): one
        # session, and one credentials resolution, per profile.
        self._pool = ClientPool()
        self._gateway: OmicsGateway = gateway or self._aws_gateway(sleep)
        self._polling = PollingWatcher(self._gateway, settings.polling, sleep=sleep, clock=clock)
        self._watcher: CompletionWatcher = watcher or self._polling
        # Built once the Region is known (on entering): a local queue URL names none.
        self._events_queues = list(settings.events.queue_urls) if watcher is None else []
        self._events: EventWatcher | None = None
        # The sources' pre-flight goes to S3 with the caller's credentials: only with the real
        # gateway (a test's fake gateway brings no S3). Built once the Region is known.
        self._preflight: Preflight | None = None
        self._owner = owner or lease_owner_name()
        self._sleep = sleep
        self._clock = clock
        self._lanes: dict[str, Lane] = {}
        self._subscribers: list[MemoryObjectSendStream[Event]] = []
        self._changed = anyio.Event()
        self._stopping = False
        self._journal_failure: JournalError | None = None
        # Stores whose set-up fails (their first call), by store key; and stores whose requests
        # were answered at least once (an answer, even a throttle, means the endpoint is there).
        self._setup_failures: dict[str, SetupError] = {}
        self._answered: set[str] = set()
        self._parked_version = 0
        # When a write to the journal last failed (a worker rides out an outage).
        self._journal_failed_at: float | None = None
        # First pages verify_setup read, for lanes about to start (saves each a second call).
        self._listed: dict[str, tuple[float, ReferencePage]] = {}
        self._state = ImporterState.NEW
        self._tg: TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._lane_scopes: list[anyio.CancelScope] = []

    @property
    def journal(self) -> Journal:
        """The journal this Importer writes (shared with any other process opened on it)."""
        return self._journal

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Importer:
        if self._state is not ImporterState.NEW:
            raise ImporterClosedError("an Importer can be entered once; create a new one")
        self._state = ImporterState.OPEN
        try:
            # Each step is undone, in reverse order, if a later one fails (or when closing).
            async with AsyncExitStack() as stack:
                if self.region is None:
                    self.region = await anyio.to_thread.run_sync(default_region)
                await self._journal.open()
                stack.push_async_callback(self._bounded, self._journal.aclose)
                # Closed after the gateway, the pre-flight and the events watcher that use it.
                stack.push_async_callback(self._bounded, self._pool.aclose)
                if self._own_gateway and self.settings.preflight.enabled:
                    self._preflight = self._new_preflight()
                    stack.push_async_callback(self._bounded, self._preflight.aclose)
                if self._events_queues:
                    self._events = self._events_watcher(self._events_queues)
                    self._watcher = self._events
                    stack.push_async_callback(self._bounded, self._events.aclose)
                stack.callback(self._close_subscribers)
                self._tg = await stack.enter_async_context(anyio.create_task_group())
                # Leaving the task group waits for the lanes: stop them first.
                stack.callback(self.stop)
                if self._events is not None:
                    self._tg.start_soon(self._run_events, name="events watcher")
                # Resume whatever an earlier run left unfinished.
                await self.adopt()
                self._stack = stack.pop_all()
        except BaseException:
            self._state = ImporterState.CLOSED
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._stack is not None
        try:
            suppressed = await self._stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The task group wraps what the caller's own block raised: give the caller its own
            # exception back, not a group around it.
            if exc is not None and all(e is exc for e in group.exceptions):
                return False
            raise
        finally:
            self._state = ImporterState.CLOSED
        if self._journal_failure is not None and exc_type is None:
            raise self._journal_failure
        return suppressed

    async def _bounded(self, close: Callable[[], Awaitable[None]]) -> None:
        # Clean-up runs even while the caller is cancelled, but never hangs a shutdown: a locked
        # journal or a stuck connection gets the grace period, no more.
        with anyio.move_on_after(self.settings.shutdown_grace, shield=True) as scope:
            await close()
        if scope.cancelled_caught:
            log.warning("importer.close_timed_out", step=getattr(close, "__qualname__", "?"))

    def _close_subscribers(self) -> None:
        for stream in self._subscribers:
            stream.close()

    def stop(self) -> None:
        """Stop starting jobs: lanes stop at their next safe point (a Start in flight is finished
        and journaled first); ``wait`` and ``drain`` return. Jobs running at AWS are resumed by the
        next Importer on this journal."""
        if self._stopping:
            return
        self._stopping = True
        for scope in self._lane_scopes:
            scope.cancel()
        self._signal_change()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (or the Importer is closing)."""
        return self._stopping

    def _check_open(self) -> None:
        if self._state is not ImporterState.OPEN or self._stopping:
            raise ImporterClosedError("the Importer is not open (or is stopping)")

    def _lane(self, store: StoreRef) -> Lane:
        lane = self._lanes.get(store.key)
        parked = store.key in self._setup_failures and self.settings.stop_on_setup_failure
        if lane is not None and parked:
            # A parked store is tried anew when rows are submitted to it again (the set-up may
            # have been fixed meanwhile).
            del self._setup_failures[store.key]
            lane = None
        if lane is None:
            deps = LaneDeps(
                journal=self._journal,
                gateway=self._gateway,
                watcher=self._watcher,
                emit=self._emit,
                changed=self._lane_changed,
                owner=self._owner,
                clock=self._clock,
                sleep=self._sleep,
                preflight=self._preflight,
                answered=lambda store: store.key in self._answered,
                reachable=self._reachable,
                listed=self._listed,
            )
            # The lane reads the Importer's own settings: one source of truth.
            lane = Lane(store, deps, self.settings)
            self._lanes[store.key] = lane
            assert self._tg is not None
            self._tg.start_soon(self._run_lane, lane, name=f"lane {store}")
        return lane

    def _aws_gateway(self, sleep: Callable[[float], Awaitable[None]]) -> AwsGateway:
        return AwsGateway(
            pacer=self._pacer,
            retry=self.settings.retry,
            sleep=sleep,
            on_retry=self._on_retry,
            pool=self._pool,
        )

    def _new_preflight(self) -> Preflight:
        policy = self.settings.preflight
        checker = S3SourceChecker(
            region=self.region,
            timeout=policy.timeout,
            endpoint_url=policy.s3_endpoint_url,
            pool=self._pool,
        )
        return Preflight(checker, policy)

    def _events_watcher(self, urls: Sequence[str]) -> EventWatcher:
        queues = queue_clients(urls, self.region, sleep=self._sleep, pool=self._pool)
        return EventWatcher(
            self._gateway,
            self._polling,
            queues,
            self._journal,
            self.settings.events,
            clock=self._clock,
            sleep=self._sleep,
        )

    async def _run_events(self) -> None:
        assert self._events is not None
        with anyio.CancelScope() as scope:
            self._lane_scopes.append(scope)  # stopped with the lanes
            if self._stopping:
                scope.cancel()
            await self._events.run()

    async def _run_lane(self, lane: Lane) -> None:
        with anyio.CancelScope() as scope:
            self._lane_scopes.append(scope)
            if self._stopping:
                scope.cancel()
            journal_said = -math.inf
            while True:
                try:
                    await lane.run()
                except SetupError as exc:
                    self._setup_failures[lane.store.key] = exc
                    self._parked_version += 1
                    log.error(
                        "store.setup_failed",
                        store_id=lane.store.store_id,
                        kind=exc.kind,
                        error=exc.message,
                        fix=exc.fix,
                    )
                    self._emit(StorePaused(lane.store, str(exc)))
                    if self.settings.stop_on_setup_failure:
                        # Its rows stay queued; wait() raises the error once the rest is done.
                        return
                    # A service keeps trying a store it cannot use, at most a minute apart.
                    await self._sleep(min(60.0, self.settings.busy_wait))
                except LeaseLostError as exc:
                    # Another process took the store over: step back and wait for the lease.
                    log.warning("lane.lease_lost", store_id=lane.store.store_id, error=str(exc))
                    await self._sleep(self.settings.busy_wait)
                except JournalError as exc:
                    if not self.settings.stop_on_journal_failure:
                        # Said every few minutes while an outage lasts, not every busy_wait.
                        now = self._clock()
                        self._journal_failed_at = now
                        loud = now - journal_said >= _JOURNAL_FAILURE_REPEAT
                        journal_said = now if loud else journal_said
                        say = log.error if loud else log.debug
                        say("journal.failed", store_id=lane.store.store_id, error=str(exc))
                        await self._sleep(self.settings.busy_wait)
                        continue
                    # Nothing may be sent that cannot be recorded: stop the whole run; it
                    # raises the error on leaving, and a re-run resumes from the journal. The
                    # caller reports that error: an error line here would say it twice.
                    log.info("journal.failed", error=str(exc))
                    self._journal_failure = self._journal_failure or exc
                    self.stop()
                    return
                except Exception as exc:
                    # A lane must not take the importer (and every other store) down with it.
                    log.exception("lane.crashed", store_id=lane.store.store_id, error=str(exc))
                    await self._sleep(self.settings.busy_wait)

    def _reachable(self, store: StoreRef) -> None:
        self._answered.add(store.key)
        if self._setup_failures.pop(store.key, None) is not None:
            log.info("store.setup_ok", store_id=store.store_id, region=store.region)
            self._signal_change()

    @property
    def journal_trouble(self) -> bool:
        """Whether the journal failed lately (a full disk, a table out of reach): a worker
        riding out an outage is not ready. Lanes retry every ``busy_wait`` and idle ones look
        at the journal every ``rescan_interval``, so an outage that lasts is seen again within
        that; it counts as over once twice as long passed without a failure."""
        if self._journal_failed_at is None:
            return False
        window = 2 * max(self.settings.busy_wait, self.settings.rescan_interval)
        return self._clock() - self._journal_failed_at < window

    @property
    def setup_errors(self) -> tuple[SetupError, ...]:
        """Stores that cannot be used as set up, with what to fix (their rows stay queued)."""
        return tuple(self._setup_failures.values())

    # -- events ---------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(stream)
        self._signal_change()

    def _signal_change(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _lane_changed(self) -> None:
        self._signal_change()
        if self._tg is not None and not self._stopping:  # an account done lets its clients go
            IdleAccounts(
                self._pool, self._lanes.values, self._tg.start_soon, self._lane_scopes
            ).check()

    def _on_retry(
        self, operation: str, store: StoreRef, attempt: int, error: BaseException, delay: float
    ) -> None:
        code = error.code if isinstance(error, TransientServiceError) else type(error).__name__
        if isinstance(error, ServiceError) and error.status is not None:
            self._answered.add(store.key)  # the endpoint is there, only busy or failing
        log.info(
            "api.retry", operation=operation, attempt=attempt, code=code, delay=round(delay, 3)
        )
        self._emit(RequestRetried(operation, store, attempt, code, delay))

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
        """Stream progress events: ``async with imp.subscribe() as events: async for ev in events``.

        The stream ends when the Importer closes. Consume it promptly: it buffers without bound.
        """
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()

    # -- the API --------------------------------------------------------------------------------

    def _resolve(self, requests: Sequence[ImportRequest]) -> list[tuple[StoreRef, ImportRequest]]:
        errors = _validate_requests(requests, self.region)
        if errors:
            raise RequestValidationError(errors)
        return [(r.store(self.region), r) for r in requests]

    async def submit(
        self, requests: Iterable[ImportRequest], *, submission: str | None = None
    ) -> list[int]:
        """Validate, journal and queue requests; returns one row id per request, in order.

        Nothing is journaled unless every request is valid. A name already imported into its store
        (by this or an earlier run) returns its existing row id and is not sent again; a name that
        failed before is queued again.

        Raises:
            RequestValidationError: with every problem found, each naming its row and field.
            ImporterClosedError: the Importer is not open.
        """
        self._check_open()
        resolved = self._resolve(list(requests))
        if not resolved:
            return []
        try:
            ids = await self._journal.add_rows(resolved, submission)
        except JournalError:
            self._journal_failed_at = self._clock()
            raise
        per_store: dict[str, tuple[StoreRef, int]] = {}
        for store, _ in resolved:
            _, n = per_store.get(store.key, (store, 0))
            per_store[store.key] = (store, n + 1)
        for store, n in per_store.values():
            self._lane(store).notify()
            self._emit(RowsQueued(store, n))
        return ids

    def rows_staged(self, store: StoreRef, count: int = 1) -> None:
        """``count`` rows of ``store`` were staged and are QUEUED now (the staging driver's
        word): its lane is woken."""
        self._lane(store).notify()
        self._emit(RowsQueued(store, count))

    def announce(self, event: Event) -> None:
        """Send ``event`` to the subscribers as the engine's own (a staging row that failed)."""
        self._emit(event)

    async def conflicts(self, requests: Iterable[ImportRequest]) -> list[FieldError]:
        """The problems :meth:`submit` would find with ``requests`` (invalid fields, a name
        journaled for its store from another source file), journaling nothing: a caller
        submitting in chunks checks them all before the first."""
        self._check_open()
        try:
            resolved = self._resolve(list(requests))
        except RequestValidationError as exc:
            return list(exc.errors)
        return await self._journal.conflicts(resolved)

    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]:
        """The rows' current results (every row when ``row_ids`` is None), without waiting."""
        return await self._journal.results(row_ids)

    async def iter_results(
        self, row_ids: Sequence[int], *, page: int | None = None
    ) -> AsyncIterator[list[RowResult]]:
        """The rows' current results, in the order given, read ``page`` at a time (default
        :data:`RESULTS_PAGE`): a run of 10^5 rows is never held whole."""
        page = page or RESULTS_PAGE
        for start in range(0, len(row_ids), page):
            yield await self._journal.results(row_ids[start : start + page])

    async def wait(self, row_ids: Sequence[int]) -> list[RowResult]:
        """Wait until every given row is final (or the Importer stops); returns their results.

        Raises:
            SetupError: rows wait on a store that cannot be used as set up (no credentials,
                access denied, no such store, an unreachable endpoint); raised once every other
                row is final. Those rows stay queued (``results(row_ids)`` shows them): fix the
                set-up and submit them again, or run again on the same journal.
        """
        await self.wait_until_final(row_ids)
        return await self._journal.results(row_ids)

    async def wait_until_final(self, row_ids: Sequence[int]) -> None:
        """:meth:`wait` without reading the results back: for many rows, read them a page at a
        time with :meth:`iter_results` afterwards.

        Raises:
            SetupError: as :meth:`wait`.
        """
        waiter = RowWaiter(
            self._journal,
            self.subscribe,
            self.iter_results,
            stopping=lambda: self._stopping,
            setup_failures=self._setup_failures,
            parked_version=lambda: self._parked_version,
            parks_on_setup=self.settings.stop_on_setup_failure,
            page=RESULTS_PAGE,
        )
        await waiter.until_final(row_ids)

    async def drain(self) -> None:
        """Wait until no row is queued or in flight in any store this Importer drives."""
        while not self._stopping:
            changed = self._changed
            if all(lane.idle for lane in self._lanes.values()):
                counts = await self._journal.counts()
                busy = any(
                    states.get(RowState.QUEUED, 0) or states.get(RowState.SUBMITTED, 0)
                    for store, states in counts.items()
                    if store.key in self._lanes and store.key not in self._setup_failures
                )
                if not busy:
                    return
            with anyio.move_on_after(1.0):
                await changed.wait()

    async def plan(self, requests: Iterable[ImportRequest]) -> list[StorePlan]:
        """Dry run: validate, list each store's references once, count the jobs; sends no Start.

        A store that cannot be used as set up (credentials, access, store id, endpoint) is
        planned with its ``setup_error`` and nothing else: every store is checked, so one dry
        run shows every set-up mistake of a manifest.

        Raises:
            RequestValidationError: with every problem found.
        """
        if self._state is not ImporterState.OPEN:
            raise ImporterClosedError("plan needs an open Importer")
        resolved = self._resolve(list(requests))
        unusable = await self._verify({store.key: store for store, _ in resolved})
        return await plan_stores(
            self._gateway,
            resolved,
            unusable=unusable,
            listed=self._listed,
            preflight=self._preflight,
            # A dry run always checks the sources (with the real gateway; a fake has no S3).
            new_preflight=self._new_preflight if self._own_gateway else None,
            settings=self.settings,
            sleep=self._sleep,
        )

    async def verify_setup(self, requests: Iterable[ImportRequest]) -> tuple[SetupError, ...]:
        """Make each store's first call now (one ListReferences, every store at once) and return
        the set-up problems found, one per store that cannot be used; sends no Start and journals
        nothing.

        A run that checks first and submits only the rows of usable stores leaves nothing behind
        for a store whose credentials, access, id or endpoint is wrong: fixing the set-up and
        running again starts afresh (the CLI does this). Within ``setup_timeout`` for a store that
        never answers.

        Raises:
            RequestValidationError: with every problem found.
        """
        self._check_open()
        stores = {store.key: store for store, _ in self._resolve(list(requests))}
        problems = await self._verify(stores)
        return tuple(problems[key] for key in stores if key in problems)

    async def _verify(self, stores: Mapping[str, StoreRef]) -> dict[str, SetupError]:
        """The first call of each store, all at once: set-up errors by store key. The first pages
        of the usable stores are kept for their lanes (``self._listed``)."""
        return await verify_stores(
            self._gateway,
            stores.values(),
            answered=self._answered,
            listed=self._listed,
            scopes=self._lane_scopes,
            stopping=self._stopping,
            settings=self.settings,
            sleep=self._sleep,
            clock=self._clock,
        )

    async def adopt(self) -> list[StoreRef]:
        """Start lanes for stores with work in the journal that this Importer does not drive yet.

        Rows queued by another process sharing the journal, or left behind by one that died, are
        then picked up: each new lane waits for its store's lease. Returns the adopted stores.
        """
        self._check_open()
        adopted = []
        for store in await self._journal.stores_with_work():
            if store.key not in self._lanes:
                log.info("store.adopted", store_id=store.store_id, region=store.region)
                self._lane(store).notify()
                adopted.append(store)
        return adopted

    async def status(self) -> ImporterStatus:
        """A read-only view: rows per store (from the journal), the job each store driven here
        runs, and API calls per operation and Region."""
        counts = await self._journal.counts()
        lanes = {k: (lane.store, lane.active_job, lane.idle) for k, lane in self._lanes.items()}
        stores = store_statuses(counts, lanes, self._setup_failures)
        # Who drives each store, whichever process of a fleet that is: any worker can answer.
        now = time.time()
        for i, st in enumerate(stores):
            lease = await self._journal.lease_holder(st.store)
            if lease is not None and lease[1] > now:
                stores[i] = replace(st, lease_holder=lease[0], held_here=lease[0] == self._owner)
        return ImporterStatus(tuple(stores), api_stats(self._pacer.limiters()), self._stopping)

    async def compact(self, older_than: float) -> int:
        """Forget rows settled before ``older_than`` (epoch seconds); returns how many.

        Their row ids then answer nothing. Long-running services call it now and then.
        """
        return await self._journal.compact(older_than)
