from __future__ import annotations

from pathlib import Path

from async_refimport import PollingPolicy, RowState, SQLiteJournal, StoreRef
from async_refimport.completion.polling import DurationPredictor, PollingWatcher
from async_refimport.gateway.aws import JobSnapshot, SourceStatus
from async_refimport.journal.base import Settlement
from tests.helpers.fakes import FakeOmics
from tests.unit.test_importer_logic import requests


def test_predictor_uses_mean_for_one_job_size() -> None:
    p = DurationPredictor()
    assert p.predict(100) is None
    for d in (10.0, 12.0, 11.0):
        p.observe(100, d)
    assert p.predict(100) == 11.0


def test_predictor_fits_overhead_plus_per_source() -> None:
    p = DurationPredictor()
    for n in (10, 50, 100):
        p.observe(n, 30.0 + 0.5 * n)
    predicted = p.predict(20)
    assert predicted is not None and abs(predicted - 40.0) < 1e-6


def test_first_poll_lands_on_the_predicted_end_then_tightens() -> None:
    w = PollingWatcher(
        FakeOmics(), PollingPolicy(min_interval=0.05, tail_fraction=0.02, tail_growth=1.25)
    )
    assert w.next_delay(predicted=100.0, elapsed=0.0, misses=0, snapshot=None) == 100.0
    assert w.next_delay(predicted=100.0, elapsed=100.0, misses=1, snapshot=None) == 2.0
    assert w.next_delay(predicted=100.0, elapsed=102.0, misses=2, snapshot=None) == 2.5


def test_a_job_far_longer_than_predicted_is_never_noticed_later_than_the_bound() -> None:
    policy = PollingPolicy(first_poll=1.0, growth=1.08, max_interval=1e9)
    w = PollingWatcher(FakeOmics(), policy)
    # Predicted at 10 s, the job runs 1000 s: past the prediction, each gap stays within 8% of
    # the job's age, so whenever it ends, it is noticed within 8% of its length.
    elapsed = w.next_delay(10.0, 0.0, 0, None)
    misses = 1
    while elapsed < 1000.0:
        gap = w.next_delay(10.0, elapsed, misses, None)
        assert gap <= max(policy.first_poll, elapsed * 0.08) + 1e-9
        elapsed, misses = elapsed + gap, misses + 1
    assert misses < 100  # and in few polls: the gaps grow with the overrun


def test_unknown_duration_polls_geometrically_to_the_cap() -> None:
    w = PollingWatcher(FakeOmics(), PollingPolicy(first_poll=1.0, growth=1.5, max_interval=30.0))
    elapsed, times = 0.0, []
    for misses in range(12):
        elapsed += w.next_delay(None, elapsed, misses, None)
        times.append(elapsed)
    assert times[:5] == [1.0, 2.0, 3.0, 4.5, 6.75]  # each poll at 1.5x the job's age
    assert times[-1] - times[-2] == 30.0  # never more than max_interval apart


def test_first_job_uses_partial_progress_when_it_is_sooner() -> None:
    w = PollingWatcher(FakeOmics(), PollingPolicy(first_poll=1.0, growth=1.5))
    sources = tuple(
        SourceStatus(f"r{i}", None, "FINISHED" if i < 90 else "IN_PROGRESS") for i in range(100)
    )
    snap = JobSnapshot("1", "IN_PROGRESS", None, None, None, sources)
    assert abs(w.next_delay(None, 9.0, 1, snap) - 1.0) < 1e-9


def test_partial_progress_extrapolates_the_rest() -> None:
    w = PollingWatcher(FakeOmics(), PollingPolicy(first_poll=1.0, growth=1.08))
    sources = tuple(
        SourceStatus(f"r{i}", None, "FINISHED" if i < 99 else "IN_PROGRESS") for i in range(100)
    )
    snap = JobSnapshot("1", "IN_PROGRESS", None, None, None, sources)
    # 99 of 100 done after 100 s of a job predicted at 80 s: the last one in about 1 s, sooner
    # than the 8 s the bound alone would wait.
    assert abs(w.next_delay(80.0, 100.0, 1, snap) - 100 / 99) < 1e-9
    # A quarter done: 30 s to go by the pace, but never a gap over 8% of the job's age.
    quarter = tuple(
        SourceStatus(f"r{i}", None, "FINISHED" if i < 25 else "IN_PROGRESS") for i in range(100)
    )
    snap = JobSnapshot("1", "IN_PROGRESS", None, None, None, quarter)
    assert abs(w.next_delay(8.0, 100.0, 1, snap) - 8.0) < 1e-9


def test_spread_sets_the_first_poll_and_the_tail() -> None:
    p = DurationPredictor()
    for d in (99.0, 101.0, 99.0, 101.0):
        p.observe(100, d)
    # The median, and 1.4826 median absolute deviations (the standard deviation of normal errors).
    assert p.predict(100) == 100.0 and abs(p.spread() - 1.4826) < 1e-9
    w = PollingWatcher(
        FakeOmics(), PollingPolicy(min_interval=0.01, tail_fraction=0.02, miss_penalty=0.2)
    )
    # A spread larger than what a miss costs: poll at the predicted end, then a half spread apart.
    assert w.next_delay(100.0, 0.0, 0, None, spread=1.0) == 100.0
    assert w.next_delay(100.0, 100.0, 1, None, spread=1.0) == 0.5
    # Misses cost more than a small spread: poll later, in spreads.
    assert w.next_delay(100.0, 0.0, 0, None, spread=0.01) >= 100.02
    assert w.next_delay(100.0, 0.0, 0, None, spread=0.0) == 100.0


def test_pace_since_an_earlier_poll_predicts_the_rest() -> None:
    w = PollingWatcher(FakeOmics(), PollingPolicy(growth=1.5))
    sources = tuple(
        SourceStatus(f"r{i}", None, "FINISHED" if i < 50 else "IN_PROGRESS") for i in range(100)
    )
    snap = JobSnapshot("1", "IN_PROGRESS", None, None, None, sources)
    # 10 sources at age 20 s (a slow start), 50 at 30 s: 4 a second, so 12.5 s to go,
    # where the whole age alone would say 30 s.
    assert w.next_delay(None, 30.0, 2, snap, baseline=(20.0, 10)) == 12.5


async def test_warm_start_learns_each_store_and_the_pool_from_the_journal(tmp_path: Path) -> None:
    now = [1000.0]
    a, b, c = (StoreRef(f"{n}" * 10, "us-east-1") for n in (1, 2, 3))
    async with SQLiteJournal(tmp_path / "j.sqlite", clock=lambda: now[0]) as journal:
        for store, seconds, rows in ((a, 40.0, 4), (a, 44.0, 4), (b, 90.0, 2)):
            await journal.add_rows(
                [(store, r) for r in requests(rows, f"{store.store_id}-{seconds}")]
            )
            job = await journal.begin_job(
                store, await journal.queued_rows(store, 100), f"t{seconds}"
            )
            job = await journal.record_job_id(job, f"job-{seconds}")
            now[0] += seconds
            settled = [Settlement(r.row_id, RowState.IMPORTED, "1234567890") for r in job.rows]
            await journal.finish_job(job, settled, status="COMPLETED")
        # A job still running and a lost one teach nothing.
        await journal.add_rows([(b, r) for r in requests(1, "running")])
        running = await journal.begin_job(b, await journal.queued_rows(b, 100), "t-running")
        await journal.record_job_id(running, "job-running")
        watcher = PollingWatcher(FakeOmics())
        assert watcher.predict(a, 4) == (None, 0.0)
        assert await watcher.warm(journal) == 3
        assert await watcher.warm(journal) == 3  # once
    predicted, spread = watcher.predict(a, 4)
    assert predicted == 42.0 and abs(spread - 1.4826 * 2) < 1e-9
    assert watcher.predict(b, 2)[0] == 90.0
    # A store with no history of its own starts from every store's.
    pooled = watcher.predict(c, 4)[0]
    assert pooled is not None and 40.0 <= pooled <= 90.0


def test_predictor_uses_bytes_when_known_and_varied() -> None:
    p = DurationPredictor()
    # Packs of 100 sources: bacteria (5 Mb each) and wheat (15 Gb each) take very different times.
    p.observe(100, 40.0, size=100 * 5_000_000)
    p.observe(100, 4000.0, size=100 * 15_000_000_000)
    p.observe(100, 41.0, size=100 * 5_000_000)
    by_sources = p.predict(100)
    wheat = p.predict(100, size=100 * 15_000_000_000)
    bacteria = p.predict(100, size=100 * 5_000_000)
    assert by_sources == 41.0  # the median of the three: far wrong for wheat
    assert wheat is not None and abs(wheat - 4000.0) < 5
    assert bacteria is not None and abs(bacteria - 40.5) < 5
    assert p.spread(size=1) < p.spread()


def test_predictor_without_sizes_falls_back_to_sources() -> None:
    p = DurationPredictor()
    p.observe(10, 20.0)
    p.observe(10, 22.0, size=1000)
    assert p.predict(10, size=5000) == 21.0  # one size seen: nothing to fit bytes on
