"""Stopping, restarting and sharing: SIGTERM mid-import, restart, two workers on one journal."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread, Faults
from tests.helpers.integration import (
    REGIONS,
    create_store,
    genomes,
    overlapping_jobs,
    references_by_store,
)
from tests.helpers.worker import WorkerProcess, drop, wait_for


def assert_each_reference_once(emulator: EmulatorThread, expected: dict[str, set[str]]) -> None:
    stats = emulator.stats()
    assert stats["name_conflicts"] == 0
    assert stats["rejected_concurrent_starts"] == 0
    assert overlapping_jobs(stats) == []
    refs = references_by_store(stats)
    for store, names in expected.items():
        counts = Counter(refs.get(store, []))
        assert {n for n, c in counts.items() if c > 1} == set(), f"duplicates in {store}"
        assert set(counts) == names


@pytest.mark.slow
def test_sigterm_mid_import_exits_in_time_and_restart_finishes_once(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    # Jobs of about a second: SIGTERM lands while one runs at "AWS".
    emulator.configure(time_scale=0.03)
    spool, journal = tmp_path / "spool", tmp_path / "j.sqlite"
    args = ("--spool", str(spool), "--journal", str(journal), "--store-id", store_id)
    args += ("--http-port", "0", "--max-sources-per-job", "5", "--grace", "10")
    items = genomes(s3_fasta, 30, "term")
    lines = ["name,source_file"] + [f"{n},{u}" for n, u in items]

    first = start_worker(*args)
    drop(spool, "batch.csv", "\n".join(lines) + "\n")

    def mid_job() -> bool:
        [store] = first.request("GET", "/v1/stores")[1]["stores"] or [None]
        return bool(store and store["active_job"] and store["rows"]["IMPORTED"] >= 5)

    wait_for(mid_job, 60, interval=0.05)
    began = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0
    assert time.monotonic() - began < 10
    assert (spool / "processing" / "batch.csv").exists()
    assert not (spool / "done" / "batch.csv").exists()
    events = [e.get("event") for e in first.logs()]
    assert "worker.stopping" in events and "worker.hard_exit" not in events

    second = start_worker(*args)
    wait_for(lambda: (spool / "done" / "batch.csv").exists(), 90)
    report = json.loads((spool / "done" / "batch.csv.report.json").read_text())
    assert report["summary"] == {"total": 30, "imported": 30, "already_present": 0, "failed": 0}
    assert_each_reference_once(emulator, {store_id: {n for n, _ in items}})
    # The job left running at "AWS" was adopted by the restart, not sent again.
    assert any(e.get("event") == "import_job.recovering" for e in second.logs())
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0


@pytest.mark.slow
def test_two_workers_on_one_journal_never_drive_one_store_at_once(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
) -> None:
    emulator.configure(time_scale=0.01)
    journal = tmp_path / "shared.sqlite"
    stores = {create_store(emulator, region): region for region in REGIONS[:2]}
    spools = [tmp_path / "spool-a", tmp_path / "spool-b"]
    workers = [
        start_worker(
            "--spool",
            str(spool),
            "--journal",
            str(journal),
            "--max-sources-per-job",
            "4",
            "--lease-ttl",
            "2",
            name=spool.name,
        )
        for spool in spools
    ]
    expected: dict[str, set[str]] = {}
    for store, region in stores.items():
        for spool in spools:
            items = genomes(s3_fasta, 12, f"{spool.name}-{region}")
            expected.setdefault(store, set()).update(n for n, _ in items)
            rows = [
                json.dumps({"store_id": store, "region": region, "name": n, "source_file": u})
                for n, u in items
            ]
            drop(spool, f"{region}.jsonl", "\n".join(rows) + "\n")

    for spool in spools:
        for region in stores.values():
            wait_for(lambda s=spool, r=region: (s / "done" / f"{r}.jsonl").exists(), 120)
    assert_each_reference_once(emulator, expected)
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [w.wait(15) for w in workers] == [0, 0]


@pytest.mark.slow
def test_a_store_is_taken_over_when_its_worker_dies(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    emulator.configure(time_scale=0.02)
    journal = tmp_path / "shared.sqlite"
    common = ("--journal", str(journal), "--store-id", store_id, "--max-sources-per-job", "4")
    common += ("--lease-ttl", "1.5")
    holder = start_worker("--spool", str(tmp_path / "a"), "--http-port", "0", *common)
    items = genomes(s3_fasta, 16, "takeover")
    drop(tmp_path / "a", "rows.csv", "name,source_file\n" + "\n".join(f"{n},{u}" for n, u in items))

    def started() -> bool:
        [store] = holder.request("GET", "/v1/stores")[1]["stores"] or [None]
        return bool(store and store["active_job"])

    wait_for(started, 60, interval=0.05)
    other = start_worker("--spool", str(tmp_path / "b"), *common)
    holder.proc.kill()  # no goodbye: its lease must expire
    holder.wait(10)

    imported: set[str] = set()

    def all_imported() -> bool:
        refs = references_by_store(emulator.stats()).get(store_id, [])
        imported.update(refs)
        return len(refs) == len(items)

    wait_for(all_imported, 90)
    assert_each_reference_once(emulator, {store_id: {n for n, _ in items}})
    other.signal(signal.SIGTERM)
    assert other.wait(15) == 0


@pytest.mark.slow
def test_sigterm_while_a_start_call_hangs_still_exits_within_the_grace_period(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    # The Start call takes 4 s to answer: longer than the grace period the worker is given.
    emulator.configure(
        faults=Faults(tps=None, latency=4.0, operations=frozenset({"StartReferenceImportJob"}))
    )
    spool, journal = tmp_path / "spool", tmp_path / "j.sqlite"
    args = ("--spool", str(spool), "--journal", str(journal), "--store-id", store_id)
    args += ("--grace", "2")
    items = genomes(s3_fasta, 6, "hang")
    first = start_worker(*args)
    drop(spool, "hang.csv", "name,source_file\n" + "\n".join(f"{n},{u}" for n, u in items))
    wait_for(lambda: emulator.stats()["calls"]["StartReferenceImportJob"] >= 1, 30, 0.02)
    began = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(10) == 0
    assert time.monotonic() - began < 2.5

    # The restart cannot know whether the Start took effect: it must find out, not send twice.
    emulator.configure(faults=Faults.none())
    second = start_worker(*args)
    # The lane looks for the ambiguous job until the write-ahead time plus its lookup margin
    # (60 s by default) before it may send again: give it that and more.
    wait_for(lambda: (spool / "done" / "hang.csv").exists(), 150)
    assert_each_reference_once(emulator, {store_id: {n for n, _ in items}})
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0
