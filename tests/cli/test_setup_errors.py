"""Set-up mistakes, as a user makes them: one line naming what to fix, exit code 3, within a
bounded time, and no row failed (nothing of the unusable store is even journaled); fixing the
set-up and running the same command again imports every row once."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import Run, starts

from .test_cli import Genomes, import_args, write_manifest

EXIT_SETUP = 3
# Start-up of the interpreter, the journal and the emulator's first answer, on a loaded machine.
SLACK = 15.0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_setup_failure(run: Run, elapsed: float, bound: float, *words: str) -> None:
    assert run.code == EXIT_SETUP, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr  # one line for the one store
    for word in words:
        assert word in errors[0], errors[0]
    assert "none failed: fix the set-up, then run the same command again" in run.stderr
    assert elapsed < bound, f"took {elapsed:.1f} s"


def journaled(cli: Callable[..., Run], journal: Path) -> dict[str, int]:
    """Rows per state in the journal (none at all: the journal was never created)."""
    if not journal.exists():
        return {}
    status = cli("status", "--journal", journal, "--json")
    assert status.code == 0, status.stderr
    totals: dict[str, int] = {}
    for store in status.json()["stores"]:
        for state, n in store["counts"].items():
            totals[state] = totals.get(state, 0) + n
    return {state: n for state, n in totals.items() if n}


def timed(
    cli: Callable[..., Run], *args: str | Path, env: dict[str, str] | None = None
) -> tuple[Run, float]:
    began = time.monotonic()
    run = cli(*args, env=env)
    return run, time.monotonic() - began


def assert_fixed_run_imports_once(
    cli: Callable[..., Run], emu: EmulatorThread, store: str, manifest: Path, journal: Path
) -> None:
    before = starts(emu)
    run = cli("import", manifest, *import_args(emu, store, journal, "--json"))
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["summary"]["imported"] == doc["summary"]["total"] == 3
    refs = [r["name"] for r in emu.stats()["references"].get(store, [])]
    assert sorted(refs) == sorted(i["name"] for i in doc["items"])  # each once
    assert starts(emu) == before + 1
    assert journaled(cli, journal) == {"IMPORTED": 3}


@pytest.fixture
def manifest(genomes: Genomes, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    return write_manifest(tmp_path / "refs.csv", genomes(3, request.node.name[:24]), "csv")


def test_unreachable_endpoint_gives_up_after_the_setup_timeout(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    manifest: Path,
    journal_path: Path,
) -> None:
    wrong = f"http://127.0.0.1:{closed_port()}"
    args = import_args(emulator, store, journal_path, "--setup-timeout", "3")
    args[args.index("--endpoint-url") + 1] = wrong
    run, elapsed = timed(cli, "import", manifest, *args)
    assert_setup_failure(run, elapsed, 3 + SLACK, "no answer from", wrong, "--endpoint-url")
    assert journaled(cli, journal_path) == {}  # nothing recorded, nothing failed
    assert starts(emulator) == 0
    assert_fixed_run_imports_once(cli, emulator, store, manifest, journal_path)


def test_no_credentials(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    manifest: Path,
    journal_path: Path,
) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    run, elapsed = timed(
        cli, "import", manifest, *import_args(emulator, store, journal_path), env=env
    )
    assert_setup_failure(run, elapsed, SLACK, "no AWS credentials found", "AWS_PROFILE")
    assert journaled(cli, journal_path) == {}  # nothing recorded, nothing failed
    assert_fixed_run_imports_once(cli, emulator, store, manifest, journal_path)


def test_unknown_profile_in_a_run_and_in_a_dry_run(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    manifest: Path,
    journal_path: Path,
) -> None:
    args = import_args(emulator, store, journal_path, "--profile", "doesnotexist")
    run, elapsed = timed(cli, "import", manifest, *args)
    assert_setup_failure(run, elapsed, SLACK, "unknown AWS profile 'doesnotexist'")
    dry, elapsed = timed(cli, "import", manifest, *args, "--dry-run")
    assert dry.code == EXIT_SETUP and "Traceback" not in dry.stderr, dry.stderr
    assert "unknown AWS profile 'doesnotexist'" in dry.stderr
    assert elapsed < SLACK
    planned = cli("import", manifest, *args, "--dry-run", "--json")
    assert planned.code == EXIT_SETUP
    [plan] = planned.json()["stores"]
    assert plan["setup_error"]["kind"] == "credentials" and plan["rows"] == 3
    assert journaled(cli, journal_path) == {}  # nothing recorded, nothing failed
    assert_fixed_run_imports_once(cli, emulator, store, manifest, journal_path)


def test_access_denied_on_the_first_call(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    manifest: Path,
    journal_path: Path,
) -> None:
    # The emulator's IAM user without omics permissions.
    env = {"AWS_ACCESS_KEY_ID": "AKIADENIED0000000000"}
    run, elapsed = timed(
        cli, "import", manifest, *import_args(emulator, store, journal_path), env=env
    )
    assert_setup_failure(
        run, elapsed, SLACK, "access denied", "omics:StartReferenceImportJob", "iam:PassRole"
    )
    assert journaled(cli, journal_path) == {}  # nothing recorded, nothing failed
    assert_fixed_run_imports_once(cli, emulator, store, manifest, journal_path)


def test_no_such_store(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    manifest: Path,
    journal_path: Path,
) -> None:
    wrong = "9" * 10 if store != "9" * 10 else "8" * 10
    run, elapsed = timed(cli, "import", manifest, *import_args(emulator, wrong, journal_path))
    assert_setup_failure(run, elapsed, SLACK, "no such reference store", "list-reference-stores")
    assert starts(emulator) == 0
    # Fixed: the right store. Nothing was left behind for the wrong one.
    assert_fixed_run_imports_once(cli, emulator, store, manifest, journal_path)
