"""``refimport status``: what the journal knows, read from the journal alone (no AWS API)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio
from rich.console import Console
from rich.table import Table

from async_refimport._application import JournalStatus, journal_status
from async_refimport._console import ExitCode, escape, out_console
from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport.cli.common import (
    READ_EXIT_CODES,
    Subparsers,
    add_config_option,
    add_journal_option,
    add_log_options,
    add_output_options,
    configure_cli_logging,
    existing_journal,
    exit_codes_epilog,
    resolve_output,
)

if TYPE_CHECKING:
    from async_refimport.journal.base import JobRecord

#: What ``refimport status --format`` writes: tables, or one JSON document.
STATUS_FORMATS = ("text", "json")


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """Add ``status`` to ``refimport``'s commands.

    Args:
        sub: ``refimport``'s subcommands.

    Returns:
        The command's parser (its handler is :func:`run`).
    """
    parser = sub.add_parser(
        "status",
        help="rows per store and state, active jobs and the last errors, from the journal",
        description="Show what the journal knows: rows per store and state, jobs still "
        "active, and the most recent failures. Reads the journal only; calls no AWS API.",
        epilog=exit_codes_epilog({**READ_EXIT_CODES, ExitCode.OK: "shown"}),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_journal_option(parser)
    add_output_options(parser, STATUS_FORMATS, default="text")
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.add_argument("--region", metavar="R", help="Region of a DynamoDB journal")
    add_config_option(parser)
    add_log_options(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the journal's rows per store and state, its active jobs and last errors.

    Args:
        args: The parsed command line (``--journal``, ``--format``/``--json``, ``--output``,
            ``--region``).

    Returns:
        :attr:`ExitCode.OK`, or :attr:`ExitCode.INVALID_INPUT` when there is no journal or the
        options contradict each other.
    """
    configure_cli_logging(args)
    output = resolve_output(args, json_flag=True)
    if output is None:
        return ExitCode.INVALID_INPUT
    journal = existing_journal(args.journal)
    if journal is None:
        return ExitCode.INVALID_INPUT
    status = anyio.run(_journal_status, journal, args.region)
    with output.stream() as stream:
        if output.format == "json":
            stream.write(json.dumps(status.document(), indent=2) + "\n")
        else:
            _print_tables(journal, status, stream if output.path is not None else None)
    output.print_written("Status")
    return ExitCode.OK


def _print_tables(journal: str | Path, status: JournalStatus, file: TextIO | None) -> None:
    """The status as tables, on stdout (``file`` None) or in ``file`` (plain text)."""
    out = (
        out_console()
        if file is None
        else Console(file=file, width=120, emoji=False, highlight=False)
    )
    out.print(f"Journal: {journal}", markup=False)
    out.print(_rows_table(status.counts))
    if status.active_jobs:
        out.print(_active_jobs_table(status.active_jobs))
    else:
        out.print(f"No active jobs ({status.jobs} jobs in the journal).")
    if status.last_errors:
        out.print(_errors_table(status.last_errors))


async def _journal_status(journal: str | Path, region: str | None) -> JournalStatus:
    return await journal_status(journal, region=region)


def _rows_table(counts: Mapping[StoreRef, Mapping[RowState, int]]) -> Table:
    table = Table(title="rows per store", title_justify="left")
    table.add_column("Store")
    table.add_column("Region")
    for s in RowState:
        table.add_column(s.value.replace("_", " ").lower(), justify="right")
    table.add_column("total", justify="right")
    for store, states in sorted(counts.items(), key=lambda kv: kv[0].key):
        table.add_row(
            escape(store.store_id),
            escape(store.region),
            *(str(states.get(s, 0)) for s in RowState),
            str(sum(states.values())),
        )
    return table


def _active_jobs_table(jobs: Sequence[JobRecord]) -> Table:
    table = Table(title="active jobs", title_justify="left")
    for col in ("Store", "Job", "State", "Status"):
        table.add_column(col)
    for job in jobs:
        table.add_row(
            escape(job.store),
            escape(job.job_id or "(being started)"),
            job.state.value,
            escape(job.status or ""),
        )
    return table


def _errors_table(errors: Sequence[RowResult]) -> Table:
    table = Table(title="last errors", title_justify="left")
    for col in ("Store", "Name", "Job", "Reason"):
        table.add_column(col)
    for r in errors:
        table.add_row(
            escape(r.store_id), escape(r.name), escape(r.job_id or ""), escape(r.message or "")
        )
    return table
