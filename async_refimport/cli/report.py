"""``refimport report``: every row of the journal with its outcome, as CSV, JSON or HTML."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import anyio

from async_refimport._application import write_journal_report
from async_refimport._console import ExitCode, err_console
from async_refimport._report import REPORT_FORMATS, report_file
from async_refimport.cli.common import Subparsers, add_journal_option, existing_journal


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """Add ``report`` to ``refimport``'s commands.

    Args:
        sub: ``refimport``'s subcommands.

    Returns:
        The command's parser (its handler is :func:`run`).
    """
    parser = sub.add_parser(
        "report",
        help="every row with its outcome, as CSV, JSON or a self-contained HTML page",
        description="Write a report of every row in the journal. The HTML report shows the "
        "summary, a timeline of import jobs per store (where the time went) and the failures.",
    )
    add_journal_option(parser)
    parser.add_argument(
        "--format", choices=REPORT_FORMATS, default="html", help="default: %(default)s"
    )
    parser.add_argument("--region", metavar="R", help="Region of a DynamoDB journal")
    parser.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write to FILE (default: stdout)"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report of every row in the journal to ``--output`` (or stdout).

    Args:
        args: The parsed command line (``--journal``, ``--format``, ``--region``, ``--output``).

    Returns:
        :attr:`ExitCode.OK`, or :attr:`ExitCode.INVALID_INPUT` when there is no journal.
    """
    journal = existing_journal(args.journal)
    if journal is None:
        return ExitCode.INVALID_INPUT
    # Written as the rows are read, a page at a time (a report of 10^6 rows is never held).
    write = partial(write_journal_report, journal, args.format, region=args.region)
    if args.output is None:
        anyio.run(write, sys.stdout)
    else:
        with report_file(args.output) as out:
            anyio.run(write, out)
        err_console().print(f"Report written to {args.output}", markup=False)
    return ExitCode.OK
