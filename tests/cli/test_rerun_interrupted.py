"""An interrupted re-run reports the rows an earlier run journaled by their journal state.

Issue 25: a re-run stopped with Ctrl-C before it journaled its rows said ``not_journaled`` for
rows an earlier run had already imported. Only the rows never written to the journal may be
``not_journaled``; the others are what the journal says they are.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from async_refimport.emulator import EmulatorThread, Faults
from tests.helpers.cli import ROLE_ARN

Genomes = Callable[[int, str], list[tuple[str, str]]]


def _manifest(path: Path, items: list[tuple[str, str]]) -> Path:
    path.write_text("name,source_file\n" + "".join(f"{n},{uri}\n" for n, uri in items))
    return path


def _command(emu: EmulatorThread, store: str, journal: Path, manifest: Path) -> list[str]:
    return [
        sys.executable, "-m", "async_refimport", "import", str(manifest), "--json",
        "--store-id", store, "--role-arn", ROLE_ARN,
        "--endpoint-url", emu.omics_endpoint_url, "--journal", str(journal),
    ]  # fmt: skip


def _list_calls(emu: EmulatorThread) -> int:
    return int(emu.stats()["calls"].get("ListReferences", 0))


def test_an_interrupted_rerun_reports_earlier_rows_by_their_journal_state(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path, journal_path: Path
) -> None:
    """Four rows imported; a re-run of them plus two new rows is stopped (one SIGINT) while the
    store's set-up check is still being answered 500: the four are reported imported, only the
    two new ones ``not_journaled``; a third run imports those two, nothing twice."""
    items = genomes(6, "rerun-stop")
    first = subprocess.run(
        _command(emulator, store, journal_path, _manifest(tmp_path / "first.csv", items[:4])),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["summary"]["imported"] == 4

    # Every ListReferences now answers 500 (retried, not a set-up error): the re-run stays in
    # its set-up check, before it journals anything, until it is interrupted.
    emulator.configure(faults=Faults(tps=None, p_500=1.0, operations=frozenset({"ListReferences"})))
    whole = _manifest(tmp_path / "whole.csv", items)
    before = _list_calls(emulator)
    proc = subprocess.Popen(
        _command(emulator, store, journal_path, whole),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _list_calls(emulator) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _list_calls(emulator) >= before + 2, "the re-run never checked its store"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    doc = json.loads(out)
    assert doc["summary"]["imported"] == 4, doc["summary"]
    assert doc["summary"]["total"] == 4 and "pending" not in doc["summary"], doc["summary"]
    assert doc["summary"]["not_journaled"] == 2, doc["summary"]
    by_name = {item["name"]: item["status"] for item in doc["items"]}
    assert by_name == {name: "IMPORTED" for name, _ in items[:4]}, by_name
    assert "Stopped with 2 row(s) unfinished" in err, err

    emulator.configure(faults=Faults.none())
    third = subprocess.run(
        _command(emulator, store, journal_path, whole), capture_output=True, text=True, timeout=120
    )
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["summary"]["imported"] == 6
    refs = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(refs) == sorted(name for name, _ in items)  # each exactly once
