"""``refimport report``: every row of the journal with its outcome, as CSV, JSON or HTML."""

from __future__ import annotations

import argparse
from functools import partial
from typing import cast

import anyio

from async_refimport._application import write_journal_report
from async_refimport._console import ExitCode
from async_refimport._report import REPORT_FORMATS, ReportFormat
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
        epilog=exit_codes_epilog(READ_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_journal_option(parser)
    add_output_options(parser, REPORT_FORMATS, default="html")
    parser.add_argument("--region", metavar="R", help="Region of a DynamoDB journal")
    add_config_option(parser)
    add_log_options(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report of every row in the journal to ``--output`` (or stdout).

    Args:
        args: The parsed command line (``--journal``, ``--format``, ``--region``, ``--output``).

    Returns:
        :attr:`ExitCode.OK`, or :attr:`ExitCode.INVALID_INPUT` when there is no journal or the
        options contradict each other.
    """
    configure_cli_logging(args)
    output = resolve_output(args)
    if output is None:
        return ExitCode.INVALID_INPUT
    journal = existing_journal(args.journal)
    if journal is None:
        return ExitCode.INVALID_INPUT
    # Written as the rows are read, a page at a time (a report of 10^6 rows is never held).
    fmt = cast(ReportFormat, output.format)  # one of REPORT_FORMATS: --format's choices
    write = partial(write_journal_report, journal, fmt, region=args.region)
    with output.stream() as out:
        anyio.run(write, out)
    output.print_written("Report")
    return ExitCode.OK
