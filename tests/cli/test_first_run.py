"""What a new user met (issue 19), each where they met it: ``refimport`` as a subprocess against
the emulator, asserting what it says and that no row is lost.

An events queue that cannot be read, no Region anywhere, a dry run whose sources are in the
emulator's S3, a reader of stdout that stops early (``| head``), the live display on a narrow
terminal and its last frame, the plain line's count of jobs, Ctrl-C in the demo.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run, starts

from .test_cli import import_args, write_manifest

Genomes = Callable[[int, str], list[tuple[str, str]]]

REFIMPORT = [sys.executable, "-m", "async_refimport"]


def journaled_rows(journal: Path) -> int:
    """Rows in a SQLite journal (0 when there is no journal at all)."""
    if not journal.exists():
        return 0
    with sqlite3.connect(journal) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if "rows" not in tables:
            return 0
        return int(db.execute("SELECT count(*) FROM rows").fetchone()[0])


def imported_names(emulator: EmulatorThread, store: str) -> list[str]:
    return sorted(r["name"] for r in emulator.stats()["references"].get(store, []))


def emulator_store(emulator: EmulatorThread) -> str:
    """A store in the emulator's own account, the caller ``emulator.environ()`` makes.

    Made with the emulator's key given explicitly: the test process's environment (and boto3's
    default session, which keeps the first credentials it finds) is left as it is.
    """
    omics = boto3.client("omics", **emulator.client_kwargs())
    return str(omics.create_reference_store(name="refs")["id"])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- 1. an events queue that cannot be read --------------------------------------------------------


@pytest.mark.parametrize("queue", ["", "missing"])
def test_an_events_queue_that_cannot_be_read_is_a_setup_error_and_nothing_is_journaled(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
    queue: str,
) -> None:
    store = emulator_store(emulator)
    environ = emulator.environ(base={})
    manifest = write_manifest(tmp_path / "refs.csv", genomes(2, "q"), "csv")
    # What `URL=$(refimport events init ...)` holds after a failed init; a queue never made.
    url = "" if queue == "" else f"{environ['AWS_ENDPOINT_URL_SQS']}/123456789012/nope"
    run = cli("import", manifest, *import_args(emulator, store, journal_path),
              "--events-queue-url", url, env=environ)  # fmt: skip
    assert run.code == 3, run.stderr
    errors = error_lines(run.stderr)
    assert len(errors) == 1, run.stderr
    assert "--events-queue-url" in errors[0] and (url or "''") in errors[0]
    assert "Traceback" not in run.stderr
    assert journaled_rows(journal_path) == 0
    assert starts(emulator) == 0


def test_a_readable_events_queue_passes_the_check_and_the_rows_import(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    events_queue: Callable[..., str],
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    store = emulator_store(emulator)
    environ = emulator.environ(base={})
    items = genomes(2, "q-ok")
    manifest = write_manifest(tmp_path / "refs.csv", items, "csv")
    run = cli("import", manifest, *import_args(emulator, store, journal_path),
              "--events-queue-url", events_queue(), env=environ)  # fmt: skip
    assert run.code == 0, run.stderr
    assert imported_names(emulator, store) == sorted(n for n, _ in items)


# -- 2. a dry run checks the sources in the S3 the standard variable names -------------------------


def test_a_dry_run_checks_sources_in_the_s3_of_aws_endpoint_url_s3(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    genomes: Genomes,
    tmp_path: Path,
) -> None:
    store = emulator_store(emulator)
    environ = emulator.environ(base={})
    items = genomes(2, "dry")
    missing = ("gone", "s3://refimport-test/cli/never-uploaded.fa")
    manifest = write_manifest(tmp_path / "refs.csv", [*items, missing], "csv")
    args = ("import", manifest, "--store-id", store, "--role-arn", ROLE_ARN, "--dry-run")
    # Both standard variables set (the emulator's environment): the sources are checked.
    run = cli(*args, env=environ)
    assert run.code == 0, run.stderr
    assert "Missing source (the row would fail): gone" in run.stdout
    assert "not checked" not in run.stdout + run.stderr
    # Without an S3 for the emulator's sources, the plan says they were not checked, and why.
    env = {**environ, "AWS_ENDPOINT_URL_S3": ""}
    unchecked = cli(*args, env=env)
    assert unchecked.code == 0, unchecked.stderr
    assert "Missing source" not in unchecked.stdout
    assert "Sources not checked" in unchecked.stdout
    assert "AWS_ENDPOINT_URL_S3" in unchecked.stdout
    assert starts(emulator) == 0
    help_text = " ".join(cli("import", "--help").stdout.split())
    assert "AWS_ENDPOINT_URL_S3" in help_text and "not checked" in help_text


# -- 3. a reader of stdout that stops early ---------------------------------------------------------


def run_reader_gone(*args: str | Path, timeout: float = 120) -> tuple[int, str]:
    """``refimport ARGS | head -0``: stdout's reader is gone before the command writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        proc = subprocess.run(
            [*REFIMPORT, *map(str, args)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=timeout,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


def test_a_reader_that_stops_early_gets_no_broken_pipe_error(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path, journal_path: Path
) -> None:
    items = genomes(3, "pipe")
    manifest = write_manifest(tmp_path / "refs.csv", items, "csv")
    code, err = run_reader_gone(
        "import", manifest, *import_args(emulator, store, journal_path, "--json")
    )
    # The rows were imported: the run's code is theirs, and nothing says otherwise.
    assert code == 0, err
    assert "Broken pipe" not in err and "Errno" not in err and "nothing was sent" not in err
    assert imported_names(emulator, store) == sorted(n for n, _ in items)
    for command in (
        ("report", "--journal", journal_path, "--format", "csv"),
        ("report", "--journal", journal_path, "--format", "json"),
        ("status", "--journal", journal_path),
        ("status", "--journal", journal_path, "--json"),
    ):
        code, err = run_reader_gone(*command)
        assert code == 0, (command, err)
        assert err == "", (command, err)


def test_the_exit_codes_in_help_say_what_a_closed_pipe_does(cli: Callable[..., Run]) -> None:
    text = " ".join(cli("import", "--help").stdout.split())
    assert "3 set-up error" in text and "| head" in text


# -- 4. no Region anywhere ----------------------------------------------------------------------------


def test_no_region_anywhere_is_one_setup_line(
    cli: Callable[..., Run], store: str, genomes: Genomes, tmp_path: Path, journal_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "refs.csv", genomes(3, "noregion"), "csv")
    env = {name: "" for name in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    run = cli("import", manifest, "--store-id", store, "--role-arn", ROLE_ARN,
              "--journal", journal_path, env=env)  # fmt: skip
    assert run.code == 3, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "--region" in lines[0] and "AWS_REGION" in lines[0]
    assert "--skip-invalid" not in run.stderr and "refs.csv:2" not in run.stderr
    assert journaled_rows(journal_path) == 0


# -- 5. the progress display ---------------------------------------------------------------------------


def run_on_terminal(*args: str | Path, columns: int, timeout: float = 120) -> tuple[int, str]:
    """``refimport ARGS`` with stderr on a terminal ``columns`` wide; returns its code and what
    the terminal showed."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm"}
    proc = subprocess.Popen(
        [*REFIMPORT, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=timeout)
    return code, b"".join(chunks).decode("utf-8", "replace")


def last_frame(screen: str, counts: str) -> list[str]:
    """The lines of the live display's last frame (the overall bar, then the store's), without
    colours: the last two lines showing ``counts`` (a log line may come after the display)."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    lines = [line for line in re.split(r"[\r\n]+", plain) if counts in line]
    assert len(lines) >= 2, plain[-3000:]
    return lines[-2:]


@pytest.mark.parametrize("columns", [200, 80, 20])
def test_the_live_display_keeps_its_numbers_and_ends_with_a_final_frame(
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
    columns: int,
) -> None:
    items = genomes(3, f"live{columns}")
    manifest = write_manifest(tmp_path / "refs.csv", items, "csv")
    code, screen = run_on_terminal(
        "import", manifest, *import_args(emulator, store, journal_path), columns=columns
    )
    assert code == 0, screen[-3000:]
    # The counts, whatever the width: each bar of the last frame shows 3/3.
    frame = last_frame(screen, "3/3")
    overall = frame[0]
    assert "…" not in "".join(frame), frame  # no number cut short
    if columns >= 80:
        assert re.search(r"\d+:\d\d:\d\d", overall) and "ETA" in overall, frame
    if columns >= 200:
        assert "stores importing" not in overall, frame  # the last frame is the end, not a job
        assert "finished" in overall, frame
    assert imported_names(emulator, store) == sorted(n for n, _ in items)


@pytest.mark.parametrize("rows", [1, 13])
def test_the_plain_line_counts_every_finished_job(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
    rows: int,
) -> None:
    items = genomes(rows, f"jobs{rows}")
    manifest = write_manifest(tmp_path / "refs.csv", items, "csv")
    run = cli("import", manifest, *import_args(emulator, store, journal_path,
                                               "--max-sources-per-job", "1"))  # fmt: skip
    assert run.code == 0, run.stderr
    last = [line for line in run.stderr.splitlines() if "rows done" in line][-1]
    assert f"{rows}/{rows} rows done" in last and f"{rows} jobs finished" in last, run.stderr
    assert starts(emulator) == rows
    assert imported_names(emulator, store) == sorted(n for n, _ in items)


# -- 6. Ctrl-C in the demo ------------------------------------------------------------------------------


def test_ctrl_c_in_the_demo_says_it_was_interrupted(tmp_path: Path) -> None:
    demo = [*REFIMPORT, "demo", "--rows", "60", "--time-scale", "0.05", "--workdir", tmp_path]
    proc = subprocess.Popen(
        list(map(str, demo)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    seen: list[str] = []
    begun = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("refimport:") and "rows in" in line:
                begun.set()  # the import has begun: its rows are journaled

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert begun.wait(120), "".join(seen)[-3000:]
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    code = proc.wait(timeout=120)
    reader.join(timeout=30)
    err = "".join(seen)
    assert code == 130, err[-3000:]
    assert "demo interrupted" in err and "refimport demo" in err, err[-3000:]
    assert "demo finished" not in err and "deliberately broken" not in err, err[-3000:]
    assert "pending" in out or "unfinished" in err  # the rows not imported are said, not lost
