"""The progress display and the worker's metrics, fed a store's wait by hand (issue 19); and the
live display's columns at any width."""

from __future__ import annotations

import io

from rich.console import Console

from async_refimport._events import JobFinished, JobStarted, RowSettled, StorePaused
from async_refimport._metrics import WorkerMetrics
from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport._progress import FittingProgress, ImportProgress

STORE = StoreRef("1234567890", "us-east-1")
QUOTA = "the account's concurrent import quota is full; read-set imports count too"
LEASE = "another process (w2) drives this store; waiting up to 30 s for its lease"


def row(i: int, state: RowState) -> RowResult:
    return RowResult(i, STORE.store_id, STORE.region, f"g{i:03d}", f"s3://b/g{i}.fa", state)


def test_a_wait_is_said_at_once_once_per_reason_and_cleared_by_the_next_job() -> None:
    buf = io.StringIO()
    progress = ImportProgress(Console(file=buf, width=300), live=False, clock=lambda: 0.0)
    with progress:
        progress.set_rows([row(1, RowState.QUEUED), row(2, RowState.QUEUED)])
        progress.handle(StorePaused(STORE, QUOTA))
        progress.handle(StorePaused(STORE, QUOTA))  # the same wait again: said once
        said = f"refimport: store {STORE.store_id} (us-east-1) waits: {QUOTA}"
        assert buf.getvalue().count(said) == 1
        assert f"1 store(s) waiting ({STORE.store_id} (us-east-1) waits: {QUOTA})" in (
            progress.line()
        )
        progress.handle(StorePaused(STORE, LEASE))  # another reason: said too
        assert f"waits: {LEASE}" in buf.getvalue()
        progress.handle(JobStarted(STORE, "j1", "tok", 2, at=0.0))
        assert "waiting" not in progress.line()
        progress.handle(StorePaused(STORE, QUOTA))
        progress.handle(RowSettled(row(1, RowState.IMPORTED)))  # a row settles: moving again
        assert "waiting" not in progress.line()
        progress.handle(RowSettled(row(2, RowState.IMPORTED)))
        progress.handle(JobFinished(STORE, "j1", "COMPLETED", 2, 0, 0, 0, 1.0, 1.0))
    last = buf.getvalue().splitlines()[-1]
    assert "2/2 rows done" in last and "1 jobs finished" in last and "waiting" not in last


def test_the_live_bar_says_waiting_and_the_last_frame_says_how_it_ended() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=250)
    with ImportProgress(console) as progress:
        progress.set_rows([row(1, RowState.QUEUED)])
        progress.handle(StorePaused(STORE, QUOTA))
        bars = progress._progress
        assert bars is not None
        jobs = [task.fields["job"] for task in bars.tasks]
        assert f"waiting: {QUOTA}" in jobs and "0/1 stores importing, 1 waiting" in jobs
        progress.handle(JobStarted(STORE, "j1", "tok", 1, at=0.0))
        progress.handle(RowSettled(row(1, RowState.IMPORTED)))
        assert progress.ending_jobs()  # its rows are final, its end not told yet
        progress.handle(JobFinished(STORE, "j1", "COMPLETED", 1, 0, 0, 0, 1.0, 1.0))
        assert not progress.ending_jobs()
    out = buf.getvalue()
    tail = out[out.rindex("all stores") :]
    assert "1 job finished" in tail and "stores importing" not in tail


def test_the_columns_fit_any_width_the_counts_last() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    progress = FittingProgress(console=console, expand=True)
    task = progress.add_task("1234567890 (us-east-1)", total=300, failed="✗ 2", job="job 77 · 5")
    progress.update(task, completed=150)
    tasks = progress.tasks
    names = {
        width: [type(c).__name__ for c in progress.fitting(tasks, width)]
        for width in (200, 80, 40, 20, 8)
    }
    assert len(names[200]) == 8  # everything, the job too
    assert names[80].count("TextColumn") == 4 and "BarColumn" in names[80]  # no job column
    assert "BarColumn" not in names[40] and "TimeRemainingColumn" in names[40]
    assert names[20][0] == "MofNCompleteColumn" and "TimeElapsedColumn" in names[20]
    assert names[8] == ["MofNCompleteColumn"]  # the counts, always


def test_the_metrics_show_a_wait_then_its_end_one_series_per_store() -> None:
    import anyio

    metrics = WorkerMetrics()

    def scraped() -> list[str]:
        text = anyio.run(metrics.render, None).decode()
        return [line for line in text.splitlines() if line.startswith("refimport_store_waiting{")]

    assert scraped() == []
    metrics.observe(StorePaused(STORE, LEASE))
    metrics.observe(StorePaused(STORE, QUOTA))  # the last reason only
    [line] = scraped()
    assert 'store_id="1234567890"' in line and f'reason="{QUOTA}"' in line
    assert line.endswith(" 1.0")
    metrics.observe(JobStarted(STORE, "j1", "tok", 1, at=0.0))
    [line] = scraped()
    assert f'reason="{QUOTA}"' in line and line.endswith(" 0.0")
