"""What ``refimport`` prints, shared by its commands and the demo: consoles, exit codes, the summary
table, problem lists, and an import run with its progress display and Ctrl-C handling.

Data is never markup: every name, message or id from a manifest, the journal or the service goes
through :func:`escape` (or ``markup=False``) before rich sees it, so a reference named
``corrupt_[/]_x`` prints as written and ``[link=...]`` in a name is not a hyperlink.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from enum import IntEnum
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from rich import box
from rich.console import Console
from rich.markup import escape as _rich_escape
from rich.table import Table

from async_refimport._application import ImportOutcome, RowsToImport, run_import
from async_refimport._errors import FieldError, ManifestError, RequestValidationError
from async_refimport._events import Event
from async_refimport._models import RowResult, RowState, printable
from async_refimport._progress import ImportProgress
from async_refimport._report import Tally
from async_refimport.engine.importer import ImporterSettings
from async_refimport.engine.staging_driver import StagingPlan
from async_refimport.engine.waiting import buffered_events
from async_refimport.manifest.reader import format_errors


class ExitCode(IntEnum):
    """The exit codes of ``refimport`` (the README's "Exit codes" table)."""

    #: Every row is IMPORTED or ALREADY_PRESENT.
    OK = 0
    #: Some rows FAILED, or invalid rows were skipped with ``--skip-invalid``.
    FAILED_ROWS = 1
    #: A usage or manifest error: nothing was sent.
    INVALID_INPUT = 2
    #: The set-up is wrong (credentials, profile, access, store, endpoint): nothing failed, the
    #: rows wait in the journal; fix the set-up and run the same command again.
    SETUP = 3
    #: Interrupted (Ctrl-C): run the same command again to resume.
    INTERRUPTED = 130


#: Failed rows listed under the summary table (the report has them all).
MAX_FAILURES_SHOWN = 20

#: Seconds the progress display waits, as the run ends, for the end of a job whose rows are all
#: final (told just after them): the last frame counts it.
_LAST_EVENTS_WAIT = 2.0


def escape(value: object) -> str:
    """``value`` as text that rich prints verbatim (no markup, no hyperlinks, no control
    characters: see :func:`~async_refimport._models.printable`)."""
    return _rich_escape(printable(value))


def err_console() -> Console:
    """stderr: progress, messages and errors."""
    # Messages are not wrapped by rich: a terminal wraps them, and log files keep whole lines.
    # emoji=False: rich would turn ":100:" (line 100 of a manifest) or a name's ":smile:" into
    # an emoji; data is printed as it is.
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class _StdoutConsole(Console):
    """The stdout console: a reader that stops early (``| head``) is told to the command as
    :class:`BrokenPipeError` (rich would exit with code 1), which ends it silently with its own
    code."""

    def on_broken_pipe(self) -> None:
        """Print nothing more, and raise :class:`BrokenPipeError` for the command to handle.

        Raises:
            BrokenPipeError: always (stdout's reader has gone).
        """
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout's reader has gone")


def out_console() -> Console:
    """stdout: the summary and tables."""
    console = _StdoutConsole(highlight=False, emoji=False)
    if not console.is_terminal:
        # Piped or redirected: rich would assume 80 columns and truncate the tables.
        console.width = max(console.width, 120)
    return console


def display_path(path: Path) -> str:
    """``path`` with the home directory shown as ``~``.

    Args:
        path: A path to show in a message or a help text.

    Returns:
        The path as text, ``~/...`` when it is under the home directory.
    """
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if text.startswith(home + os.sep) else text


def print_problems(errors: Iterable[FieldError], console: Console) -> int:
    """Print ``FILE:LINE: field: reason`` lines, the first hundred and then how many more.

    Args:
        errors: The problems, in manifest order.
        console: Where to print them (stderr).

    Returns:
        How many problems there were.
    """
    errors = list(errors)
    for line in format_errors(errors):
        console.print(line, markup=False, highlight=False)
    return len(errors)


def outcome_words(summary: Mapping[str, int]) -> str:
    """``"302 rows: 295 imported, 5 already present, 2 failed"``, from a JSON summary.

    The words of the summary table's columns and of ``--json``'s ``summary`` keys, so that every
    place that counts rows says the same thing.

    Args:
        summary: Counts by ``--json``'s summary keys (``total``, ``imported`` ...).

    Returns:
        The counts in words.
    """
    parts = [
        f"{summary.get('imported', 0)} imported",
        f"{summary.get('already_present', 0)} already present",
        f"{summary.get('failed', 0)} failed",
    ]
    if summary.get("pending"):
        parts.append(f"{summary['pending']} pending")
    total = summary.get("total", 0)
    return f"{total} row{'' if total == 1 else 's'}: " + ", ".join(parts)


def print_summary(rows: Tally | Sequence[RowResult], console: Console, *, skipped: int = 0) -> None:
    """The summary table of an import (per store), then the first failures.

    Args:
        rows: The run's rows, or their tally.
        console: Where to print (stdout).
        skipped: Invalid rows left out with ``--skip-invalid`` (a line says how many).
    """
    tally = rows if isinstance(rows, Tally) else Tally.of(rows)
    per_store, jobs = tally.per_store, tally.jobs
    table = Table(
        title="refimport summary",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("Store", no_wrap=True, min_width=10)
    table.add_column("Region", no_wrap=True)
    # Short headers: the table must fit 80 columns (CI logs, narrow terminals) without truncation.
    # "Already present" is on two lines: the same words as the JSON summary and the demo.
    for col in ("Rows", "Imported", "Already\npresent", "Failed", "Pending", "Jobs"):
        width = max(len(word) for word in col.split("\n"))
        table.add_column(col, justify="right", no_wrap=True, min_width=width)
    total: Counter[RowState] = Counter()
    for (store_id, region), c in sorted(per_store.items()):
        total.update(c)
        table.add_row(
            escape(store_id),
            escape(region),
            str(sum(c.values())),
            f"[green]{c[RowState.IMPORTED]}[/]",
            str(c[RowState.ALREADY_PRESENT]),
            f"[red]{c[RowState.FAILED]}[/]" if c[RowState.FAILED] else "0",
            str(c[RowState.STAGING] + c[RowState.QUEUED] + c[RowState.SUBMITTED]),
            str(len(jobs.get((store_id, region), ()))),
        )
    if len(per_store) > 1:
        table.add_section()
        table.add_row(
            "[bold]all[/]",
            "",
            str(sum(total.values())),
            str(total[RowState.IMPORTED]),
            str(total[RowState.ALREADY_PRESENT]),
            str(total[RowState.FAILED]),
            str(total[RowState.STAGING] + total[RowState.QUEUED] + total[RowState.SUBMITTED]),
            str(sum(len(j) for j in jobs.values())),
        )
    console.print(table)
    if tally.failed:
        console.print(_failures_table(tally))
    if skipped:
        console.print(f"[yellow]{skipped} invalid row(s) skipped.[/]")


def _failures_table(tally: Tally) -> Table:
    failed = tally.failed
    table = Table(title=f"failures ({failed})", title_justify="left")
    table.add_column("Store")
    table.add_column("Name")
    table.add_column("Reason")
    for r in tally.failures[:MAX_FAILURES_SHOWN]:
        table.add_row(escape(r.store_id), escape(r.name), escape(r.message or ""))
    if failed > MAX_FAILURES_SHOWN:
        table.add_row("…", f"{failed - MAX_FAILURES_SHOWN} more", "see `refimport report`")
    return table


# -- an import run on the terminal ----------------------------------------------------------------


def import_with_progress(
    requests: RowsToImport,
    *,
    journal: str | Path,
    region: str | None,
    settings: ImporterSettings | None = None,
    live: bool | None = None,
    quiet: bool = False,
    staging: StagingPlan | None = None,
) -> ImportOutcome | None:
    """Import ``requests`` with the progress display on stderr (none when ``quiet``); Ctrl-C
    once stops starting jobs, twice exits at once.

    Args:
        requests: The rows to import: requests, or a checked manifest read again a chunk at
            a time.
        journal: The journal's path or URL.
        region: The Region of rows naming none.
        settings: The Importer's settings (default: the library's).
        live: Live bars (default: when stderr is a terminal).
        quiet: No progress display at all.
        staging: Where and how sources not in S3 in their store's Region are staged.

    Returns:
        What the run ended with; None when a request is invalid, or a manifest changed while
        its rows were read again (the problems were printed).
    """
    try:
        return anyio.run(_import, requests, journal, region, settings, live, quiet, staging)
    except (RequestValidationError, ManifestError) as exc:
        print_problems(exc.errors, err_console())
        return None


async def _import(
    requests: RowsToImport,
    journal: str | Path,
    region: str | None,
    settings: ImporterSettings | None,
    live: bool | None,
    quiet: bool,
    staging: StagingPlan | None = None,
) -> ImportOutcome:
    err = err_console()
    stop = anyio.Event()
    display = None if quiet else _Display(ImportProgress(err, live=live))
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, stop, err)
        try:
            outcome = await run_import(
                requests,
                journal=journal,
                region=region,
                settings=settings,
                observer=display,
                stop=stop,
                staging=staging,
            )
        except Exception as exc:
            # Raised after the task group, not through it: the caller sees the error itself
            # (a journal that cannot be opened is one line), not an exception group; nor one
            # from the run's own task group (a journal deleted while the run waits).
            while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            failure = exc
        finally:
            if display is not None:
                display.close()
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if outcome.stopped:
        err.print(
            "[yellow]Stopping:[/] finishing the request in flight; jobs already running "
            "at AWS are picked up by the next run."
        )
    return outcome


class _Display:
    """The progress display as an import observer: drawn once the rows are journaled (nothing
    is drawn for a run that cannot start), closed when the run ends."""

    def __init__(self, progress: ImportProgress) -> None:
        self.progress = progress
        self.shown = False

    def expect(self, row_ids: Sequence[int]) -> None:
        self.progress.expect(row_ids)

    def add_rows(self, results: Sequence[RowResult]) -> None:
        self.progress.add_rows(results)

    def handle(self, event: Event) -> None:
        self.progress.handle(event)

    async def run(self, events: AsyncIterator[Event]) -> None:
        self.progress.__enter__()
        self.shown = True
        self.progress.begin()
        try:
            await self.progress.run(events)
        finally:
            # The run is cancelled once its rows are final, and a job's JobFinished (sent just
            # after its rows) may still be buffered: counted, the last frame and line count
            # every job that finished.
            if isinstance(events, MemoryObjectReceiveStream):
                await self._last_events(events)

    async def _last_events(self, events: MemoryObjectReceiveStream[Event]) -> None:
        """Take the events sent as the run ended: those buffered, and a job's end whose rows
        are all final (the journal can show them final a moment before the job's end is told),
        waited for briefly."""
        for event in buffered_events(events):
            self.progress.handle(event)
        with anyio.CancelScope(shield=True), anyio.move_on_after(_LAST_EVENTS_WAIT):
            while self.progress.ending_jobs():
                try:
                    self.progress.handle(await events.receive())
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    return

    def close(self) -> None:
        if self.shown:
            self.progress.__exit__(None, None, None)


async def _watch_signals(stop: anyio.Event, err: Console) -> None:
    first_at: float | None = None
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            now = time.monotonic()
            if first_at is not None and now - first_at < 0.5:
                # One keypress can arrive twice (to the process and to its group, e.g. under
                # `timeout` or `make`): a deliberate second Ctrl-C comes later.
                continue
            if first_at is not None:
                # Second signal: leave now. The journal is written ahead, so this is as safe as a
                # crash; the next run recovers the job that was being started.
                sys.stderr.write("\nrefimport: exiting now; re-run the same command to resume.\n")
                sys.stderr.flush()
                os._exit(ExitCode.INTERRUPTED)
            first_at = now
            err.print(
                "\n[yellow]Interrupted:[/] no new jobs will be started; "
                "press Ctrl-C again to exit at once."
            )
            stop.set()
