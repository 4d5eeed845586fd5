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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from ._errors import ImporterClosedError, RequestValidationError, TransientServiceError
from ._events import Event, RequestRetried, RowSettled, RowsQueued
from ._gateway import AwsGateway, OmicsGateway
from ._journal import Journal, lease_owner_name, resolve_journal
from ._lane import Lane, LaneDeps, LaneSettings
from ._log import get_logger
from ._models import MAX_SOURCES_PER_JOB, ImportRequest, RowResult, RowState, StoreRef
from ._models import validate_requests as _validate_requests
from ._pacing import Pacer, PacingPolicy
from ._polling import CompletionWatcher, PollingPolicy, PollingWatcher
from ._retry import RetryPolicy

log = get_logger(__name__)

# Seconds without a locally settled row before wait() re-reads the journal: rows may settle in
# another process sharing it. Long enough that a 100k-row wait() costs little.
_QUIET_RECHECK = 10.0
_QUIET_RECHECK_MAX = 160.0


@dataclass(frozen=True, slots=True)
class ImporterSettings:
    """Everything tunable about the engine; the defaults suit AWS.

    Attributes:
        max_sources_per_job: Rows packed into one import job (1..100).
        max_attempts: Jobs a row may take part in before a whole-job failure fails it.
        retry: Backoff for transient errors.
        pacing: Calls per second per (credentials, Region, operation).
        polling: When to poll running jobs.
        busy_wait: Seconds to wait when the store runs someone else's job (402) or retries ran out.
        lookup_margin: Clock-skew allowance (seconds) when searching for a job after a crash.
        existence_ttl: Seconds before a store's list of existing names is fetched again.
        lease_ttl: Seconds a process holds a store without renewing (several processes, one journal).
        shutdown_grace: Seconds a Start in flight may take to finish while closing.
        rescan_interval: Seconds an idle lane waits before looking at the journal again (rows
            queued by another process sharing the journal).
    """

    max_sources_per_job: int = MAX_SOURCES_PER_JOB
    max_attempts: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pacing: PacingPolicy = field(default_factory=PacingPolicy)
    polling: PollingPolicy = field(default_factory=PollingPolicy)
    busy_wait: float = 10.0
    lookup_margin: float = 60.0
    existence_ttl: float = 600.0
    lease_ttl: float = 30.0
    shutdown_grace: float = 30.0
    rescan_interval: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_sources_per_job <= MAX_SOURCES_PER_JOB:
            raise ValueError(f"max_sources_per_job must be 1..{MAX_SOURCES_PER_JOB}")


@dataclass(frozen=True, slots=True)
class StorePlan:
    """What a dry run found for one store."""

    store: StoreRef
    rows: int
    already_present: dict[str, str]
    jobs: int


def default_region() -> str | None:
    """The Region the AWS SDK would use: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the profile."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import botocore.session

    configured = botocore.session.Session().get_config_variable("region")
    return str(configured) if configured else None


class Importer:
    """Imports reference genomes, exactly once, into HealthOmics reference stores.

    Args:
        journal: A SQLite journal path (default: :func:`default_journal_path`), a
            ``dynamodb://TABLE`` URL (a journal shared by a fleet), or a :class:`Journal`.
        region: Region for requests that name none (default: the AWS SDK's configuration).
        max_sources_per_job: Shortcut for ``settings.max_sources_per_job``.
        settings: Retry, pacing, polling and other knobs.
        gateway: The HealthOmics seam (default: aioboto3); tests may pass a fake.
        watcher: Completion detection (default: predictive polling).
        owner: This process's name in store leases (default: host, pid and a random suffix).
        sleep: Async sleep for backoff and polling (injectable for tests).
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
    ) -> None:
        settings = settings or ImporterSettings()
        if max_sources_per_job is not None:
            settings = _replace_sources(settings, max_sources_per_job)
        self.settings = settings
        self.journal: Journal = resolve_journal(journal, region=region)
        self.region = region
        self.pacer = Pacer(settings.pacing, sleep=sleep)
        self._own_gateway = gateway is None
        self.gateway: OmicsGateway = gateway or AwsGateway(
            pacer=self.pacer, retry=settings.retry, sleep=sleep, on_retry=self._on_retry
        )
        self.watcher: CompletionWatcher = watcher or PollingWatcher(
            self.gateway, settings.polling, sleep=sleep
        )
        self._owner = owner or lease_owner_name()
        self._sleep = sleep
        self._lanes: dict[str, Lane] = {}
        self._subscribers: list[MemoryObjectSendStream[Event]] = []
        self._changed = anyio.Event()
        self._stopping = False
        self._state = "new"
        self._tg: TaskGroup | None = None
        self._lane_scopes: list[anyio.CancelScope] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Importer:
        if self._state != "new":
            raise ImporterClosedError("an Importer can be entered once; create a new one")
        self._state = "open"
        if self.region is None:
            self.region = await anyio.to_thread.run_sync(default_region)
        await self.journal.open()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        # Resume whatever an earlier run left unfinished.
        await self.adopt()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.stop()
        assert self._tg is not None
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._state = "closed"
            for stream in self._subscribers:
                stream.close()
            with anyio.CancelScope(shield=True):
                if self._own_gateway and isinstance(self.gateway, AwsGateway):
                    await self.gateway.aclose()
                await self.journal.close()

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
        return self._stopping

    def _check_open(self) -> None:
        if self._state != "open" or self._stopping:
            raise ImporterClosedError("the Importer is not open (or is stopping)")

    def _lane(self, store: StoreRef) -> Lane:
        lane = self._lanes.get(store.key)
        if lane is None:
            deps = LaneDeps(
                journal=self.journal,
                gateway=self.gateway,
                watcher=self.watcher,
                emit=self._emit,
                changed=self._signal_change,
                owner=self._owner,
                sleep=self._sleep,
            )
            s = self.settings
            lane = Lane(
                store,
                deps,
                LaneSettings(
                    max_sources_per_job=s.max_sources_per_job,
                    max_attempts=s.max_attempts,
                    retry=s.retry,
                    busy_wait=s.busy_wait,
                    lookup_margin=s.lookup_margin,
                    existence_ttl=s.existence_ttl,
                    lease_ttl=s.lease_ttl,
                    critical_grace=s.shutdown_grace,
                    rescan_interval=s.rescan_interval,
                ),
            )
            self._lanes[store.key] = lane
            assert self._tg is not None
            self._tg.start_soon(self._run_lane, lane, name=f"lane {store}")
        return lane

    async def _run_lane(self, lane: Lane) -> None:
        with anyio.CancelScope() as scope:
            self._lane_scopes.append(scope)
            if self._stopping:
                scope.cancel()
            while True:
                try:
                    await lane.run()
                except Exception as exc:
                    # A lane must not take the importer (and every other store) down with it.
                    log.exception("lane.crashed", store_id=lane.store.store_id, error=str(exc))
                    await self._sleep(self.settings.busy_wait)

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

    def _on_retry(
        self, operation: str, store: StoreRef, attempt: int, error: BaseException, delay: float
    ) -> None:
        code = error.code if isinstance(error, TransientServiceError) else type(error).__name__
        log.info(
            "api.retry", operation=operation, attempt=attempt, code=code, delay=round(delay, 3)
        )
        self._emit(RequestRetried(operation, store, attempt, code, delay))

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
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
        ids = await self.journal.add_rows(resolved, submission)
        per_store: dict[str, tuple[StoreRef, int]] = {}
        for store, _ in resolved:
            _, n = per_store.get(store.key, (store, 0))
            per_store[store.key] = (store, n + 1)
        for store, n in per_store.values():
            self._lane(store).notify()
            self._emit(RowsQueued(store, n))
        return ids

    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]:
        """The rows' current results (every row when ``row_ids`` is None), without waiting."""
        return await self.journal.results(row_ids)

    async def wait(self, row_ids: Sequence[int]) -> list[RowResult]:
        """Wait until every given row is final (or the Importer stops); returns their results."""
        async with self.subscribe() as events:
            pending = {
                r.row_id for r in await self.journal.results(row_ids) if not r.state.is_final
            }
            quiet, recheck = 0.0, _QUIET_RECHECK
            while pending and not self._stopping:
                heard = False
                with anyio.move_on_after(1.0):
                    async for event in events:
                        if isinstance(event, RowSettled):
                            heard = True
                            pending.discard(event.result.row_id)
                            if not pending:
                                break
                        elif self._stopping:
                            break
                if heard:
                    quiet, recheck = 0.0, _QUIET_RECHECK
                else:
                    quiet += 1.0
                if pending and quiet >= recheck:
                    # Quiet here: the rows may be settling in another process sharing the journal.
                    # Each quiet re-read waits twice as long as the last: a job of several
                    # minutes costs a few reads of the pending rows, not one every 10 seconds
                    # (each read is billed per row on a DynamoDB journal).
                    quiet, recheck = 0.0, min(recheck * 2, _QUIET_RECHECK_MAX)
                    pending = {
                        r.row_id
                        for r in await self.journal.results(sorted(pending))
                        if not r.state.is_final
                    }
        return await self.journal.results(row_ids)

    async def drain(self) -> None:
        """Wait until no row is queued or in flight in any store this Importer drives."""
        while not self._stopping:
            changed = self._changed
            if all(lane.idle for lane in self._lanes.values()):
                counts = await self.journal.counts()
                busy = any(
                    states.get(RowState.QUEUED, 0) or states.get(RowState.SUBMITTED, 0)
                    for store, states in counts.items()
                    if store.key in self._lanes
                )
                if not busy:
                    return
            with anyio.move_on_after(1.0):
                await changed.wait()

    async def plan(self, requests: Iterable[ImportRequest]) -> list[StorePlan]:
        """Dry run: validate, list each store's references once, count the jobs; sends no Start.

        Raises:
            RequestValidationError: with every problem found.
        """
        if self._state != "open":
            raise ImporterClosedError("plan needs an open Importer")
        resolved = self._resolve(list(requests))
        by_store: dict[str, tuple[StoreRef, list[ImportRequest]]] = {}
        for store, req in resolved:
            by_store.setdefault(store.key, (store, []))[1].append(req)
        plans: list[StorePlan] = []
        for store, reqs in by_store.values():
            refs = await self.gateway.list_references(store)
            names = {r.name: r.reference_id for r in refs if r.status in (None, "ACTIVE")}
            present = {r.name: names[r.name] for r in reqs if r.name in names}
            remaining = len(reqs) - len(present)
            jobs = math.ceil(remaining / self.settings.max_sources_per_job)
            plans.append(StorePlan(store, len(reqs), present, jobs))
        return plans

    async def adopt(self) -> list[StoreRef]:
        """Start lanes for stores with work in the journal that this Importer does not drive yet.

        Rows queued by another process sharing the journal, or left behind by one that died, are
        then picked up: each new lane waits for its store's lease. Returns the adopted stores.
        """
        self._check_open()
        adopted = []
        for store in await self.journal.stores_with_work():
            if store.key not in self._lanes:
                log.info("store.adopted", store_id=store.store_id, region=store.region)
                self._lane(store).notify()
                adopted.append(store)
        return adopted

    def lanes(self) -> dict[StoreRef, Lane]:
        """The stores driven by this Importer, with their lanes (queue depth lives in the journal)."""
        return {lane.store: lane for lane in self._lanes.values()}


def _replace_sources(settings: ImporterSettings, n: int) -> ImporterSettings:
    from dataclasses import replace

    return replace(settings, max_sources_per_job=n)
