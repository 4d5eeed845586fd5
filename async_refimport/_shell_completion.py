"""``refimport completion SHELL``: a shell completion script, written from the parsers.

Nothing is hand-written: shtab (bash, zsh, tcsh) and :func:`fish_script` (fish, which shtab does
not write) read the same argparse parsers that parse the command line, so a new option or
subcommand is completed as soon as it exists. ``emulator`` and ``worker`` have
parsers of their own (their shells own their options); the script is made from ``refimport``'s
parser with those put in place of the stubs it lists for ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator

import shtab

from async_refimport._console import ExitCode

#: The shells this command writes scripts for (fish by :func:`fish_script`, the others by shtab).
SHELLS = ("bash", "zsh", "fish", "tcsh")

#: Arguments that name a file or a directory (by ``dest``), completed as paths.
_FILES = frozenset({"manifest", "journal", "output", "env_file", "config", "targets"})
_DIRECTORIES = frozenset({"workdir", "spool"})

_INSTALL = """\
install (once; see the README):
  bash  mkdir -p ~/.local/share/bash-completion/completions
        refimport completion bash > ~/.local/share/bash-completion/completions/refimport
  zsh   mkdir -p ~/.zfunc && refimport completion zsh > ~/.zfunc/_refimport
        (and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath))
  fish  refimport completion fish > ~/.config/fish/completions/refimport.fish
  tcsh  refimport completion tcsh > ~/.refimport.tcsh
        echo 'source ~/.refimport.tcsh' >> ~/.tcshrc"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``refimport completion``."""
    parser = argparse.ArgumentParser(
        prog="refimport completion",
        description="Print the shell completion script of refimport (every command, option "
        "and choice) on stdout.",
        epilog=f"{_INSTALL}\n\nexit codes:\n  {int(ExitCode.OK):<4} the script is written\n"
        f"  {int(ExitCode.INVALID_INPUT):<4} usage error (a shell it does not know)",
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
    if shell == "fish":
        return fish_script(completion_parser())
    return str(shtab.complete(completion_parser(), shell=shell))


# -- fish ----------------------------------------------------------------------------------------

#: The script's helpers: ``__refimport_at PATH...`` is true when the words typed so far choose
#: that command (``__refimport_at journal init``; no words: ``refimport`` itself).
_FISH_HEAD = """\
# fish completion of refimport, written by `refimport completion fish` from its parsers.
function __refimport_path --description 'the refimport command chosen by the words so far'
    set -l path
    for token in (commandline -opc)[2..-1]
        string match -q -- '-*' $token; and continue
        if contains -- (string join ' ' $path $token) $__refimport_commands
            set path $path $token
        end
    end
    string join ' ' $path
end

function __refimport_at --description 'whether the words so far choose this command'
    set -l path (__refimport_path)
    test "x$path" = "x$argv"
end

complete -c refimport -f
"""


def fish_script(parser: argparse.ArgumentParser) -> str:
    """The fish completion script of ``parser``: its commands, options and choices.

    Args:
        parser: :func:`completion_parser`'s parser.

    Returns:
        The script: ``complete -c refimport`` lines, each conditioned on the command chosen so
        far, after two helper functions.
    """
    commands = list(_fish_commands(parser, ()))
    names = " ".join(_fish_quote(" ".join(path)) for path, _ in commands if path)
    lines = [_FISH_HEAD.rstrip("\n"), f"set -g __refimport_commands {names}", ""]
    for path, sub in commands:
        condition = _fish_quote(" ".join(["__refimport_at", *path]))
        lines += _fish_lines(sub, condition)
    return "\n".join(lines) + "\n"


def _fish_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _fish_commands(sub, (*path, name))


def _fish_lines(parser: argparse.ArgumentParser, condition: str) -> list[str]:
    """The ``complete`` lines of one command: its subcommands, options and positionals."""
    base = f"complete -c refimport -n {condition}"
    lines = []
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help or "" for a in action._choices_actions}
            for name in action.choices:
                lines.append(f"{base} -a {_fish_quote(name)}{_fish_help(summaries.get(name))}")
            continue
        help_text = None if action.help in (None, argparse.SUPPRESS) else action.help
        described = _fish_help(formatter._expand_help(action) if help_text else None)
        if not action.option_strings:
            if action.choices:
                lines.append(f"{base} -a {_fish_quote(' '.join(map(str, action.choices)))}")
            elif action.dest in _FILES:
                lines.append(f"{base} -F")
            continue
        flags = "".join(
            f" -s {o[1:]}" if len(o) == 2 else f" -l {o[2:]}" for o in action.option_strings
        )
        lines.append(f"{base}{flags}{_fish_value(action)}{described}")
    return lines


def _fish_value(action: argparse.Action) -> str:
    """What an option's value completes to: nothing (a switch), its choices, paths, or free."""
    if action.nargs == 0:
        return ""
    if action.choices:
        return " -x -a " + _fish_quote(" ".join(map(str, action.choices)))
    if action.dest in _FILES:
        return " -r -F"
    if action.dest in _DIRECTORIES:
        return " -x -a '(__fish_complete_directories)'"
    return " -x"


def _fish_help(text: str | None) -> str:
    """`` -d 'TEXT'``: an option's help, its first clause, for fish's description column."""
    if not text:
        return ""
    first = " ".join(text.split()).split("; ")[0]
    return " -d " + _fish_quote(first if len(first) <= 80 else first[:77] + "...")


def _fish_quote(text: str) -> str:
    """``text`` as one single-quoted fish word (fish escapes only ``\\`` and ``'`` in them)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
        code = exc.code
        return int(code or 0) if not isinstance(code, str) else ExitCode.INVALID_INPUT
    sys.stdout.write(script(args.shell))
    return ExitCode.OK
