"""``refimport completion SHELL``: a shell completion script, written by shtab from the parsers.

Nothing is hand-written: shtab reads the same argparse parsers that parse the command line, so
a new option or subcommand is completed as soon as it exists. ``emulator`` and ``worker`` have
parsers of their own (their shells own their options); the script is made from ``refimport``'s
parser with those put in place of the stubs it lists for ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import shtab

#: The shells shtab writes scripts for that this command offers.
SHELLS = ("bash", "zsh", "tcsh")

#: Arguments that name a file or a directory (by ``dest``), completed as paths.
_FILES = frozenset({"manifest", "journal", "output", "env_file"})
_DIRECTORIES = frozenset({"workdir", "spool"})

_INSTALL = """\
install (once; see the README):
  bash  mkdir -p ~/.local/share/bash-completion/completions
        refimport completion bash > ~/.local/share/bash-completion/completions/refimport
  zsh   mkdir -p ~/.zfunc && refimport completion zsh > ~/.zfunc/_refimport
        (and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath))
  tcsh  refimport completion tcsh > ~/.refimport.tcsh
        echo 'source ~/.refimport.tcsh' >> ~/.tcshrc"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``refimport completion``."""
    parser = argparse.ArgumentParser(
        prog="refimport completion",
        description="Print the shell completion script of refimport (every command, option "
        "and choice) on stdout.",
        epilog=_INSTALL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    return parser


def completion_parser() -> argparse.ArgumentParser:
    """``refimport``'s whole command line as one parser: the delegated commands' own parsers in
    place of their stubs, and path arguments marked for path completion.

    Returns:
        :func:`async_refimport.cli.main.build_parser`'s parser with the ``emulator``,
        ``worker`` (each when installed) and ``completion`` parsers in it.
    """
    from async_refimport.cli.main import build_parser as cli_parser

    parser = cli_parser()
    delegated: dict[str, Callable[[], argparse.ArgumentParser]] = {"completion": build_parser}
    try:
        from async_refimport.emulator._cli import build_parser as emulator_parser

        delegated["emulator"] = emulator_parser
    except ImportError:  # an installation without the emulator: its options are not completed
        pass
    try:
        from async_refimport.worker.main import build_parser as worker_parser

        delegated["worker"] = worker_parser
    except ImportError:  # an installation without the worker
        pass
    for action in parser._actions:  # argparse keeps its subcommands here only
        if isinstance(action, argparse._SubParsersAction):
            for name, build in delegated.items():
                if name in action.choices:
                    action.choices[name] = build()
    _mark_paths(parser)
    return parser


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)
        elif action.dest in _FILES:
            action.complete = shtab.FILE  # type: ignore[attr-defined]  # shtab's own hook
        elif action.dest in _DIRECTORIES:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]  # shtab's own hook


def script(shell: str) -> str:
    """The completion script of ``refimport`` for ``shell``.

    Args:
        shell: One of :data:`SHELLS`.

    Returns:
        The script's text.

    Raises:
        ValueError: ``shell`` is not one of :data:`SHELLS`.
    """
    if shell not in SHELLS:
        raise ValueError(f"no completion for {shell!r}: one of {', '.join(SHELLS)}")
    return str(shtab.complete(completion_parser(), shell=shell))


def main(argv: list[str] | None = None) -> int:
    """Run ``refimport completion``.

    Args:
        argv: The arguments after ``completion`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, or 2 for a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    sys.stdout.write(script(args.shell))
    return 0
