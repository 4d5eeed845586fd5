"""The conventions every command shares: exit codes in ``--help`` (read from ``ExitCode``),
``--format`` for what and ``-o/--output`` for where (with the deprecated ``--output json``),
and ``-v``/``-vv``/``-q`` meaning the same for import, report, status and the worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_refimport._console import ExitCode
from async_refimport.cli.common import IMPORT_EXIT_CODES, READ_EXIT_CODES
from async_refimport.journal import opened_journal
from async_refimport.worker.config import EXIT_CODES as WORKER_EXIT_CODES
from tests.helpers.cli import Run, run_cli


def refimport(*args: str | Path, cwd: Path) -> Run:
    return run_cli(*args, cwd=cwd)


def empty_journal(path: Path) -> Path:
    """A journal with nothing in it yet (what report and status read)."""

    async def create() -> None:
        async with opened_journal(path):
            pass

    anyio.run(create)
    return path


def listed_codes(help_text: str) -> dict[int, str]:
    """The ``exit codes:`` list of a ``--help``: each code and the first line of its meaning."""
    lines = help_text.split("exit codes:\n", 1)[1].splitlines()
    codes: dict[int, str] = {}
    for line in lines:
        if not line.startswith("  ") or not line[2:3].isdigit():
            if codes and not line.startswith("       "):
                break
            continue
        number, meaning = line.split(maxsplit=1)
        codes[int(number)] = meaning
    return codes


def test_every_command_lists_its_exit_codes_with_the_numbers_of_exit_code(tmp_path: Path) -> None:
    # The import (and refimport itself) can end with every code there is.
    assert set(IMPORT_EXIT_CODES) == set(ExitCode)
    expected: dict[tuple[str, ...], dict[ExitCode, str]] = {
        (): IMPORT_EXIT_CODES,
        ("import",): IMPORT_EXIT_CODES,
        ("report",): READ_EXIT_CODES,
        ("status",): {**READ_EXIT_CODES, ExitCode.OK: "shown"},
        ("worker",): WORKER_EXIT_CODES,
    }
    for command, meanings in expected.items():
        run = refimport(*command, "--help", cwd=tmp_path)
        assert run.code == 0, run.stderr
        listed = listed_codes(run.stdout)
        assert sorted(listed) == sorted(int(c) for c in meanings), (command, listed)
        for code, meaning in meanings.items():
            assert meaning.startswith(listed[int(code)].split(" (")[0][:20]), (command, code)
    for command, least in {
        ("journal", "init"): {0, 2, 3, 130},
        ("events", "init"): {0, 2, 3, 130},
        ("demo",): {0, 1, 2, 130},
        ("completion",): {0, 2},
    }.items():
        listed = listed_codes(refimport(*command, "--help", cwd=tmp_path).stdout)
        assert least <= set(listed), (command, listed)
        assert set(listed) <= {int(c) for c in ExitCode}


def test_format_is_what_and_output_is_where(tmp_path: Path) -> None:
    journal = str(empty_journal(tmp_path / "j.sqlite"))
    # A file named like a format, once --format says what to write.
    run = refimport("report", "--journal", journal, "--format", "json", "-o", "json", cwd=tmp_path)
    assert run.code == 0, run.stderr
    assert json.loads((tmp_path / "json").read_text())["items"] == []
    assert "deprecated" not in run.stderr and "Report written to json" in run.stderr
    status = refimport(
        "status", "--journal", journal, "--format", "json", "-o", "s.json", cwd=tmp_path
    )
    assert status.code == 0 and status.stdout == "", status.stderr
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads(
        refimport("status", "--journal", journal, "--json", cwd=tmp_path).stdout
    )
    text = refimport("status", "--journal", journal, "-o", "s.txt", cwd=tmp_path)
    assert text.code == 0 and "rows per store" in (tmp_path / "s.txt").read_text()


@pytest.mark.parametrize("command", ["report", "status"])
def test_output_with_a_bare_format_word_is_the_deprecated_format(
    command: str, tmp_path: Path
) -> None:
    journal = str(empty_journal(tmp_path / "j.sqlite"))
    run = refimport(command, "--journal", journal, "--output", "json", cwd=tmp_path)
    assert run.code == 0, run.stderr
    spelled = refimport(command, "--journal", journal, "--format", "json", cwd=tmp_path)
    assert json.loads(run.stdout) == json.loads(spelled.stdout)
    assert not (tmp_path / "json").exists()
    warning = next(line for line in run.stderr.splitlines() if "deprecated" in line)
    assert warning.startswith("warning: --output json") and "--format json" in warning
    # A word that is no format of the command is refused, naming how to write such a file.
    html = refimport("status", "--journal", journal, "--output", "html", cwd=tmp_path)
    assert html.code == 2 and "./html" in html.stderr, html.stderr
    both = refimport("status", "--journal", journal, "--json", "--format", "text", cwd=tmp_path)
    assert both.code == 2 and "--json" in both.stderr, both.stderr


def log_events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_v_means_info_vv_debug_q_errors_only_for_import_report_status_and_worker(
    tmp_path: Path,
) -> None:
    journal = str(empty_journal(tmp_path / "j.sqlite"))
    # The file's log-format is a default taken from it: logged at debug; reading it, at info.
    (tmp_path / "refimport.toml").write_text('log-format = "json"\n')
    commands = {
        "import": (("import", "missing.csv"), "warnings"),
        "report": (("report", "--journal", journal, "-o", "r.html"), "warnings"),
        "status": (("status", "--journal", journal), "warnings"),
        # A flag the worker refuses once logging is set up: it stops before serving.
        "worker": (("worker", "--spool", "s", "--max-sources-per-job", "0"), "info"),
    }
    levels = {"-q": "errors", "": None, "-v": "info", "-vv": "debug"}
    for name, (args, default) in commands.items():
        for flag, level in levels.items():
            run = refimport(*args, *([flag] if flag else []), cwd=tmp_path)
            events = {e["event"] for e in log_events(run.stderr)}
            shown = level or default
            assert ("options.config_file" in events) == (shown in ("info", "debug")), (
                name,
                flag,
                run.stderr,
            )
            assert ("options.default" in events) == (shown == "debug"), (name, flag, run.stderr)
