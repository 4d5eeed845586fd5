"""Completion detection: knowing as early as possible, at few calls, that a job has ended.

A store takes one job at a time, so every second between a job's end and our noticing it is a
second the store sits idle. The stock waiter polls every 30 s; we instead *predict* the job's end from
earlier jobs of the same store (the service reports each job's creation and completion times) and
poll right then, then at short intervals that grow if the prediction was far off. When a poll shows
part of the sources finished, the rest of the job is extrapolated from them.

:class:`~async_refimport.completion.base.CompletionWatcher` is the seam for other detectors
(EventBridge events through SQS: :mod:`async_refimport.completion.events`); lanes only call ``wait``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from async_refimport._errors import RefImportError, TransientServiceError
from async_refimport._log import get_logger
from async_refimport._models import StoreRef
from async_refimport.aws.preflight import Preflight
from async_refimport.gateway.base import JobSnapshot, OmicsGateway
from async_refimport.journal.base import JobRecord, JobState, Journal

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PollingPolicy:
    """When to poll GetReferenceImportJob.

    Attributes:
        first_poll: Delay of the first poll when nothing is known about the store yet (seconds).
        growth: Without a prediction, each poll comes at ``growth`` times the job's age, so a
            job is noticed at most ``growth - 1`` of its duration late, in about
            log(duration / first_poll) / log(growth) polls. The same bound caps every later
            gap, so a job that overruns its prediction is never noticed later than that either.
        wrap_up_fraction: Once every source is done but the job is not, poll again after this
            fraction of the job's age.
        miss_penalty: What polling too early costs on top of the next tail step (seconds): the
            next Get waits for a slot of the paced budget, 1/5 s at AWS's 5 TPS.
        min_interval: The shortest gap between two polls of one job.
        max_interval: The longest gap between two polls of one job.
        tail_fraction: After the predicted end has passed, poll every this fraction of the
            predicted duration (or every half spread of the predictions, when smaller), each gap
            ``tail_growth`` times the last.
        tail_growth: How fast the gaps grow once the predicted end has passed.
        history: How many finished jobs of a store inform the prediction.
    """

    first_poll: float = 1.0
    growth: float = 1.08
    wrap_up_fraction: float = 0.05
    miss_penalty: float = 0.2
    min_interval: float = 0.02
    max_interval: float = 30.0
    tail_fraction: float = 0.01
    tail_growth: float = 1.25
    history: int = 20


_Fit = tuple[float, float, float]  # (mean x, mean y, slope)


class DurationPredictor:
    """Predicts a store's next job duration from its last jobs.

    When the job's bytes are known and earlier jobs of different sizes were seen: duration ≈
    a + b · bytes (a pack of wheat genomes takes longer than one of bacteria). Otherwise duration ≈
    a + b · sources: with jobs of one size (the common case: full packs of 100) their median
    duration; with mixed sizes, a least-squares line through (sources, duration).
    """

    def __init__(self, history: int = 20) -> None:
        self._samples: deque[tuple[int, int | None, float]] = deque(maxlen=history)

    def observe(self, sources: int, duration: float, size: int | None = None) -> None:
        """Learn from one finished job (ignored unless ``duration`` is positive).

        Args:
            sources: Its sources.
            duration: How long it ran (seconds).
            size: Its total source bytes, when known.
        """
        if duration > 0:
            self._samples.append((sources, size, duration))

    def predict(self, sources: int, size: int | None = None) -> float | None:
        """The predicted duration (seconds) of a job, or None before any job was learnt from.

        Args:
            sources: The job's sources.
            size: Its total source bytes, when known.
        """
        model = self._model(size)
        if model is None:
            return None
        (mean_x, mean_y, slope), by_size = model
        x = size if by_size and size is not None else sources
        return max(0.0, mean_y + slope * (x - mean_x))

    def spread(self, size: int | None = None) -> float:
        """The typical error of a prediction, 0 if unknown.

        Robust: 1.4826 times the median absolute residual (the standard deviation, for normal
        errors), so that one odd job (a slow first read, a retried call) does not widen every
        later margin.
        """
        model = self._model(size)
        if model is None:
            return 0.0
        (mean_x, center_y, slope), by_size = model
        points = self._points(by_size)
        if len(points) < 2:
            return 0.0
        residuals = [abs(y - (center_y + slope * (x - mean_x))) for x, y in points]
        return 1.4826 * statistics.median(residuals)

    def _points(self, by_size: bool) -> list[tuple[float, float]]:
        if by_size:
            return [(float(b), d) for _, b, d in self._samples if b is not None]
        return [(float(n), d) for n, _, d in self._samples]

    def _model(self, size: int | None) -> tuple[_Fit, bool] | None:
        """The fit to use: by bytes when they are known and vary among the samples."""
        if size is not None:
            fit = _fit(self._points(by_size=True))
            if fit is not None and fit[2] > 0:
                return fit, True
        fit = _fit(self._points(by_size=False))
        return (fit, False) if fit is not None else None


def _fit(points: list[tuple[float, float]]) -> _Fit | None:
    """Least squares through ``points`` (never a negative slope); when x does not vary, the
    median of y."""
    if not points:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if var_x == 0:
        # Jobs of one size: the median, which one odd job does not move.
        return mean_x, statistics.median(y for _, y in points), 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var_x
    return mean_x, mean_y, max(0.0, slope)


class PollingWatcher:
    """:class:`~async_refimport.completion.base.CompletionWatcher` that polls GetReferenceImportJob at predicted times.

    Args:
        gateway: Where to poll.
        policy: Poll timing.
        clock: Monotonic seconds (injectable).
        sleep: Async sleep (injectable).
    """

    def __init__(
        self,
        gateway: OmicsGateway,
        policy: PollingPolicy = PollingPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._gateway = gateway
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._predictors: dict[str, DurationPredictor] = {}
        # Every store's jobs, for a store's first job: stores of one user import similar genomes.
        self._pooled = DurationPredictor(policy.history)
        self._warm_lock = anyio.Lock()
        self._warmed: int | None = None
        self.polls = 0

    async def warm(self, journal: Journal, preflight: Preflight | None = None) -> int:
        """Seed the duration model from the journal's finished jobs (once per watcher).

        A second run, a restarted worker or another process on a shared journal then predicts
        its first job instead of starting cold. The durations are the service's own (one
        ListReferenceImportJobs per store, since its oldest remembered job): the journal's times
        would include how late each end was noticed. Jobs the List no longer shows fall back to
        the journal's times. With a pre-flight, each job's bytes are estimated from up to three
        of its sources, so the size-aware model starts warm too. Returns the jobs learnt from.
        """
        async with self._warm_lock:
            if self._warmed is not None:
                return self._warmed
            self._warmed = 0
            history = self._policy.history
            try:
                done = [
                    j
                    for j in await journal.jobs()
                    if j.state is JobState.DONE
                    and j.job_id
                    and j.status in ("COMPLETED", "COMPLETED_WITH_FAILURES")
                    and j.started_at is not None
                    and j.finished_at is not None
                    and j.finished_at > j.started_at
                ]
                rows: dict[str, list[str]] = {}
                if done:
                    for r in await journal.results():
                        if r.job_id:
                            rows.setdefault(r.job_id, []).append(r.source_file)
            except RefImportError as exc:
                log.warning("polling.warm_start_failed", error=str(exc))
                return 0
            by_store: dict[str, list[JobRecord]] = {}
            for job in done:  # oldest first
                by_store.setdefault(job.store.key, []).append(job)
            for store_jobs in by_store.values():
                jobs = store_jobs[-history:]
                durations = await self._service_durations(jobs)
                for job in jobs:
                    files = rows.get(job.job_id or "", [])
                    if not files or job.started_at is None or job.finished_at is None:
                        continue
                    duration = durations.get(job.job_id or "", job.finished_at - job.started_at)
                    size = await self._estimate_bytes(files, job.store, preflight)
                    self.predictor(job.store).observe(len(files), duration, size)
                    self._pooled.observe(len(files), duration, size)
                    self._warmed += 1
            if self._warmed:
                log.info("polling.warm_start", jobs=self._warmed)
            return self._warmed

    async def _service_durations(self, jobs: list[JobRecord]) -> dict[str, float]:
        """The service's own durations of ``jobs`` (of one store), by job id."""
        oldest = min(j.written_at for j in jobs)
        try:
            listed = await self._gateway.list_imports(
                jobs[0].store, datetime.fromtimestamp(oldest - 300, UTC)
            )
        except RefImportError as exc:
            log.debug("polling.warm_start_unlisted", error=str(exc))
            return {}
        return {
            j.job_id: (j.completed - j.created).total_seconds()
            for j in listed
            if j.created is not None and j.completed is not None and j.completed > j.created
        }

    @staticmethod
    async def _estimate_bytes(
        files: list[str], store: StoreRef, preflight: Preflight | None
    ) -> int | None:
        """A job's bytes from up to three of its sources' sizes (None when unknown)."""
        if preflight is None or preflight.off_reason is not None or not preflight.applies(store):
            return None
        sample = files[:: max(1, len(files) // 3)][:3]
        found = await preflight.check((f, store.profile) for f in sample)
        sizes = [c.size for f in sample if (c := found.get(f)) is not None and c.size is not None]
        if not sizes:
            return None
        return int(sum(sizes) / len(sizes) * len(files))

    def predictor(self, store: StoreRef) -> DurationPredictor:
        """The store's own duration model (made on first use)."""
        predictor = self._predictors.get(store.key)
        if predictor is None:
            predictor = DurationPredictor(self._policy.history)
            self._predictors[store.key] = predictor
        return predictor

    def next_delay(
        self,
        predicted: float | None,
        elapsed: float,
        misses: int,
        snapshot: JobSnapshot | None,
        spread: float = 0.0,
        baseline: tuple[float, int] | None = None,
    ) -> float:
        """Seconds until the next poll of a job that has run for ``elapsed`` seconds.

        ``spread`` is the predictor's typical error: the first poll comes a margin after the
        predicted end (see ``_margin``), later polls a half spread apart at first (see
        ``_tail``). ``baseline`` is an
        earlier poll's (age, sources done): the pace since then predicts the rest of the sources
        better than the job's whole age, which also counts its start-up.
        """
        p = self._policy
        extrapolated: float | None = None
        if snapshot is not None:
            total = len(snapshot.sources)
            finished = sum(1 for s in snapshot.sources if s.status in ("FINISHED", "FAILED"))
            if total and 0 < finished < total:
                # Sources are worked through in turn: extrapolate the rest from the pace since
                # the baseline, else from the job's age (an upper bound: it counts start-up too).
                if baseline is not None and finished > baseline[1] and elapsed > baseline[0]:
                    rate = (finished - baseline[1]) / (elapsed - baseline[0])
                    extrapolated = (total - finished) / rate
                else:
                    extrapolated = elapsed * (total - finished) / finished
            elif total and finished == total and predicted is None:
                # Every source is done: only the job's wrap-up is left, a small part of it.
                extrapolated = elapsed * p.wrap_up_fraction
        # However the prediction fares, no gap exceeds ``growth - 1`` of the job's age: a job
        # is never noticed later than that share of its length.
        cap = max(p.first_poll, elapsed * (p.growth - 1))
        if predicted is None:
            delay = p.first_poll if misses == 0 else cap
            if extrapolated is not None:
                delay = min(delay, extrapolated)
            return min(p.max_interval, max(p.min_interval, delay))
        if extrapolated is not None and elapsed >= predicted:
            return min(p.max_interval, cap, max(p.min_interval, extrapolated))
        first = predicted + self._margin(predicted, spread)
        if elapsed < first:
            return first - elapsed
        tail = self._tail(predicted, spread) * p.tail_growth ** max(0, misses - 1)
        return min(p.max_interval, cap, max(p.min_interval, tail))

    def _tail(self, predicted: float, spread: float) -> float:
        """The first gap between polls once the predicted end has passed.

        A share of the predicted duration; with a known spread, half of it when smaller (the
        end is then likely close): a miss then costs about a quarter spread of idle store.
        """
        p = self._policy
        tail = predicted * p.tail_fraction
        if spread > 0:
            tail = min(tail, max(spread / 2, tail / 10))
        return max(p.min_interval, tail)

    def _margin(self, predicted: float, spread: float) -> float:
        """How long after the predicted end to poll first.

        Polling late idles the store for the margin; polling early costs a miss: the store then
        idles up to the next tail step, plus the wait for a slot of the paced Get budget
        (``miss_penalty``). With normally distributed errors of ``spread``, the expected idle
        time of a margin of k spreads is spread·(k·Φ(k) + φ(k)) + (1 - Φ(k))·penalty; the best k
        among a few is taken.
        """
        if spread <= 0:
            return 0.0
        penalty = self._policy.miss_penalty + self._tail(predicted, spread) / 2

        def cost(k: float) -> float:
            cdf = 0.5 * (1 + math.erf(k / math.sqrt(2)))
            pdf = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
            return spread * (k * cdf + pdf) + (1 - cdf) * penalty

        best = min((k / 4 for k in range(13)), key=cost)
        return best * spread

    def predict(
        self, store: StoreRef, sources: int, size: int | None = None
    ) -> tuple[float | None, float]:
        """The predicted duration of a job of ``sources`` in ``store``, and its typical error.

        From the store's own jobs, else from every store's (a store's first job: stores of one
        user import similar genomes); ``(None, 0.0)`` when nothing is known yet.
        """
        predictor = self.predictor(store)
        predicted = predictor.predict(sources, size)
        if predicted is not None:
            return predicted, predictor.spread(size)
        return self._pooled.predict(sources, size), self._pooled.spread(size)

    def observe(
        self,
        store: StoreRef,
        sources: int,
        snapshot: JobSnapshot,
        started: float,
        size: int | None = None,
    ) -> None:
        """Learn from a job that ended: the service's own times when it reports them."""
        if snapshot.created is not None and snapshot.completed is not None:
            duration = (snapshot.completed - snapshot.created).total_seconds()
        else:
            duration = self._clock() - started
        self.predictor(store).observe(sources, duration, size)
        self._pooled.observe(sources, duration, size)

    async def wait(
        self, store: StoreRef, job_id: str, sources: int, started: float, size: int | None = None
    ) -> JobSnapshot:
        """See :meth:`CompletionWatcher.wait <async_refimport.CompletionWatcher.wait>`."""
        predicted, spread = self.predict(store, sources, size)
        log.debug("import_job.predicted", job_id=job_id, duration=predicted, spread=spread)
        misses = 0
        snapshot: JobSnapshot | None = None
        baseline: tuple[float, int] | None = None
        while True:
            if predicted is None:
                # A cold job (a fan-out's first jobs start together) learns from the first job
                # of any store that ends while it runs, instead of polling cold to its end.
                predicted, spread = self.predict(store, sources, size)
            elapsed = self._clock() - started
            await self._sleep(
                self.next_delay(predicted, elapsed, misses, snapshot, spread, baseline)
            )
            try:
                self.polls += 1
                snapshot = await self._gateway.get_import(store, job_id)
                if baseline is None and snapshot.status == "IN_PROGRESS":
                    done = sum(1 for s in snapshot.sources if s.status in ("FINISHED", "FAILED"))
                    baseline = (self._clock() - started, done)
            except TransientServiceError as exc:
                # The job keeps running whatever our network does: keep watching it.
                log.warning("import_job.poll_failed", job_id=job_id, error=str(exc))
                misses += 1
                continue
            if snapshot.done:
                self.observe(store, sources, snapshot, started, size)
                return snapshot
            misses += 1
