"""How ``refimport import`` ends: the exit code of an import run, and the lines that explain it.

:func:`exit_code` is the one place an import outcome becomes an exit code (a pure function,
unit-tested case by case), :func:`plan_exit_code` the same for a dry run's plan;
:func:`ending_message` and :func:`print_ending` are the one place the closing lines are
written, each chosen by that code, so the words and the code cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from async_refimport._application import ImportOutcome
from async_refimport._console import ExitCode, err_console, escape, print_problems
from async_refimport.cli.common import print_setup_errors, show_journal
from async_refimport.engine.importer import StorePlan


def exit_code(outcome: ImportOutcome, *, skipped: int = 0) -> ExitCode:
    """The exit code of an import run (the README's "Exit codes").

    The first that applies: the manifest changed while it was read (its later rows were not
    imported) is a manifest error; a store whose set-up is wrong is a set-up error unless the
    run was stopped first; a stopped run is interrupted; a failed row, or an invalid one skipped
    with ``--skip-invalid``, fails the run; else every row is imported or already present.

    Args:
        outcome: What the run ended with.
        skipped: Invalid rows of the manifest left out (``--skip-invalid``).

    Returns:
        The exit code.
    """
    if outcome.manifest_changed is not None:
        return ExitCode.INVALID_INPUT
    if outcome.setup_errors and not outcome.stopped:
        return ExitCode.SETUP
    if outcome.stopped:
        return ExitCode.INTERRUPTED
    if outcome.failed or skipped:
        return ExitCode.FAILED_ROWS
    return ExitCode.OK


def plan_exit_code(plans: Sequence[StorePlan]) -> ExitCode:
    """The exit code of a dry run (``--dry-run``): a set-up error when a store cannot be used.

    Args:
        plans: The plan of each store of the manifest.

    Returns:
        :attr:`ExitCode.SETUP` when a store's set-up is wrong, else :attr:`ExitCode.OK` (rows
        whose source is missing would fail, but nothing failed: nothing was started).
    """
    if any(plan.setup_error is not None for plan in plans):
        return ExitCode.SETUP
    return ExitCode.OK


def ending_message(code: ExitCode, outcome: ImportOutcome, journal: str | Path) -> str | None:
    """The closing line of an import run that ended with ``code``, as rich markup.

    Args:
        code: :func:`exit_code` of ``outcome``.
        outcome: What the run ended with.
        journal: The run's journal, as ``--journal`` named it (or the default path).

    Returns:
        What happened and what to do next; None when nothing needs saying (every row
        imported, or only skipped rows made the run fail: the summary says so).
    """
    if code is ExitCode.INVALID_INPUT:
        return (
            f"[yellow]{outcome.not_journaled} row(s) not imported:[/] the manifest changed while "
            "it was read; the rows read before the change were imported. Check it, then run the "
            "same command again."
        )
    if code is ExitCode.SETUP:
        return (
            f"[yellow]{outcome.pending} row(s) not imported yet[/], none failed: fix the set-up, "
            "then run the same command again."
        )
    if code is ExitCode.INTERRUPTED:
        return (
            f"[yellow]Stopped with {outcome.pending} row(s) unfinished.[/] "
            "Run the same command again to resume (journal: "
            f"{escape(show_journal(journal))})."
        )
    if code is ExitCode.FAILED_ROWS and outcome.failed:
        return (
            f"[red]{outcome.failed} row(s) failed.[/] See `refimport report --journal "
            f"{escape(journal)} --format html -o report.html`; re-running the same command "
            "retries them."
        )
    return None


def print_ending(code: ExitCode, outcome: ImportOutcome, journal: str | Path) -> None:
    """Print, on stderr, why an import run ended with ``code``: the problems behind it (the
    manifest's changed rows, the stores' set-up errors), then :func:`ending_message`.

    Args:
        code: :func:`exit_code` of ``outcome``.
        outcome: What the run ended with.
        journal: The run's journal, as ``--journal`` named it (or the default path).
    """
    err = err_console()
    if code is ExitCode.INVALID_INPUT and outcome.manifest_changed is not None:
        print_problems(outcome.manifest_changed.errors, err)
    elif code is ExitCode.SETUP:
        print_setup_errors(outcome.setup_errors)
    message = ending_message(code, outcome, journal)
    if message is not None:
        err.print(message)
