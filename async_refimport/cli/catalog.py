"""``refimport catalog``: each imported reference by name, with its ARN and ``omics://`` URIs in
every store, as JSON, YAML, CSV or a Nextflow config snippet (:mod:`async_refimport.catalog`).

Read from the journal alone (no AWS call). What is ambiguous (a name that maps to two
references in one store, a row whose role names no account) is written as it is and said on
stderr, one ``warning:`` line each; it does not change the exit code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from async_refimport._console import ExitCode, err_console, escape
from async_refimport.catalog import Catalog, CatalogFormat, read_catalog, write_catalog
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
from async_refimport.journal import opened_journal


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """Add ``catalog`` to ``refimport``'s commands.

    Args:
        sub: ``refimport``'s subcommands.

    Returns:
        The command's parser (its handler is :func:`run`).
    """
    parser = sub.add_parser(
        "catalog",
        help="each imported reference by name: its ARN and omics:// URIs in every store",
        description="List each reference the journal has in a store, by name, with per store "
        "its reference id, ARN, omics:// URIs (the reference's and its FASTA's, as workflows "
        "take it: .../reference/ID/source), md5 and original source. The nextflow format is a "
        "config snippet a pipeline includes (includeConfig): params.refimport['REGION']['NAME'] "
        "is the FASTA's URI. Reads the journal only; calls no AWS API.",
        epilog=exit_codes_epilog(
            {**READ_EXIT_CODES, ExitCode.OK: "written (ambiguities are warnings on stderr)"}
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_journal_option(parser)
    add_output_options(parser, tuple(CatalogFormat), default=CatalogFormat.JSON.value)
    parser.add_argument("--region", metavar="R", help="Region of a DynamoDB journal")
    add_config_option(parser)
    add_log_options(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the catalog of the journal to ``--output`` (or stdout), its warnings on stderr.

    Args:
        args: The parsed command line (``--journal``, ``--format``, ``--output``, ``--region``).

    Returns:
        :attr:`ExitCode.OK`, or :attr:`ExitCode.INVALID_INPUT` when there is no journal or the
        options contradict each other.

    Raises:
        JournalError: the journal cannot be read (the dispatcher prints it: exit code 2).
    """
    configure_cli_logging(args)
    output = resolve_output(args)
    if output is None:
        return ExitCode.INVALID_INPUT
    journal = existing_journal(args.journal)
    if journal is None:
        return ExitCode.INVALID_INPUT
    catalog = anyio.run(_read, journal, args.region)
    with output.stream() as out:
        write_catalog(catalog, CatalogFormat(output.format), out)
    output.print_written("Catalog")
    for line in catalog.warnings():
        err_console().print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)
    return ExitCode.OK


async def _read(journal: str | Path, region: str | None) -> Catalog:
    # Read-only, as status and report: the catalog never creates, migrates or changes a journal.
    async with opened_journal(journal, region=region, read_only=True) as opened:
        return await read_catalog(opened)
