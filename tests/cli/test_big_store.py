"""``refimport import`` into a store of 100,000 references, as a user runs it (issue 25): exit
0, no set-up error, the name the store holds ALREADY_PRESENT, and a handful of ListReferences
calls instead of a 1,000-page listing (which at 5 TPS took past the 20 s set-up bound: exit 3)."""

from __future__ import annotations

from pathlib import Path

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import Run, run_cli, starts

from .test_cli import Genomes, import_args, write_manifest


def test_a_few_rows_into_a_store_of_100000_references(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path, journal_path: Path
) -> None:
    items = genomes(10, "big-cli")
    names = [f"someone-{i:06d}" for i in range(99_999)]
    emulator.add_references(store, [*names[:50_000], items[0][0], *names[50_000:]])
    manifest = write_manifest(tmp_path / "m.csv", items, "csv")
    run: Run = run_cli(
        "import", manifest, *import_args(emulator, store, journal_path, "--json"), timeout=300
    )
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr and "no answer from" not in run.stderr
    assert run.json()["summary"] == {
        "total": 10,
        "imported": 9,
        "already_present": 1,
        "failed": 0,
    }
    present = [i for i in run.json()["items"] if i["status"] == "ALREADY_PRESENT"]
    assert [i["name"] for i in present] == [items[0][0]]
    assert starts(emulator) == 1
    assert emulator.stats()["calls"]["ListReferences"] <= 1 + 10 + 2


def test_a_dry_run_against_a_store_of_100000_references(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    items = genomes(4, "big-dry")
    emulator.add_references(store, [f"x-{i:06d}" for i in range(60_000)])
    emulator.add_references(store, [items[2][0], *(f"y-{i:06d}" for i in range(39_999))])
    manifest = write_manifest(tmp_path / "m.csv", items, "csv")
    journal = tmp_path / "dry.sqlite"
    run = run_cli(
        "import", manifest, "--dry-run", "--json", *import_args(emulator, store, journal),
        timeout=300,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    [plan] = run.json()["stores"]
    assert plan["already_present"] == [items[2][0]]
    assert plan["to_import"] == 3
    assert starts(emulator) == 0
    # The first page, up to 4 more, then the names not seen: not the store's 1,000 pages.
    assert emulator.stats()["calls"]["ListReferences"] <= 1 + 4 + 4
