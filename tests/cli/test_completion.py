"""``refimport completion``: shtab's scripts, valid for their shell, complete every command."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from async_refimport._shell_completion import completion_parser
from async_refimport.cli.main import build_parser

#: The subcommands, as the parser lists them (the script is made from it, so none is forgotten).
COMMANDS = tuple(next(a for a in build_parser()._actions if a.dest == "command").choices)


def completion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "async_refimport", "completion", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proc = completion("bash")
    assert proc.returncode == 0, proc.stderr
    path = tmp_path_factory.mktemp("completion") / "refimport.bash"
    path.write_text(proc.stdout, encoding="utf-8")
    return path


def complete_in_bash(script: Path, *words: str) -> list[str]:
    """What bash offers after ``words`` (the last one is being typed)."""
    line = " ".join(words)
    program = f"""
source {script}
COMP_WORDS=({" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE='{line}'
COMP_POINT={len(line)}
_shtab_refimport
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    proc = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_the_bash_script_is_valid_bash_and_names_every_subcommand(bash_script: Path) -> None:
    text = bash_script.read_text()
    proc = subprocess.run(["bash", "-n", str(bash_script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert {"import", "status", "report", "demo", "emulator", "worker", "completion"} <= set(
        COMMANDS
    )
    listed = next(line for line in text.splitlines() if line.startswith("_shtab_refimport_subp"))
    assert listed == f"_shtab_refimport_subparsers=({' '.join(COMMANDS)})"


def test_bash_completes_commands_options_and_choices(bash_script: Path) -> None:
    assert complete_in_bash(bash_script, "refimport", "") == list(COMMANDS)
    assert complete_in_bash(bash_script, "refimport", "re") == ["report"]
    assert "--dry-run" in complete_in_bash(bash_script, "refimport", "import", "--d")
    assert complete_in_bash(bash_script, "refimport", "report", "--format", "") == [
        "csv",
        "json",
        "html",
    ]
    # The delegated shells' own options: the emulator's and the worker's parsers.
    assert complete_in_bash(bash_script, "refimport", "emulator", "--busy-c") == ["--busy-code"]
    assert "--spool" in complete_in_bash(bash_script, "refimport", "worker", "--sp")
    assert complete_in_bash(bash_script, "refimport", "completion", "") == [
        "bash",
        "zsh",
        "fish",
        "tcsh",
    ]


def _option_strings(
    parser: argparse.ArgumentParser, prefix: str
) -> Iterator[tuple[str, list[str]]]:
    """(shtab's name of ``parser``, its option strings), for it and every parser under it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _option_strings(sub, f"{prefix}_{name}")
    yield prefix, [string for action in parser._actions for string in action.option_strings]


def test_the_script_lists_every_option_of_every_command(bash_script: Path) -> None:
    # Each command builds its own parser: none of their options may be missed.
    lines = bash_script.read_text().splitlines()
    listed = 0
    for name, strings in _option_strings(completion_parser(), "_shtab_refimport"):
        assert f"{name}_option_strings=({' '.join(strings)})" in lines, name
        listed += len(strings)
    assert listed > 120  # every command's, the emulator's and the worker's


def test_paths_complete_as_files(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "refs.csv").write_text("source_file,name\n")
    offered = complete_in_bash(bash_script, "refimport", "import", f"{tmp_path}/re")
    assert offered == [f"{tmp_path}/refs.csv"]


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_zsh_and_tcsh_scripts_parse(shell: str, tmp_path: Path) -> None:
    proc = completion(shell)
    assert proc.returncode == 0, proc.stderr
    assert "import" in proc.stdout and "emulator" in proc.stdout
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed: the script is written, its syntax is not checked")
    path = tmp_path / f"refimport.{shell}"
    path.write_text(proc.stdout, encoding="utf-8")
    checked = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_an_unknown_shell_is_a_usage_error() -> None:
    proc = completion("powershell-7")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
    assert completion().returncode == 2
    assert "bash" in completion("--help").stdout
