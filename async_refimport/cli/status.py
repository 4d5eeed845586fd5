"""``refimport status``: what the journal knows, read from the journal alone (no AWS API)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from rich.table import Table

from async_refimport._application import JournalStatus, journal_status
from async_refimport._console import ExitCode, escape, out_console
from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport.cli.common import Subparsers, add_journal_option, existing_journal

if TYPE_CHECKING:
    from async_refimport.journal.base import JobRecord


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
    )
    add_journal_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--region", metavar="R", help="Region of a DynamoDB journal")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the journal's rows per store and state, its active jobs and last errors.

    Args:
        args: The parsed command line (``--journal``, ``--json``, ``--region``).

    Returns:
        :attr:`ExitCode.OK`, or :attr:`ExitCode.INVALID_INPUT` when there is no journal.
    """
    journal = existing_journal(args.journal)
    if journal is None:
        return ExitCode.INVALID_INPUT
    status = anyio.run(_journal_status, journal, args.region)
    if args.json:
        sys.stdout.write(json.dumps(status.document(), indent=2) + "\n")
        return ExitCode.OK
    out = out_console()
    out.print(f"Journal: {journal}", markup=False)
    out.print(_rows_table(status.counts))
    if status.active_jobs:
        out.print(_active_jobs_table(status.active_jobs))
    else:
        out.print(f"No active jobs ({status.jobs} jobs in the journal).")
    if status.last_errors:
        out.print(_errors_table(status.last_errors))
    return ExitCode.OK


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
