"""A journal that turns hostile under a running ``refimport import`` (as a subprocess, where the
user meets it): a full disk, a journal deleted mid-run, a store lease left by a killed run.
Each stops or goes on with one clear line, no traceback, and nothing lost or imported twice.

A full disk is made unprivileged: the test lowers the running child's ``RLIMIT_FSIZE``
(``prlimit`` on a process of one's own needs no privilege) with ``SIGXFSZ`` ignored, so every
write past a few bytes fails with ``EFBIG``, exactly as writes fail on a full file system.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread

from .conftest import ROLE_ARN, Run, starts

Genomes = Callable[[int, str], list[tuple[str, str]]]

pytestmark = pytest.mark.skipif(
    not hasattr(resource, "prlimit"), reason="needs prlimit(2) (Linux) to fill the disk"
)


def import_cmd(emu: EmulatorThread, store: str, journal: Path, manifest: Path) -> list[str]:
    return [
        sys.executable, "-m", "async_refimport", "import", str(manifest), "--store-id", store,
        "--role-arn", ROLE_ARN, "--endpoint-url", emu.omics_endpoint_url,
        "--journal", str(journal), "--max-sources-per-job", "4", "--no-check-sources",
    ]  # fmt: skip


def ignore_sigxfsz() -> None:
    # A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def spawn(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=ignore_sigxfsz,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> Run:
    out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, out, err)


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def fill_the_disk(pid: int) -> None:
    """From now on the process can write no byte past offset 512 of any file."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (512, hard))


def assert_one_clean_line(run: Run, *words: str) -> None:
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "lane.crashed" not in run.stderr and "ExceptionGroup" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]


def test_a_full_disk_stops_the_run_in_one_line_and_a_rerun_imports_each_row_once(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    emulator.configure(time_scale=0.01)  # jobs of a second or two: the disk fills mid-job
    items = genomes(12, "full")
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in items))
    journal = tmp_path / "j.sqlite"
    cmd = import_cmd(emulator, store, journal, manifest)

    proc = spawn(cmd)
    wait_until(lambda: starts(emulator) >= 1)
    fill_the_disk(proc.pid)
    full = finish(proc)
    assert full.code == 2, full.stderr[-3000:]
    assert_one_clean_line(full, "journal")
    assert "disk" in full.stderr  # the reason SQLite gives

    # Space is back: the re-run picks up the job in flight and imports every row exactly once.
    again = finish(spawn(cmd))
    assert again.code == 0, again.stderr[-3000:]
    names = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(names) == sorted(n for n, _ in items)
