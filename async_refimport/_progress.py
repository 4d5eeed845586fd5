"""The progress display of ``refimport import``: it renders the Importer's events.

On a terminal: a live bar per store and one overall (rows done of total, failures, ETA, the job
running now). Otherwise: a plain line every few seconds, so CI logs and ``nohup`` files stay
readable. Everything goes to stderr; stdout is kept for the summary and ``--json``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from async_refimport._events import (
    Event,
    JobFinished,
    JobStarted,
    RequestRetried,
    RowSettled,
    RowsQueued,
    StoreChecked,
    StorePaused,
)
from async_refimport._models import RowResult, RowState
from async_refimport._rowset import RowIdSet


@dataclass(slots=True)
class StoreProgress:
    """Counters of one store (keyed by store id and Region, as rows are)."""

    label: str
    total: int = 0
    imported: int = 0
    already_present: int = 0
    failed: int = 0
    jobs_done: int = 0
    job: str = ""
    retries: int = 0
    last_retry: str = ""
    #: Why the store waits (the engine's StorePaused reason), until its next job or row.
    waiting: str = ""
    #: A job of the store runs (started, its end not told yet).
    running: bool = False

    @property
    def done(self) -> int:
        """Rows of this store that are final: imported, already present or failed."""
        return self.imported + self.already_present + self.failed


def _key(store_id: str, region: str) -> tuple[str, str]:
    return (store_id, region)


class ImportProgress:
    """Tracks rows per store from events and shows them (live bars or plain lines).

    Args:
        console: Where to draw (stderr).
        live: Live bars (default: when the console is a terminal).
        interval: Seconds between plain lines.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        console: Console,
        *,
        live: bool | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.interval = interval
        self.clock = clock
        self.stores: dict[tuple[str, str], StoreProgress] = {}
        # The run's rows not counted as final yet (None: every row an event names is the run's).
        # A row leaves it once counted, so an event racing with add_rows(), or a row's settling
        # told twice, never counts it twice. Compact: 9 bytes a row.
        self._unsettled: RowIdSet | None = None
        self._started = clock()
        self._done_at_start = 0
        self._progress: FittingProgress | None = None
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._overall: TaskID | None = None
        # Set once the run has ended: the last frame says how it ended, not what ran last.
        self._final = False

    # -- state ----------------------------------------------------------------------------------

    def set_rows(self, results: Iterable[RowResult]) -> None:
        """Totals from the submitted rows; rows already final (a resumed run) count as done.

        Args:
            results: Every row of the run, as journaled (:meth:`expect`, :meth:`add_rows` and
                :meth:`begin` in one call, for a run small enough to hold).
        """
        results = list(results)
        self.expect([r.row_id for r in results])
        self.add_rows(results)
        self.begin()

    def expect(self, row_ids: Iterable[int]) -> None:
        """The run's rows, by id: events of other rows are not counted. Then :meth:`add_rows`.

        Args:
            row_ids: The journal's id of every row of the run.
        """
        self._unsettled = RowIdSet(row_ids)

    def add_rows(self, results: Iterable[RowResult]) -> None:
        """Count submitted rows (a page at a time for a large run; :meth:`expect` named them
        all), then call :meth:`begin`.

        Args:
            results: Some of the run's rows, as journaled.

        Raises:
            RuntimeError: :meth:`expect` was not called first.
        """
        if self._unsettled is None:
            raise RuntimeError("expect() the run's rows first")
        for r in results:
            if not r.state.is_final:
                self._unsettled.add(r.row_id)
            s = self._store(r.store_id, r.region)
            s.total += 1
            self._count(s, r.state, +1)

    def begin(self) -> None:
        """Every row is counted: the run's clock starts (ETA), and a plain display says so."""
        self._done_at_start = self.done
        self._started = self.clock()
        self._refresh_all()
        if not self.live:
            resumed = f" ({self.done} already done)" if self.done else ""
            self.console.print(
                f"refimport: {self.total} rows in {len(self.stores)} store(s){resumed}; "
                f"a progress line every {self.interval:.0f} s",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def _store(self, store_id: str, region: str) -> StoreProgress:
        key = _key(store_id, region)
        s = self.stores.get(key)
        if s is None:
            s = self.stores[key] = StoreProgress(f"{store_id} ({region})")
        return s

    @staticmethod
    def _count(s: StoreProgress, state: RowState, n: int) -> None:
        if state is RowState.IMPORTED:
            s.imported += n
        elif state is RowState.ALREADY_PRESENT:
            s.already_present += n
        elif state is RowState.FAILED:
            s.failed += n

    @property
    def total(self) -> int:
        """Rows of the run, every store's."""
        return sum(s.total for s in self.stores.values())

    @property
    def done(self) -> int:
        """Rows of the run that are final, every store's."""
        return sum(s.done for s in self.stores.values())

    def ending_jobs(self) -> bool:
        """Whether a store's rows are all final while its job's end is not told yet: the job's
        JobFinished follows its rows' RowSettled, and the last frame should count it."""
        return any(s.running and s.done >= s.total for s in self.stores.values())

    def eta(self) -> float | None:
        """Seconds left at the rate seen in this run, or None before the first row settles."""
        settled = self.done - self._done_at_start
        if settled <= 0:
            return None
        rate = settled / max(self.clock() - self._started, 1e-6)
        return (self.total - self.done) / rate

    def handle(self, event: Event) -> None:
        """Apply one Importer event.

        Args:
            event: A row settled, a job started or ended, a call retried, a store paused ...;
                events of rows not expected, or settled already, change nothing.
        """
        if isinstance(event, RowSettled):
            self._settled(event.result)
            return
        if isinstance(event, StorePaused):
            self._paused(event)
            return
        if isinstance(event, RowsQueued):
            return  # the rows are counted from the journal (add_rows), not from this
        store = event.store
        s = self._store(store.store_id, store.region)
        if isinstance(event, JobStarted):
            s.waiting = ""  # a job runs: whatever the store waited for is over
            s.running = True
            s.job = f"job {event.job_id} · {event.rows} rows"
        elif isinstance(event, JobFinished):
            s.jobs_done += 1
            s.running = False
            s.job = f"last job {event.status.lower()} in {event.duration:.1f} s"
        elif isinstance(event, StoreChecked):
            if event.already_present:
                s.job = f"{event.already_present} already in the store"
        elif isinstance(event, RequestRetried):
            s.retries += 1
            s.last_retry = f"{event.operation}: {event.code}"
            if not s.job.startswith("job "):
                s.job = f"retrying {event.operation} ({event.code}), attempt {event.attempt}"
        self._refresh(store.store_id, store.region)

    def _settled(self, r: RowResult) -> None:
        """Count a row that reached a final state (once, and only a row of this run)."""
        if self._unsettled is not None:
            if r.row_id not in self._unsettled:
                return  # counted already, or another caller's row (a shared journal)
            self._unsettled.discard(r.row_id)
        s = self._store(r.store_id, r.region)
        s.waiting = ""  # a row settled: the store is moving again
        self._count(s, r.state, +1)
        self._refresh(r.store_id, r.region)

    def _paused(self, event: StorePaused) -> None:
        """A store waits (a full account quota, another process's lease ...): say why.

        The plain display says it at once, one line each time the reason changes, not at the
        next progress line: a wait can last minutes, and the user should not wonder why.
        """
        s = self._store(event.store.store_id, event.store.region)
        changed = s.waiting != event.reason
        s.waiting = event.reason
        if changed and not self.live:
            self.console.print(
                f"refimport: store {s.label} waits: {event.reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        self._refresh(event.store.store_id, event.store.region)

    # -- rendering ------------------------------------------------------------------------------

    def __enter__(self) -> ImportProgress:
        """Start the live display (on a terminal; the plain one needs no start).

        Returns:
            This display.
        """
        if self.live:
            self._progress = FittingProgress(
                console=self.console,
                refresh_per_second=8,
                transient=False,
                expand=True,
            )
            self._progress.start()
            self._overall = self._progress.add_task("all stores", total=None, failed="", job="")
            self._refresh_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Draw the last frame (live) or print the last line (plain): the run's final state."""
        self._final = True
        if self._progress is not None:
            self._refresh_all()
            self._progress.refresh()
            self._progress.stop()
            self._progress = None
        else:
            self.print_line()

    def _refresh_all(self) -> None:
        for store_id, region in list(self.stores):
            self._refresh(store_id, region)

    def _job_text(self, s: StoreProgress) -> str:
        """What a store's bar says it does: its wait, its job, or (last frame) how it ended."""
        if self._final:
            ended = f"{s.jobs_done} job{'' if s.jobs_done == 1 else 's'} finished"
            return ended if s.done >= s.total else f"{ended}, {s.total - s.done} rows unfinished"
        if s.waiting:
            return f"waiting: {s.waiting}"
        return s.job

    def _overall_text(self) -> str:
        """What the overall bar says: stores importing and waiting, or (last frame) the end."""
        stores = self.stores.values()
        if self._final:
            jobs = sum(x.jobs_done for x in stores)
            left = self.total - self.done
            ended = f"{jobs} job{'' if jobs == 1 else 's'} finished"
            return ended + (f", {left} rows unfinished" if left else "")
        busy = sum(1 for x in stores if x.job.startswith("job ") and not x.waiting)
        waiting = sum(1 for x in stores if x.waiting)
        text = f"{busy}/{len(self.stores)} stores importing"
        return text + (f", {waiting} waiting" if waiting else "")

    def _refresh(self, store_id: str, region: str) -> None:
        p = self._progress
        if p is None:
            return
        key = _key(store_id, region)
        s = self.stores[key]
        task = self._tasks.get(key)
        failed = f"✗ {s.failed}" if s.failed else ""
        # The columns are markup templates: values from data are escaped into them.
        job = escape(self._job_text(s))
        if task is None:
            task = p.add_task(escape(s.label), total=s.total or None, failed=failed, job="")
            self._tasks[key] = task
        p.update(task, total=s.total or None, completed=s.done, failed=failed, job=job)
        if self._overall is not None:
            total_failed = sum(x.failed for x in self.stores.values())
            p.update(
                self._overall,
                total=self.total or None,
                completed=self.done,
                failed=f"✗ {total_failed}" if total_failed else "",
                job=escape(self._overall_text()),
            )

    def line(self) -> str:
        """One plain progress line."""
        imported = sum(s.imported for s in self.stores.values())
        present = sum(s.already_present for s in self.stores.values())
        failed = sum(s.failed for s in self.stores.values())
        jobs = sum(s.jobs_done for s in self.stores.values())
        retries = sum(s.retries for s in self.stores.values())
        last = next((s.last_retry for s in self.stores.values() if s.last_retry), "")
        retry_text = f", {retries} calls retried (last: {last})" if retries else ""
        waiting = [s for s in self.stores.values() if s.waiting and not self._final]
        wait_text = (
            f", {len(waiting)} store(s) waiting ({waiting[0].label} waits: {waiting[0].waiting})"
            if waiting
            else ""
        )
        eta = self.eta()
        eta_text = f", ETA {_duration(eta)}" if eta is not None and self.done < self.total else ""
        return (
            f"refimport: {self.done}/{self.total} rows done (imported {imported}, "
            f"already present {present}, failed {failed}), {jobs} jobs finished, "
            f"{len(self.stores)} store(s), {_duration(self.clock() - self._started)} elapsed"
            f"{retry_text}{wait_text}{eta_text}"
        )

    def print_line(self) -> None:
        """Print :meth:`line` once (the plain display, when the console is not a terminal)."""
        self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    async def run(self, events: AsyncIterator[Event]) -> None:
        """Consume events until the stream ends (or the caller cancels), drawing as they come.

        Args:
            events: The Importer's event stream (plain lines are printed every ``interval``
                seconds meanwhile, when the display is not live).
        """
        if self.live:
            async for event in events:
                self.handle(event)
            return
        async with anyio.create_task_group() as tg:

            async def tick() -> None:
                while True:
                    await anyio.sleep(self.interval)
                    self.print_line()

            tg.start_soon(tick)
            async for event in events:
                self.handle(event)
            tg.cancel_scope.cancel()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# -- the live display's columns -------------------------------------------------------------------

#: The live display's columns, in the order drawn, each with its rank: when the terminal is too
#: narrow for them all, the highest rank goes first (the job, then the bar, then the store's
#: name), so the numbers (rows done of total, failures, elapsed, ETA) are never truncated.
_COLUMNS: tuple[tuple[Callable[[], ProgressColumn], int], ...] = (
    (lambda: TextColumn("[bold]{task.description}", justify="left"), 4),
    (lambda: BarColumn(bar_width=None), 5),
    (MofNCompleteColumn, 0),
    (lambda: TextColumn("[red]{task.fields[failed]}"), 1),
    (TimeElapsedColumn, 2),
    (lambda: TextColumn("ETA"), 3),
    (TimeRemainingColumn, 3),
    (lambda: TextColumn("[dim]{task.fields[job]}"), 6),
)

#: The fewest cells a bar is drawn in (narrower, it says nothing).
_MIN_BAR = 10


class FittingProgress(Progress):
    """rich's Progress with the live display's columns, as many as the console's width holds.

    Each frame, the columns are measured against the tasks shown; those that do not fit are left
    out, the highest rank of :data:`_COLUMNS` first, whole ranks at a time (``ETA`` and its
    time go together).

    Args:
        **kwargs: Passed to :class:`rich.progress.Progress` (``console``, ``expand`` ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        self._ranked = [(make(), rank) for make, rank in _COLUMNS]
        super().__init__(*(column for column, _ in self._ranked), **kwargs)

    def make_tasks_table(self, tasks: Iterable[Task]) -> Table:
        """The frame's table, with the columns that fit (see the class).

        Args:
            tasks: The tasks to draw, one row each.

        Returns:
            The table rich draws.
        """
        tasks = [task for task in tasks if task.visible]
        live = getattr(self, "live", None)  # rich draws a first frame before it is set
        if live is not None:
            self.columns = tuple(self.fitting(tasks, live.console.width))
        return super().make_tasks_table(tasks)

    def fitting(self, tasks: Sequence[Task], width: int) -> list[ProgressColumn]:
        """The columns that fit ``width`` cells for ``tasks``, in the order drawn.

        Args:
            tasks: The tasks to draw.
            width: The cells available.

        Returns:
            The columns kept: every rank whose columns fit beside the lower ranks'.
        """
        widths = [self._width(column, tasks) for column, _ in self._ranked]
        kept: set[int] = set()
        used = -1  # one cell between two columns: n columns take n - 1 more
        for rank in sorted({rank for _, rank in self._ranked}):
            members = [i for i, (_, r) in enumerate(self._ranked) if r == rank]
            if any(widths[i] == 0 for i in members):
                continue  # it shows nothing now (no failures yet, no ETA yet): no cell for it
            cost = sum(widths[i] + 1 for i in members)
            if used + cost > width:
                break
            kept.update(members)
            used += cost
        return [column for i, (column, _) in enumerate(self._ranked) if i in kept]

    def _width(self, column: ProgressColumn, tasks: Sequence[Task]) -> int:
        """The cells ``column`` takes for the widest of ``tasks`` (0: it shows nothing)."""
        if isinstance(column, BarColumn):
            return _MIN_BAR
        options = self.console.options
        return max(
            (Measurement.get(self.console, options, column(task)).maximum for task in tasks),
            default=0,
        )
