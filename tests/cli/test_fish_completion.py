"""``refimport completion fish``: written from the parsers, valid fish, completing what it should.

fish runs the script when it is installed (``fish -n`` for its syntax, ``complete -C`` for what it
offers); without fish, the script's structure is checked instead.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from async_refimport._shell_completion import completion_parser

FISH = shutil.which("fish")


@pytest.fixture(scope="module")
def fish_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport", "completion", "fish"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path_factory.mktemp("completion") / "refimport.fish"
    path.write_text(proc.stdout, encoding="utf-8")
    return path


def offered(script: Path, line: str) -> list[str]:
    """What fish offers for the command line ``line`` (its last word being typed)."""
    assert FISH is not None
    quoted = line.replace("'", "\\'")
    proc = subprocess.run(
        [FISH, "--no-config", "-c", f"source {script}; complete -C '{quoted}'"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [entry.split("\t")[0] for entry in proc.stdout.splitlines()]


def commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, f"{path} {name}".strip())
    return found


def test_the_script_completes_every_command_and_option(fish_script: Path) -> None:
    lines = fish_script.read_text().splitlines()
    assert lines[0].startswith("# fish completion of refimport")
    every = commands(completion_parser())
    assert len(every) > 10
    for path, parser in every:
        mine = [
            line
            for line in lines
            if line.startswith(
                f"complete -c refimport -n '__refimport_at{' ' + path if path else ''}' "
            )
        ]
        for action in parser._actions:
            for option in action.option_strings:
                flag = f"-s {option[1:]}" if len(option) == 2 else f"-l {option[2:]}"
                assert any(f" {flag}" in line for line in mine), (path, option)
        if path:
            assert f"'{path}'" in next(
                line for line in lines if line.startswith("set -g __refimport_commands")
            )


@pytest.mark.skipif(FISH is None, reason="fish is not installed: the structure is checked above")
def test_fish_reads_the_script_and_offers_commands_options_and_choices(fish_script: Path) -> None:
    assert FISH is not None
    checked = subprocess.run([FISH, "-n", str(fish_script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert offered(fish_script, "refimport re") == ["report"]
    assert {"import", "status", "report", "worker", "completion"} <= set(
        offered(fish_script, "refimport ")
    )
    assert sorted(offered(fish_script, "refimport report --format ")) == ["csv", "html", "json"]
    assert offered(fish_script, "refimport worker --sp") == ["--spool"]
    assert offered(fish_script, "refimport journal ") == ["init"]
    assert "--region" in offered(fish_script, "refimport journal init --re")
    # An option of another command is not offered: import has no --spool.
    assert offered(fish_script, "refimport import --sp") == []
    assert sorted(offered(fish_script, "refimport completion ")) == ["bash", "fish", "tcsh", "zsh"]


@pytest.mark.skipif(FISH is None, reason="fish is not installed: the structure is checked above")
def test_fish_completes_paths_where_a_file_is_named(fish_script: Path, tmp_path: Path) -> None:
    (tmp_path / "refs.csv").write_text("source_file,name\n")
    assert offered(fish_script, f"refimport import {tmp_path}/re") == [f"{tmp_path}/refs.csv"]
    assert offered(fish_script, f"refimport report -o {tmp_path}/re") == [f"{tmp_path}/refs.csv"]
    (tmp_path / "site.toml").write_text("")
    assert offered(fish_script, f"refimport status --config {tmp_path}/si") == [
        f"{tmp_path}/site.toml"
    ]
