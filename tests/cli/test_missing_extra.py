"""Without the ``emulator`` extra (moto), one line says what to install: from ``refimport demo``,
``refimport emulator`` and the pytest fixtures (which skip). The missing package is simulated by
blocking its import (``sys.modules[name] = None``), not by uninstalling it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from async_refimport.emulator._extra import HINT

BLOCK_MOTO = "import sys\nsys.modules['moto'] = None\nsys.modules['moto.server'] = None\n"
LINE = f"{HINT} (no module 'moto')"


def refimport_without_moto(*args: str | Path) -> subprocess.CompletedProcess[str]:
    program = BLOCK_MOTO + (
        "from async_refimport.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_the_demo_says_which_extra_to_install_in_one_line(tmp_path: Path) -> None:
    proc = refimport_without_moto("demo", "--rows", "2", "--workdir", tmp_path / "demo")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {LINE}"]
    assert proc.stdout == ""


def test_the_emulator_command_says_which_extra_to_install_in_one_line() -> None:
    proc = refimport_without_moto("emulator")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"refimport emulator: {LINE}"]


EMBEDDED = """
from async_refimport.emulator import EmulatorThread, MissingExtraError, missing_extra_hint

try:
    EmulatorThread(time_scale=0.001).start()
except MissingExtraError as exc:
    print(exc)
# A missing module that is not the extra's gets no such hint.
print(missing_extra_hint(ModuleNotFoundError("x", name="numpy")))
"""


def test_an_emulator_started_from_python_raises_the_hint() -> None:
    # In a child process: hiding moto here would hide it from the session's own emulator.
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_MOTO + EMBEDDED], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [LINE, "None"]


def test_the_pytest_fixtures_skip_with_the_hint(tmp_path: Path) -> None:
    # A project of a user's that asks for the plugin (it is opt-in), with moto missing.
    (tmp_path / "conftest.py").write_text(BLOCK_MOTO, encoding="utf-8")
    (tmp_path / "test_mine.py").write_text(
        textwrap.dedent(
            """
            def test_with_emulator(emulator):
                raise AssertionError("must not run")

            def test_with_factory(emulator_factory):
                raise AssertionError("must not run")

            def test_with_s3(s3_fasta):
                raise AssertionError("must not run")

            def test_without_fixtures():
                pass
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    command = [
        sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider",
        "-p", "async_refimport.emulator.pytest_plugin", "-q", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 3 skipped" in proc.stdout
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 3 or (len(skipped) == 1 and "[3]" in skipped[0]), proc.stdout
    assert all(LINE in line for line in skipped)
    assert "error" not in proc.stdout.lower()
