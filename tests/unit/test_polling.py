from __future__ import annotations

from async_refimport import PollingPolicy
from async_refimport._gateway import JobSnapshot, SourceStatus
from async_refimport._polling import DurationPredictor, PollingWatcher
from tests.unit.fakes import FakeOmics


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
    w = PollingWatcher(FakeOmics(), PollingPolicy(min_interval=0.05, tail_fraction=0.02))
    assert w.next_delay(predicted=100.0, elapsed=0.0, misses=0, snapshot=None) == 100.0
    assert w.next_delay(predicted=100.0, elapsed=100.0, misses=1, snapshot=None) == 2.0
    assert w.next_delay(predicted=100.0, elapsed=102.0, misses=2, snapshot=None) == 4.0


def test_unknown_duration_backs_off_exponentially_to_the_cap() -> None:
    w = PollingWatcher(FakeOmics(), PollingPolicy(first_poll=1.0, max_interval=30.0))
    delays = [w.next_delay(None, 0.0, m, None) for m in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_partial_progress_extrapolates_the_rest() -> None:
    w = PollingWatcher(FakeOmics(), PollingPolicy())
    sources = tuple(
        SourceStatus(f"r{i}", None, "FINISHED" if i < 25 else "IN_PROGRESS") for i in range(100)
    )
    snap = JobSnapshot("1", "IN_PROGRESS", None, None, None, sources)
    # A quarter done after 10 s: about 30 s to go.
    assert w.next_delay(None, 10.0, 1, snap) == 30.0
