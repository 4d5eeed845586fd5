"""What the commands of ``refimport`` share: options, AWS defaults, the journal, error lines.

Every command module (:mod:`.import_`, :mod:`.status`, :mod:`.report`, :mod:`.journal`,
:mod:`.events`, :mod:`.demo`) builds its parser with these helpers, so an option two commands
share is spelled, defaulted and explained once.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeAlias

from async_refimport import _options
from async_refimport._console import ExitCode, display_path, err_console, escape
from async_refimport._errors import SetupError
from async_refimport._logconfig import configure_logging
from async_refimport._options import log_option_sources, verbosity
from async_refimport._report import report_file
from async_refimport.aws.clients import configured_endpoint, default_region
from async_refimport.journal import is_dynamo_url, journal_spec_problem
from async_refimport.journal.sqlite import default_journal_path

#: What ``ArgumentParser.add_subparsers`` returns: each command adds its parser to it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: What each exit code means for an import run (and for ``refimport --help``): every member of
#: :class:`ExitCode` has its line, so a new code cannot be left out of the help.
IMPORT_EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "all rows imported or already present",
    ExitCode.FAILED_ROWS: "some rows failed or were skipped",
    ExitCode.INVALID_INPUT: "usage, manifest or configuration error (nothing sent)",
    ExitCode.SETUP: "set-up error (credentials, Region, store, endpoint, events queue: nothing "
    "failed; fix it and run the same command again)",
    ExitCode.INTERRUPTED: "interrupted (run the same command again to resume)",
}

#: What the exit codes mean for a command that reads the journal (``report``, ``status``).
READ_EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "written",
    ExitCode.INVALID_INPUT: "usage or configuration error, no journal there, or a journal or "
    "output file that cannot be read or written",
    ExitCode.SETUP: "set-up error reaching a DynamoDB journal (credentials, profile, access)",
    ExitCode.INTERRUPTED: "interrupted",
}

#: Columns of the epilogs (argparse does not wrap a raw epilog).
_HELP_WIDTH = 92

_STOPPED_EARLY = (
    "A reader of stdout that stops early (| head) is no error: the command stops writing and "
    "keeps its own exit code."
)


def exit_codes_epilog(meanings: Mapping[ExitCode, str], *, tail: str = _STOPPED_EARLY) -> str:
    """The ``exit codes:`` list a command's ``--help`` ends with, one code a line.

    Args:
        meanings: What each exit code the command can end with means for it; the numbers are
            read from :class:`ExitCode`, so the help cannot drift from the code.
        tail: A paragraph after the list ("" for none).

    Returns:
        The text (for a parser with ``RawDescriptionHelpFormatter``), codes in ascending order.
    """
    lines = ["exit codes:"]
    for code in sorted(meanings):
        lines += textwrap.wrap(
            meanings[code],
            width=_HELP_WIDTH,
            initial_indent=f"  {int(code):<4} ",
            subsequent_indent=" " * 7,
        )
    if tail:
        lines += ["", *textwrap.wrap(tail, width=_HELP_WIDTH)]
    return "\n".join(lines)


#: The end of ``refimport --help`` and ``refimport import --help``.
EPILOG = exit_codes_epilog(IMPORT_EXIT_CODES) + "\n\nTry it without an AWS account: refimport demo"


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
    """Add ``--log-format``, ``-v``, ``-q`` and ``--log-level`` to ``parser``, meaning what they
    mean for every command and the worker (:func:`async_refimport._options.add_log_options`).

    Args:
        parser: A command's parser (read back with :func:`configure_cli_logging`).
    """
    _options.add_log_options(parser)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE``: the command's options take defaults from ``REFIMPORT_<OPTION>``
    and the config file (:mod:`async_refimport._options`).

    Args:
        parser: A command's parser.
    """
    _options.add_config_option(parser)


def configure_cli_logging(args: argparse.Namespace, *, shift: int = 0) -> None:
    """Configure logging from the options of :func:`add_log_options`.

    Args:
        args: The parsed command line.
        shift: Added to the verbosity of ``-v`` (the demo's is one lower: its warnings are
            the deliberately broken files, shown in its summary already).
    """
    configure_logging(args.log_format, verbosity(args, shift=shift), log_level=args.log_level)
    log_option_sources(args)


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


# -- what a command writes: --format and -o/--output ----------------------------------------------

#: Words ``--output`` was once read as a format by users of the AWS CLI (``report --output json``
#: wrote the HTML report to a file named ``json``). Given bare to ``--output``, one of them still
#: means ``--format WORD`` for one release, with a warning; ``./json`` names the file.
FORMAT_WORDS = frozenset({"text", "json", "csv", "html"})


@dataclass(frozen=True, slots=True)
class Output:
    """What a command writes and where: :func:`resolve_output` of its command line.

    Attributes:
        format: One of the formats the command's ``--format`` offers.
        path: The file of ``-o/--output`` (None: standard output).
    """

    format: str
    path: str | None = None

    @contextmanager
    def stream(self) -> Iterator[TextIO]:
        """``with output.stream() as out:`` standard output, or the file, created readable by
        its owner only (0600) and appearing complete or not at all (see
        :func:`async_refimport._report.report_file`).

        Yields:
            The text stream to write to.
        """
        if self.path is None:
            yield sys.stdout
            sys.stdout.flush()
            return
        with report_file(self.path) as out:
            yield out

    def print_written(self, what: str) -> None:
        """Say on stderr where the output went (nothing for standard output).

        Args:
            what: What was written (``Report``, ``Status``).
        """
        if self.path is not None:
            err_console().print(f"{what} written to {self.path}", markup=False)


def add_output_options(
    parser: argparse.ArgumentParser, formats: Sequence[str], *, default: str
) -> None:
    """Add ``--format FORMAT`` (what is written) and ``-o/--output FILE`` (where) to ``parser``,
    as every command that writes something spells them; read back with :func:`resolve_output`.

    Args:
        parser: A command's parser.
        formats: The formats the command writes.
        default: The format when ``--format`` is not given.
    """
    parser.add_argument(
        "--format",
        choices=tuple(formats),
        default=None,
        help=f"what to write (default: {default})",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE, created readable by you only (default: standard output)",
    )
    parser.set_defaults(output_formats=tuple(formats), output_default=default)


def resolve_output(args: argparse.Namespace, *, json_flag: bool = False) -> Output | None:
    """The format and file of the options of :func:`add_output_options`.

    ``--output WORD`` with a bare format word (``json``, ``csv``, ``html``, ``text``, or one of
    the command's formats) and no
    ``--format`` is the deprecated spelling of ``--format WORD``: it is read so for one release,
    with a warning on stderr naming the new spelling. With ``--format`` given, ``--output`` is
    always a file.

    Args:
        args: The parsed command line.
        json_flag: Whether the command also has ``--json`` (the same as ``--format json``).

    Returns:
        What to write and where; None, once its error line is printed, when the options
        contradict each other or a bare word names a format this command does not write.
    """
    formats: tuple[str, ...] = args.output_formats
    chosen: str | None = args.format
    if json_flag and getattr(args, "json", False):
        if chosen not in (None, "json"):
            print_error(f"--json and --format {chosen} contradict each other: give one")
            return None
        chosen = "json"
    path: str | None = args.output
    if path is not None and chosen is None and path in FORMAT_WORDS | set(formats):
        if path not in formats:
            print_error(
                f"--output {path}: --output names a file, and {path} is no format of this "
                f"command ({', '.join(formats)}); to write a file named {path}, give ./{path}"
            )
            return None
        err_console().print(
            f"[yellow]warning:[/] --output {path} is deprecated as a format: write --format "
            f"{path} (and -o/--output FILE for a file); in the next release --output {path} "
            f"writes a file named {path}",
            soft_wrap=True,
        )
        chosen, path = path, None
    return Output(chosen or args.output_default, path)
