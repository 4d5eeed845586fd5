"""What the commands of ``refimport`` share: options, AWS defaults, the journal, error lines.

Every command module (:mod:`.import_`, :mod:`.status`, :mod:`.report`, :mod:`.journal`,
:mod:`.events`, :mod:`.demo`) builds its parser with these helpers, so an option two commands
share is spelled, defaulted and explained once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from async_refimport._console import display_path, err_console, escape
from async_refimport._errors import SetupError
from async_refimport._logconfig import LEVELS, configure_logging
from async_refimport.aws.clients import configured_endpoint, default_region
from async_refimport.journal import is_dynamo_url, journal_spec_problem
from async_refimport.journal.sqlite import default_journal_path

#: What ``ArgumentParser.add_subparsers`` returns: each command adds its parser to it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: The exit codes, as ``refimport --help`` and ``refimport import --help`` end.
EPILOG = """\
exit codes: 0 all rows imported or already present · 1 some rows failed or were skipped ·
2 usage or manifest error (nothing sent) · 3 set-up error (credentials, Region, store, endpoint,
events queue: nothing failed; fix it and run the same command again) · 130 interrupted (run the
same command again to resume). A reader of stdout that stops early (| head) is no error: the
command stops writing and keeps its own exit code.

Try it without an AWS account: refimport demo"""


# -- options --------------------------------------------------------------------------------------


def journal_help() -> str:
    """The help of ``--journal``, naming the default journal of this user."""
    return (
        "journal recording every row and job: a SQLite file "
        f"(default: $REFIMPORT_JOURNAL or {display_path(default_journal_path())}) "
        "or dynamodb://TABLE, shared by a fleet"
    )


def add_journal_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--journal PATH|URL`` (default: the user's SQLite journal) to ``parser``.

    Args:
        parser: A command's parser.
    """
    parser.add_argument("--journal", metavar="PATH|URL", help=journal_help())


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--region`` and ``--profile`` as the set-up commands (``journal init``,
    ``events init``) spell them.

    Args:
        parser: A command's parser.
    """
    parser.add_argument("--region", metavar="R", help="Region (default: the standard chain)")
    parser.add_argument("--profile", metavar="P", help="AWS profile (default: AWS_PROFILE)")


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-format``, ``-v``, ``-q`` and ``--log-level`` to ``parser``.

    Args:
        parser: A command's parser (read back with :func:`configure_cli_logging`).
    """
    parser.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="log lines on stderr as console text or JSON (default: %(default)s)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging (-v info, -vv debug, -vvv also botocore); secrets are always masked",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="errors only: no warnings, no progress display",
    )
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        help="level of refimport's own log lines (overrides -v and -q)",
    )


def configure_cli_logging(args: argparse.Namespace, *, shift: int = 0) -> None:
    """Configure logging from the options of :func:`add_log_options`.

    Args:
        args: The parsed command line.
        shift: Added to the verbosity of ``-v`` (the demo's is one lower: its warnings are
            the deliberately broken files, shown in its summary already).
    """
    verbosity = -1 if args.quiet else args.verbose + shift
    configure_logging(args.log_format, verbosity, log_level=args.log_level)


# -- AWS defaults ---------------------------------------------------------------------------------


def resolve_profile(explicit: str | None) -> str | None:
    """The AWS profile: ``explicit``, else ``AWS_PROFILE``, else None (the default chain)."""
    return explicit or os.environ.get("AWS_PROFILE") or None


def resolve_region(explicit: str | None, profile: str | None) -> str | None:
    """The Region of rows naming none.

    Args:
        explicit: ``--region``, if given.
        profile: The profile whose configured Region is the last resort.

    Returns:
        ``explicit``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the profile's
        Region; None when none is set (or the profile is unknown: the credentials chain
        reports that, later, naming the profile).
    """
    return explicit or default_region(profile)


def resolve_endpoint(explicit: str | None) -> str | None:
    """The HealthOmics endpoint: ``explicit``, else ``AWS_ENDPOINT_URL_OMICS`` or
    ``AWS_ENDPOINT_URL``, else None (AWS's own)."""
    # botocore would read these itself, but then prefix the host with "control-storage-";
    # passing the URL explicitly lets the gateway turn host prefixing off for it.
    return configured_endpoint("omics", explicit)


# -- the journal ----------------------------------------------------------------------------------


def show_journal(journal: str | Path) -> str:
    """``journal`` as a message names it (a path with ``~`` for the home directory)."""
    return display_path(journal) if isinstance(journal, Path) else journal


def existing_journal(spec: str | None) -> str | Path | None:
    """The journal ``--journal`` names, for a command that only reads one.

    Args:
        spec: ``--journal``, if given (else the user's default journal).

    Returns:
        The journal's URL or path; None, once the error line is printed, when no SQLite
        journal is there (a DynamoDB journal is not checked here: opening it says whether its
        table exists).
    """
    if (problem := journal_spec_problem(spec)) is not None:
        print_error(problem)
        return None
    if is_dynamo_url(spec):
        return spec  # opening it says whether the table exists
    journal = Path(spec) if spec else default_journal_path()
    if not journal.exists():
        print_error(f"no journal at {journal} (nothing imported yet?)")
        return None
    return journal


# -- error lines ----------------------------------------------------------------------------------


def print_error(text: object) -> None:
    """Print ``error: TEXT`` on stderr, ``text`` verbatim (it is data, never markup)."""
    err_console().print(f"[red]error:[/] {escape(text)}")


def silence_stdout() -> None:
    """Send what is left for stdout to the null device: its reader has gone (``| head``).

    Python would otherwise report the unwritten buffer on exit ("Exception ignored ...
    BrokenPipeError"); the standard output's descriptor is pointed at ``os.devnull`` instead.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no file descriptor (a test's StringIO)
        pass


def print_setup_errors(errors: Sequence[SetupError]) -> None:
    """One line per store that cannot be used: what is wrong, then what to fix.

    Args:
        errors: The stores' set-up errors, each naming its store.
    """
    for error in errors:
        print_error(error)
