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
