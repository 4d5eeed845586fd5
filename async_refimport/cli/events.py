"""``refimport events``: set up the job status events ``--events-queue-url`` listens to."""

from __future__ import annotations

import argparse
import sys

import anyio

from async_refimport._console import ExitCode, err_console, escape
from async_refimport._errors import QueueError
from async_refimport.cli.common import (
    Subparsers,
    add_aws_options,
    add_config_option,
    add_log_options,
    configure_cli_logging,
    exit_codes_epilog,
    print_error,
    resolve_profile,
    resolve_region,
)


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """Add ``events`` (and its action ``init``) to ``refimport``'s commands.

    Args:
        sub: ``refimport``'s subcommands.

    Returns:
        The command's parser (the handler of ``events init`` is :func:`run_init`).
    """
    parser = sub.add_parser(
        "events",
        help="set up job status events (events init --queue-name NAME)",
        description="Set up what --events-queue-url listens to.",
    )
    actions = parser.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="create an SQS queue fed by an EventBridge rule matching HealthOmics' reference "
        "import job status events (idempotent); prints the queue URL",
        description="Create, in one Region, an SQS queue NAME, an EventBridge rule NAME matching "
        "'Reference Import Job Status Change' events of source aws.omics, the queue policy that "
        "lets that rule send to the queue, and the rule's target. Running it again changes "
        "nothing. Prints the queue URL on stdout: pass it to --events-queue-url (one queue per "
        "Region your stores are in).",
        epilog=exit_codes_epilog(
            {
                ExitCode.OK: "the queue and rule are there; the queue URL is on stdout",
                ExitCode.INVALID_INPUT: "usage or configuration error",
                ExitCode.SETUP: "set-up error: the queue or rule cannot be made (credentials, "
                "profile, access)",
                ExitCode.INTERRUPTED: "interrupted (running it again is safe)",
            },
            tail="",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("--queue-name", metavar="NAME", required=True, help="queue and rule name")
    add_aws_options(init)
    add_config_option(init)
    add_log_options(init)
    init.set_defaults(handler=run_init)
    return parser


def run_init(args: argparse.Namespace) -> int:
    """Create the queue, the rule and the queue policy, or find them made already; print the
    queue's URL on stdout.

    Args:
        args: The parsed command line (``--queue-name``, ``--region``, ``--profile``).

    Returns:
        :attr:`ExitCode.OK`, or :attr:`ExitCode.SETUP` when the queue or rule cannot be made.
    """
    from async_refimport.aws.event_rule import create_event_queue

    configure_cli_logging(args)
    profile = resolve_profile(args.profile)
    region = resolve_region(args.region, profile)
    try:
        made = anyio.run(
            lambda: create_event_queue(args.queue_name, region=region, profile=profile)
        )
    except QueueError as exc:
        print_error(exc)
        return ExitCode.SETUP
    verb = "Created" if made.created else "Found"
    err_console().print(
        f"{verb} queue {escape(args.queue_name)} ({escape(region or 'default Region')}), fed by "
        f"the EventBridge rule {escape(made.rule_arn)}. "
        f"Pass --events-queue-url {escape(made.queue_url)}"
    )
    sys.stdout.write(made.queue_url + "\n")
    return ExitCode.OK
