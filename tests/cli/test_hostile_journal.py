"""A journal that turns hostile under a running ``refimport import`` (as a subprocess, where the
user meets it): a full disk, a journal deleted mid-run, a store lease left by a killed run.
Each stops or goes on with one clear line, no traceback, and nothing lost or imported twice.

A full disk is made unprivileged: the test lowers the running child's ``RLIMIT_FSIZE``
(``prlimit`` on a process of one's own needs no privilege) with ``SIGXFSZ`` ignored, so every
write past a few bytes fails with ``EFBIG``, exactly as writes fail on a full file system.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run, create_store, run_cli, starts

Genomes = Callable[[int, str], list[tuple[str, str]]]

pytestmark = pytest.mark.skipif(
    not hasattr(resource, "prlimit"), reason="needs prlimit(2) (Linux) to fill the disk"
)


def write_manifest(path: Path, items: Iterable[tuple[str, str]]) -> None:
    """A CSV manifest of ``(name, source_file)`` rows."""
    path.write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in items))


def import_cmd(emu: EmulatorThread, store: str, journal: Path, manifest: Path) -> list[str]:
    return [
        sys.executable, "-m", "async_refimport", "import", str(manifest), "--store-id", store,
        "--role-arn", ROLE_ARN, "--endpoint-url", emu.omics_endpoint_url,
        "--journal", str(journal), "--max-sources-per-job", "4", "--no-check-sources",
    ]  # fmt: skip


def ignore_sigxfsz() -> None:
    # A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


_SPAWNED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_run_left_behind() -> Iterator[None]:
    """A run of a failed test is killed, not left running."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def spawn(cmd: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=ignore_sigxfsz,
    )
    _SPAWNED.append(proc)
    return proc


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
    write_manifest(manifest, items)
    journal = tmp_path / "j.sqlite"
    cmd = import_cmd(emulator, store, journal, manifest)

    proc = spawn(cmd)
    wait_until(lambda: starts(emulator) >= 1)
    fill_the_disk(proc.pid)
    full = finish(proc)
    assert full.code == 2, full.stderr[-3000:]
    assert_one_clean_line(full, "journal", "is its disk full?")
    assert full.stderr.count("disk I/O error") + full.stderr.count("disk is full") == 1

    # Space is back: the re-run picks up the job in flight and imports every row exactly once.
    again = finish(spawn(cmd))
    assert again.code == 0, again.stderr[-3000:]
    names = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(names) == sorted(n for n, _ in items)


def test_a_journal_that_cannot_be_written_from_the_start_is_one_line(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.csv"
    write_manifest(manifest, genomes(2, "f0"))
    proc = spawn(import_cmd(emulator, store, tmp_path / "j.sqlite", manifest))
    fill_the_disk(proc.pid)  # before it opened anything (the interpreter is still starting)
    run = finish(proc)
    assert run.code == 2, run.stderr[-3000:]
    assert_one_clean_line(run, "journal")
    assert starts(emulator) == 0


def test_a_journal_deleted_mid_run_stops_the_run_in_one_line_and_a_rerun_resumes(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    emulator.configure(time_scale=0.01)
    items = genomes(12, "gone")
    manifest = tmp_path / "m.csv"
    write_manifest(manifest, items)
    journal = tmp_path / "j.sqlite"
    cmd = import_cmd(emulator, store, journal, manifest)
    proc = spawn(cmd)
    wait_until(lambda: starts(emulator) >= 1)
    moved = tmp_path / "moved.sqlite"
    journal.rename(moved)  # as a clean-up script might
    gone = finish(proc)
    assert gone.code == 2, gone.stderr[-3000:]
    assert_one_clean_line(gone, "deleted or replaced")
    # Put back, the journal resumes the run: every row imported exactly once.
    moved.rename(journal)
    again = finish(spawn(cmd))
    assert again.code == 0, again.stderr[-3000:]
    names = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(names) == sorted(n for n, _ in items)


def test_a_rerun_right_after_kill_9_takes_the_store_at_once(
    emulator: EmulatorThread, genomes: Genomes, tmp_path: Path
) -> None:
    """The killed run's lease names a process that is gone: the re-run does not wait out its
    30 s. The profile holds the separator a store key once used (``|``): the resume reads the
    key back whole."""
    profile = "lab|prod"
    Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[{profile}]\naws_access_key_id = {os.environ['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {os.environ['AWS_SECRET_ACCESS_KEY']}\n"
    )
    store = create_store(emulator)
    emulator.configure(time_scale=0.01)
    items = genomes(12, "kill9")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "name,source_file,profile\n" + "".join(f"{n},{u},{profile}\n" for n, u in items)
    )
    cmd = import_cmd(emulator, store, tmp_path / "j.sqlite", manifest)
    proc = spawn(cmd)
    wait_until(lambda: starts(emulator) >= 1)
    proc.kill()
    proc.communicate()
    again = finish(spawn(cmd))
    assert again.code == 0, again.stderr[-3000:]
    # A run that waits for a lease says so (the next test): this one took the store at once.
    assert "waiting_for_lease" not in again.stderr and "Traceback" not in again.stderr
    names = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(names) == sorted(n for n, _ in items)


@pytest.mark.slow
def test_a_run_that_must_wait_for_a_live_lease_says_so_and_for_how_long(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    # Jobs of 6 s: the first run still drives the store when the second starts, even when four
    # test workers on two cores make an interpreter take seconds to start.
    emulator.configure(time_scale=0.2)
    items = genomes(16, "live")
    journal = tmp_path / "j.sqlite"
    manifests = []
    for part, rows in (("a", items[:12]), ("b", items[12:])):
        manifests.append(tmp_path / f"{part}.csv")
        manifests[-1].write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in rows))
    first = spawn(import_cmd(emulator, store, journal, manifests[0]))
    wait_until(lambda: starts(emulator) >= 1)
    # Other rows for the same store and journal, while the first run drives the store.
    second = spawn(import_cmd(emulator, store, journal, manifests[1]))
    done_first = finish(first)
    done_second = finish(second, timeout=60)
    assert done_first.code == 0 and done_second.code == 0, done_second.stderr[-3000:]
    waits = [line for line in done_second.stderr.splitlines() if "waiting_for_lease" in line]
    assert len(waits) == 1, done_second.stderr[-3000:]
    assert f":{first.pid}:" in waits[0]  # who holds it ...
    assert "seconds=" in waits[0]  # ... and for how long at most
    names = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(names) == sorted(n for n, _ in items)


def md5_of(*paths: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in paths if p.exists()}


@pytest.mark.parametrize("command", [["status"], ["report", "--format", "csv"]])
def test_status_and_report_change_no_file_and_refuse_what_is_not_a_journal(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path, command: list[str]
) -> None:
    # Someone else's SQLite database, given by mistake.
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE samples (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO samples (name) VALUES ('NA12878')")
    conn.close()
    before = md5_of(other)
    run = run_cli(*command, "--journal", other)
    assert run.code == 2, run.stderr
    assert_one_clean_line(run, "not a refimport journal")
    assert md5_of(other) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]  # no -wal, no -shm

    # A real journal, read-only on disk (a shared results directory): read, left as it was.
    manifest = tmp_path / "m.csv"
    write_manifest(manifest, genomes(2, "ro"))
    journal = tmp_path / "j.sqlite"
    done = finish(spawn(import_cmd(emulator, store, journal, manifest)))
    assert done.code == 0, done.stderr
    before = md5_of(journal)
    journal.chmod(0o444)
    try:
        shown = run_cli(*command, "--journal", journal)
    finally:
        journal.chmod(0o600)
    assert shown.code == 0, shown.stderr
    assert store in shown.stdout
    assert md5_of(journal) == before
    # Reading a journal in WAL mode may leave SQLite's shared-memory index, never a write.
    wal = tmp_path / "j.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0
