"""``refimport journal``: manage the journal a fleet of workers shares (``journal init``)."""

from __future__ import annotations

import argparse

import anyio

from async_refimport._console import ExitCode, err_console, escape
from async_refimport.cli.common import (
    Subparsers,
    add_aws_options,
    add_config_option,
    add_log_options,
    configure_cli_logging,
    exit_codes_epilog,
    resolve_profile,
    resolve_region,
)


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """Add ``journal`` (and its action ``init``) to ``refimport``'s commands.

    Args:
        sub: ``refimport``'s subcommands.

    Returns:
        The command's parser (the handler of ``journal init`` is :func:`run_init`).
    """
    parser = sub.add_parser(
        "journal",
        help="manage a shared journal (journal init dynamodb://TABLE)",
        description="Manage the journal a fleet of workers shares.",
    )
    actions = parser.add_subparsers(dest="journal_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="create the DynamoDB table of a shared journal (idempotent) and enable its TTL",
        description="Create the journal's DynamoDB table (on-demand billing, one index), wait "
        "until it is ACTIVE and enable TTL. Running it again changes nothing.",
        epilog=exit_codes_epilog(
            {
                ExitCode.OK: "the table is there, ACTIVE, TTL on",
                ExitCode.INVALID_INPUT: "usage or configuration error, or the table cannot be "
                "made (its line says why)",
                ExitCode.SETUP: "set-up error (credentials, profile)",
                ExitCode.INTERRUPTED: "interrupted (running it again is safe)",
            },
            tail="",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("url", metavar="dynamodb://TABLE", help="the journal to create")
    add_aws_options(init)
    add_config_option(init)
    add_log_options(init)
    init.set_defaults(handler=run_init)
    return parser


def run_init(args: argparse.Namespace) -> int:
    """Create the DynamoDB table of a shared journal, or find it made already.

    Args:
        args: The parsed command line (``url``, ``--region``, ``--profile``).

    Returns:
        :attr:`ExitCode.OK` (a table that cannot be made raises a ``JournalError``, which
        :func:`async_refimport.cli.main.main` reports).
    """
    from async_refimport.journal.dynamo import create_table, parse_url

    configure_cli_logging(args)
    table, url_region = parse_url(args.url)
    region = url_region or resolve_region(args.region, args.profile)
    profile = resolve_profile(args.profile)
    created = anyio.run(lambda: create_table(table, region=region, profile=profile))
    verb = "Created" if created else "Found"
    err_console().print(
        f"{verb} journal table {escape(table)} ({escape(region or 'default Region')}): "
        "ACTIVE, TTL on."
    )
    return ExitCode.OK
