"""The ``refimport`` command: import manifests, watch them, report on them, try it all in a demo.

This module only dispatches. Each command is a module of its own that builds its parser
(``add_parser(sub)``) and sets its handler (``run(args) -> int``): :mod:`.import_`,
:mod:`.status`, :mod:`.report`, :mod:`.catalog`, :mod:`.journal`, :mod:`.events`,
:mod:`.demo`; what they share is in :mod:`.common`. ``emulator``, ``worker`` and
``completion`` are listed here for ``--help`` only: :mod:`async_refimport.__main__` hands
them to their own shells.

Options left out take their defaults from ``REFIMPORT_<OPTION>`` and the config file
(:func:`async_refimport._options.parse_with_defaults`).

Exit codes (:class:`async_refimport._console.ExitCode`): 0 every row imported or already
present, 1 some rows failed (or were skipped as invalid), 2 usage or manifest errors (nothing
sent), 3 a set-up error (credentials, profile, access, store, endpoint: nothing failed), 130
interrupted (re-run the same command to resume). A reader of stdout that stops early
(``refimport report | head``) is no error: the command stops writing, prints nothing about it,
and ends with its own code (0 for ``report`` and ``status``). An import run's code is
:func:`async_refimport.cli.outcome.exit_code`; an error no command handled gets its code from
:func:`exit_code_of_error`.
"""

from __future__ import annotations

import argparse
import sys

import botocore.exceptions

from async_refimport._console import ExitCode, err_console, escape
from async_refimport._errors import JournalError, RefImportError, SetupError
from async_refimport._options import ConfigError, parse_with_defaults
from async_refimport.cli import catalog, demo, events, import_, journal, report, status
from async_refimport.cli.common import EPILOG, print_error, print_setup_errors, silence_stdout

__all__ = ["ExitCode", "build_parser", "exit_code_of_error", "main"]

_DESCRIPTION = """\
Bulk, crash-safe imports of reference genomes (FASTA files in S3) into AWS HealthOmics
reference stores. Every row of a manifest ends imported exactly once, or failed with a reason;
progress is journaled, so an interrupted run resumes where it stopped."""

#: The commands, in ``--help`` order: each module adds its own parser.
_COMMANDS = (import_, status, report, catalog, journal, events, demo)

#: Other shells' commands, listed for ``--help``: :mod:`async_refimport.__main__` hands them
#: their arguments, and their own parsers own their options.
_DELEGATED = {
    "emulator": "run the local HealthOmics emulator (see: refimport emulator --help)",
    "worker": "long-lived worker: spool directory and HTTP intake (see: refimport worker --help)",
    "completion": "print the shell completion script (refimport completion bash|zsh|fish|tcsh)",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``refimport``, every command's own parser under it.

    Returns:
        The parser; each command's parser sets ``handler`` (its ``run``) in the namespace.
    """
    parser = argparse.ArgumentParser(
        prog="refimport",
        description=_DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(sub)
    for name, summary in _DELEGATED.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("async-refimport")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refimport``.

    Args:
        argv: The arguments after the program's name (default: ``sys.argv[1:]``).

    Returns:
        The exit code (an :class:`ExitCode`).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        # The options left out take their defaults from REFIMPORT_<OPTION>, then the config file.
        args = parse_with_defaults(parser, args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else ExitCode.INVALID_INPUT
    except ConfigError as exc:
        print_error(exc)
        return ExitCode.INVALID_INPUT
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.INVALID_INPUT
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        # The reader of stdout stopped early (`refimport report | head`): not an error, as for
        # any command line tool; what was asked for is done, and the command says nothing.
        silence_stdout()
        return ExitCode.OK
    except KeyboardInterrupt:
        err_console().print("[yellow]Interrupted.[/] Run the same command again to resume.")
        return ExitCode.INTERRUPTED
    except (RefImportError, botocore.exceptions.ProfileNotFound, OSError) as exc:
        return exit_code_of_error(exc)
    return code


def exit_code_of_error(error: Exception) -> ExitCode:
    """Print the one line a command's unhandled error gets, and return its exit code.

    Args:
        error: What a command raised: a :class:`RefImportError`, an unknown AWS profile, or an
            ``OSError`` (an unreadable manifest, an unwritable journal directory ...).

    Returns:
        :attr:`ExitCode.INVALID_INPUT` for a journal's error and an ``OSError``,
        :attr:`ExitCode.SETUP` for a set-up error and an unknown profile, else
        :attr:`ExitCode.FAILED_ROWS`.

    Raises:
        Exception: ``error`` itself, when it is none of those.
    """
    if isinstance(error, JournalError):
        # Most say "journal PATH: ..." or "DynamoDB table T ..." themselves; name it otherwise.
        text = str(error)
        print_error(text if text.startswith(("journal", "DynamoDB")) else f"journal: {text}")
        return ExitCode.INVALID_INPUT
    if isinstance(error, SetupError):
        print_setup_errors([error])
        return ExitCode.SETUP
    if isinstance(error, RefImportError):
        print_error(error)
        return ExitCode.FAILED_ROWS
    if isinstance(error, botocore.exceptions.ProfileNotFound):  # wherever a client is made
        err_console().print(
            f"[red]error:[/] {escape(error)}: name a profile of ~/.aws/config or "
            "~/.aws/credentials (--profile or AWS_PROFILE)"
        )
        return ExitCode.SETUP
    if isinstance(error, OSError):
        print_error(error)
        return ExitCode.INVALID_INPUT
    raise error


if __name__ == "__main__":
    sys.exit(main())
