"""The progress display, fed events by hand."""

from __future__ import annotations

import io

from rich.console import Console

from async_refimport._events import JobFinished, JobStarted, RequestRetried, RowSettled
from async_refimport._models import RowResult, RowState, StoreRef

STORE = StoreRef("1234567890", "us-east-1")


def row(i: int, state: RowState) -> RowResult:
    return RowResult(i, STORE.store_id, STORE.region, f"g{i:03d}", f"s3://b/g{i}.fa", state)


def test_plain_lines_count_rows_retries_and_eta() -> None:
    from async_refimport._progress import ImportProgress

    now = [0.0]
    buf = io.StringIO()
    progress = ImportProgress(Console(file=buf, width=200), live=False, clock=lambda: now[0])
    with progress:
        progress.set_rows([row(1, RowState.IMPORTED), row(2, RowState.QUEUED), row(3, RowState.QUEUED),
                           row(4, RowState.QUEUED)])  # fmt: skip
        assert "4 rows in 1 store(s) (1 already done)" in buf.getvalue()
        progress.handle(RequestRetried("ListReferences", STORE, 1, "ThrottlingException", 0.2))
        progress.handle(JobStarted(STORE, "j1", "tok", 3, at=0.0))
        now[0] = 10.0
        progress.handle(RowSettled(row(2, RowState.IMPORTED)))
        progress.handle(RowSettled(row(2, RowState.IMPORTED)))  # the same row again: counted once
        progress.handle(RowSettled(row(99, RowState.FAILED)))  # not ours
        line = progress.line()
        assert "2/4 rows done (imported 2, already present 0, failed 0)" in line
        assert "1 calls retried (last: ListReferences: ThrottlingException)" in line
        assert "ETA 0:20" in line
        progress.handle(RowSettled(row(3, RowState.FAILED)))
        progress.handle(RowSettled(row(4, RowState.ALREADY_PRESENT)))
        progress.handle(JobFinished(STORE, "j1", "COMPLETED_WITH_FAILURES", 1, 1, 1, 0, 5.0, 10.0))
    assert (
        "4/4 rows done (imported 2, already present 1, failed 1), 1 jobs finished" in buf.getvalue()
    )


def test_live_bars_render_on_a_terminal() -> None:
    from async_refimport._progress import ImportProgress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    with ImportProgress(console) as progress:
        progress.set_rows([row(1, RowState.QUEUED), row(2, RowState.QUEUED)])
        progress.handle(JobStarted(STORE, "j7", "tok", 2, at=0.0))
        progress.handle(RowSettled(row(1, RowState.IMPORTED)))
    out = buf.getvalue()
    assert "1234567890 (us-east-1)" in out and "all stores" in out and "1/2" in out
