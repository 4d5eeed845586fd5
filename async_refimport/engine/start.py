"""Getting a job id for a written-ahead job: the Start decision and the loop that acts on it.

How a failed Start is handled is decided by :func:`classify`, a pure function from the error (and
whether an earlier attempt may have created the job) to a :class:`StartAction`. :class:`Starter`
is the loop that acts on those decisions; its memory between attempts is one
:class:`StartAttempts`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import anyio

from async_refimport._errors import (
    CredentialsError,
    JournalError,
    ServiceError,
    StoreBusyError,
    TransientServiceError,
)
from async_refimport._events import RequestRetried, StorePaused
from async_refimport._log import get_logger
from async_refimport._models import StoreRef
from async_refimport._retry import backoff_delay, gave_up
from async_refimport._settings import ImporterSettings
from async_refimport.engine.deps import LaneDeps
from async_refimport.gateway.base import GET, START, SourceSpec
from async_refimport.journal.base import JobRecord

# The lane's own events: logged under the lane's name, as before this module was split off.
log = get_logger("async_refimport.engine.lane")

NOT_FOUND = "ResourceNotFoundException"
_ACTIVE_STATUSES = ("IN_PROGRESS", "SUBMITTED", "CANCELLING")

# How a Start is refused while the store runs a job is not documented, nor are the words of any
# refusal: decisions rest on codes and on what the service shows (the List), never on a message.
# A 402 is capacity: the store's one job slot, or the account's concurrent import quota (which
# read-set imports share) is taken. Never a verdict on the rows: they wait as long as it lasts.
QUOTA_CODE = "ServiceQuotaExceededException"
# A 409, or a 400 to a request the engine itself validated, may be how a busy store is refused
# (other AWS control planes answer so): confirmed with the List, and believed only once it has
# persisted while the store stayed free for ``consistency_grace``.
_CONFIRMED_CODES = frozenset({"ConflictException", "ValidationException"})
_CONFIRMED_STATUSES = frozenset({400, 409})
# Documented refusals that say something else whatever their status: no such store, no access.
_NEVER_BUSY_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException"})
_Sources = frozenset[tuple[str | None, str | None]]
"""A job's sources as (source file, name) pairs: what tells one job from another."""
QUOTA_FULL = "the account's concurrent import quota is full; read-set imports count too"
"""What a store waiting on the account's import quota is said to wait for (log, events)."""


class StartAction(StrEnum):
    """What to do after a failed attempt to get a job id (see :func:`classify`)."""

    RETRY = "retry"
    """Nothing happened at the service: back off, send again."""
    LOOKUP = "lookup"
    """The job may exist: back off, look for it, send only if it is absent."""
    CAPACITY = "capacity"
    """A 402: the store runs a job, or the account's import quota is full. Wait (longer and
    longer while the store shows no job), never fail the rows."""
    CONFIRM_BUSY = "confirm_busy"
    """A 400 or 409 that may mean "the store runs a job": ask the List whether one is active;
    only a refusal that persists while the store stays free for ``consistency_grace`` stands."""
    PAUSE = "pause"
    """Credentials lapsed, or a lookup is refused while the job may exist: keep it, wait."""
    REJECT = "reject"
    """A permanent refusal of a job that surely does not exist: its rows fail with the message."""


def is_capacity(error: ServiceError) -> bool:
    """Whether a refused Start says the store or the account has no room for a job now (402).

    Args:
        error: The failure, already mapped onto the error tree by the gateway.

    Returns:
        True for a :class:`StoreBusyError` and a Start refused with
        ``ServiceQuotaExceededException``: decided by the code alone.
    """
    if isinstance(error, StoreBusyError):
        return True
    return error.operation == START and error.code == QUOTA_CODE


def may_mean_busy(error: ServiceError) -> bool:
    """Whether a refused Start could mean that the store already runs an import job.

    Decided by the code (or the HTTP status) alone, never by the message's words: AWS documents
    no wording, and a busy store may be refused with 402, 409 or 400 in any words.

    Args:
        error: The failure, already mapped onto the error tree by the gateway.

    Returns:
        True for capacity (:func:`is_capacity`) and for a Start refused with 409 or 400.
    """
    if is_capacity(error):
        return True
    if error.operation != START or isinstance(error, TransientServiceError | CredentialsError):
        return False
    if error.code in _CONFIRMED_CODES:
        return True
    return error.code not in _NEVER_BUSY_CODES and error.status in _CONFIRMED_STATUSES


def classify(error: ServiceError, *, maybe_sent: bool) -> StartAction:
    """Decide what a failed Start, or a failed lookup before one, calls for.

    The one place the lane decides about a failed Start: pure, so its cases are a table
    (``tests/unit/test_lane_decisions.py``).

    Args:
        error: The failure, already mapped onto the error tree by the gateway.
        maybe_sent: Whether an earlier attempt may have created the job.

    Returns:
        The action :class:`Starter` takes.
    """
    if is_capacity(error):
        return StartAction.CAPACITY
    if may_mean_busy(error):
        return StartAction.CONFIRM_BUSY
    if isinstance(error, TransientServiceError):
        # A Start that timed out or lost its connection may have created the job.
        return StartAction.LOOKUP if maybe_sent or error.ambiguous else StartAction.RETRY
    if error.operation == GET and error.code == NOT_FOUND:
        # The lookup listed the job, but Get does not know it yet: read-after-write lag.
        return StartAction.LOOKUP
    if maybe_sent or isinstance(error, CredentialsError):
        # Failing the rows could orphan an import that runs (the job may exist), and lapsed
        # credentials are often refreshed by the credentials chain: wait instead.
        return StartAction.PAUSE
    return StartAction.REJECT


@dataclass(slots=True)
class StartAttempts:
    """What the Start loop remembers between attempts at one job.

    Attributes:
        maybe_sent: An earlier attempt (a crashed run, an ambiguous 408, a lost connection) may
            have created the job: look for it before sending again.
        failing_since: When the current run of retried failures began (``clock``).
        failures: Retried failures in that run.
        unconfirmed_since: Since when busy-looking refusals went unconfirmed by the List, if they
            do.
        quota_waits: Waits in a row on the account's import quota (the wait grows with them);
            0 when the last refusal was a busy store, or none.
        settles_at: When (``clock``) a lookup that finds no job is believed: the List may lag
            the job an ambiguous attempt (or a crashed run) created by up to
            ``consistency_grace``, and the service may have forgotten the clientToken, so sending
            again before then could start the same sources twice.
    """

    maybe_sent: bool
    failing_since: float
    failures: int = 0
    unconfirmed_since: float | None = None
    quota_waits: int = 0
    settles_at: float = 0.0

    def restart_failures(self, now: float) -> None:
        """Start a new run of retried failures at ``now``.

        Args:
            now: The lane's ``clock``.
        """
        self.failures, self.failing_since = 0, now

    def refusal_stands(self, now: float, grace: float) -> bool:
        """Whether a busy-looking refusal the List did not confirm has now lasted ``grace``.

        Args:
            now: The lane's ``clock``.
            grace: ``consistency_grace``: how long the List may lag.

        Returns:
            True once the store stayed free for ``grace`` seconds of such refusals.
        """
        if self.unconfirmed_since is None:
            self.unconfirmed_since = now
        return now - self.unconfirmed_since >= grace


class Starter:
    """The Start loop of one lane.

    Args:
        store: The lane's store.
        deps: What every lane shares.
        settings: The Importer's settings.
        check_lease: Raises :class:`LeaseLostError` unless this process still holds the store.
        pause: Tells that the store waits on an error (logged and emitted).
    """

    def __init__(
        self,
        store: StoreRef,
        deps: LaneDeps,
        settings: ImporterSettings,
        *,
        check_lease: Callable[[], Awaitable[None]],
        pause: Callable[[BaseException], None],
    ) -> None:
        self.store = store
        self._deps = deps
        self._settings = settings
        self._check_lease = check_lease
        self._pause = pause
        self.sent_at: float | None = None
        """When the last Start left (``clock``), for the job's poll timing; the lane resets it."""

    async def start(self, job: JobRecord, *, maybe_sent: bool) -> JobRecord | ServiceError:
        """Get a job id for a written-ahead job: adopt the job if it exists, else start it.

        Each failure is turned into a :class:`StartAction` by :func:`classify`; this loop only
        acts on it. With ``maybe_sent`` the service is searched before anything is sent again,
        because it may have forgotten the clientToken by now.

        Args:
            job: The written-ahead job (no job id yet).
            maybe_sent: An earlier attempt (a crashed run) may have created the job.

        Returns:
            The job with its id journaled, or the error that rejects it for good (its rows
            fail with it).

        Raises:
            LeaseLostError: another process took the store over.
            JournalError: the journal did not record the job id.
        """
        d, s = self._deps, self._settings
        sources = [SourceSpec(r.source_file, r.name, r.description, dict(r.tags)) for r in job.rows]
        # After a crash or an ambiguous attempt the List may not yet show the job (it lags), and
        # the service may have forgotten the clientToken: nothing is sent again until lookups
        # have found nothing for consistency_grace (settles_at), so the same sources never run
        # in two jobs of ours.
        now = d.clock()
        tries = StartAttempts(maybe_sent=maybe_sent, failing_since=now)
        if maybe_sent:
            # Counted from the write-ahead (wall clock): restarts in a row cannot starve the job.
            tries.settles_at = now + s.consistency_grace - max(0.0, d.wall() - job.written_at)
        while True:
            try:
                return await self._attempt(job, sources, tries)
            except ServiceError as exc:
                error = exc
            action = classify(error, maybe_sent=tries.maybe_sent)
            if error.operation == START and getattr(error, "ambiguous", False):
                # This attempt may have created the job: a lookup finding nothing is believed
                # only once the List has had consistency_grace to show it. (A refusal, or a
                # throttle, surely created nothing: it does not restart the wait.)
                tries.settles_at = d.clock() + s.consistency_grace
            tries.maybe_sent = tries.maybe_sent or action is StartAction.LOOKUP
            if action is StartAction.CAPACITY:
                await self._wait_for_capacity(error, tries)
                continue
            if action is StartAction.CONFIRM_BUSY:
                if not await self._refusal_stands(error, tries):
                    await d.sleep(s.busy_wait)
                    continue
                action = StartAction.REJECT  # the store stayed free: the refusal stands
            if action in (StartAction.RETRY, StartAction.LOOKUP):
                await self._back_off(error, tries)
                continue
            tries.restart_failures(d.clock())
            if action is StartAction.PAUSE:
                self._pause(error)
                await d.sleep(s.busy_wait)
                continue
            return error

    async def _attempt(
        self, job: JobRecord, sources: list[SourceSpec], tries: StartAttempts
    ) -> JobRecord:
        """One attempt: look for the job first if it may exist, else (or if absent) send it.

        While the List cannot be believed yet (``settles_at``), an empty lookup is repeated
        sparsely (every quarter of ``consistency_grace``, at least ``busy_wait`` apart), never
        at the retry backoff's pace: a few calls per ambiguous Start, not one a second.
        """
        d, s = self._deps, self._settings
        if tries.maybe_sent:
            known: dict[str, _Sources] = {}
            while True:
                found = await self._find(job, sources, known)
                if found is not None:
                    log.info("import_job.adopted", job_id=found)
                    return await self._record_job_id(job, found)
                wait = tries.settles_at - d.clock()
                if wait <= 0:
                    break
                log.info("import_job.not_listed_yet", wait=round(wait, 3))
                await d.sleep(min(wait, max(s.busy_wait, s.consistency_grace / 4)))
        return await self._send(job, sources)

    async def _refusal_stands(self, error: ServiceError, tries: StartAttempts) -> bool:
        """After a busy-looking refusal: False to wait and try again, True when it stands."""
        if await self._store_busy():
            # Someone else's job, or ours if an ambiguous attempt created it: `maybe_sent`
            # makes the next round look for it first.
            log.info("store.busy", code=error.code, wait=self._settings.busy_wait)
            tries.unconfirmed_since = None
            return False
        if not tries.refusal_stands(self._deps.clock(), self._settings.consistency_grace):
            # No active job listed: it may have just ended, or the List may lag.
            log.info("store.refusal_unconfirmed", code=error.code, error=error.message)
            return False
        return True

    async def _wait_for_capacity(self, error: ServiceError, tries: StartAttempts) -> None:
        """After a 402: wait for the store's job to end, or for the account's quota to free up.

        A store that shows an active job is busy: wait ``busy_wait``. A store that shows none is
        waiting on the account's concurrent import quota (read-set imports take it too, or the
        List lags): said once per episode, then waited out with a growing back-off capped at
        ``quota_wait_max``, for as long as it lasts. Neither ever fails the rows.
        """
        s = self._settings
        if await self._store_busy():
            log.info("store.busy", code=error.code, wait=s.busy_wait)
            tries.quota_waits = 0
            await self._deps.sleep(s.busy_wait)
            return
        tries.quota_waits += 1
        delay = min(s.quota_wait_max, s.busy_wait * 2 ** min(tries.quota_waits - 1, 30))
        if tries.quota_waits == 1:
            log.warning("account.quota_full", reason=QUOTA_FULL, code=error.code, wait=delay)
            self._deps.emit(StorePaused(self.store, QUOTA_FULL))
        await self._deps.sleep(delay)

    async def _back_off(self, error: ServiceError, tries: StartAttempts) -> None:
        """Wait before the next attempt, with backoff; a pause once the retry policy gives up."""
        d, s = self._deps, self._settings
        tries.failures += 1
        if gave_up(s.retry, tries.failures, d.clock() - tries.failing_since):
            # The rows must not be dropped: the job stays written ahead; try again (looking for
            # it first if need be) after a pause.
            log.warning("import_job.start_failed", error=str(error))
            tries.restart_failures(d.clock())
            await d.sleep(s.busy_wait)
        else:
            delay = backoff_delay(s.retry, tries.failures)
            self._on_retry(tries.failures, error, delay)
            await d.sleep(delay)

    async def _send(self, job: JobRecord, sources: list[SourceSpec]) -> JobRecord:
        """Send the Start once and journal the id it returns."""
        d = self._deps
        # Shielded: a Start in flight is finished and its id journaled even while the importer
        # closes, so the next run need not search for it.
        await self._check_lease()
        with anyio.move_on_after(self._settings.shutdown_grace, shield=True):
            # The job's clock starts when the request leaves, not when the answer (and its
            # journal write) is back: polls then land on time.
            self.sent_at = d.clock()
            job_id = await d.gateway.start_import(
                self.store, job.role_arn, sources, job.client_token
            )
            return await d.journal.record_job_id(job, job_id, owner=d.owner)
        # The grace period ran out mid-call: the job stays written ahead, and may exist.
        raise TransientServiceError(
            "start did not finish within the grace period",
            code="Timeout",
            operation=START,
            store_id=self.store.store_id,
            ambiguous=True,
        )

    async def _record_job_id(self, job: JobRecord, job_id: str) -> JobRecord:
        d = self._deps
        with anyio.move_on_after(self._settings.shutdown_grace, shield=True):
            return await d.journal.record_job_id(job, job_id, owner=d.owner)
        raise JournalError(
            f"the journal did not record job {job_id} within {self._settings.shutdown_grace} s"
        )

    async def _store_busy(self) -> bool:
        """Whether ListReferenceImportJobs shows an active job on the store.

        The List filters by one status at a time: one call per active status, stopping at the
        first that shows a job. When the List itself fails, the store counts as busy (waiting is
        safe; failing the rows on a refusal that may mean "busy" is not).
        """
        try:
            for status in _ACTIVE_STATUSES:
                if await self._deps.gateway.list_imports(self.store, status=status):
                    return True
        except ServiceError as exc:
            log.warning("store.busy_check_failed", error=str(exc))
            return True
        return False

    def _on_retry(self, attempt: int, error: BaseException, delay: float) -> None:
        code = getattr(error, "code", type(error).__name__)
        log.info("import_job.start_retry", attempt=attempt, code=code, delay=round(delay, 3))
        self._deps.emit(RequestRetried(START, self.store, attempt, str(code), delay))

    async def _find(
        self,
        job: JobRecord,
        sources: list[SourceSpec],
        seen: dict[str, _Sources] | None = None,
    ) -> str | None:
        """Find a job the service created for these exact sources since the write-ahead.

        Args:
            job: The written-ahead job.
            sources: Its sources.
            seen: The sources of candidates already read (a job's sources never change), so
                that looking again reads only new candidates.
        """
        d = self._deps
        seen = {} if seen is None else seen
        since = datetime.fromtimestamp(job.written_at - self._settings.lookup_margin, UTC)
        known = await d.journal.known_job_ids(self.store)
        wanted = frozenset((s.source_file, s.name) for s in sources)
        candidates = [
            j for j in await d.gateway.list_imports(self.store, since) if j.job_id not in known
        ]
        for candidate in candidates:
            if candidate.job_id not in seen:
                snapshot = await d.gateway.get_import(self.store, candidate.job_id)
                seen[candidate.job_id] = frozenset(
                    (s.source_file, s.name) for s in snapshot.sources
                )
            if seen[candidate.job_id] == wanted:
                return candidate.job_id
        log.info("import_job.lookup_empty", candidates=len(candidates))
        return None
