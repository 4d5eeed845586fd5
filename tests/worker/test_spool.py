"""The spool intake, end to end: a worker subprocess against the emulator."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import genomes, references_by_store
from tests.helpers.worker import CLI_WORKER, WorkerProcess, csv_manifest, drop, wait_for


def report(spool: Path, where: str, name: str) -> dict:
    return json.loads((spool / where / f"{name}.report.json").read_text())


@pytest.mark.slow
def test_spool_files_end_in_done_or_failed_with_reports(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    worker = start_worker(
        "--spool",
        str(spool),
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--store-id",
        store_id,
        cli=True,
    )
    good = genomes(s3_fasta, 8, "spool-good")
    mixed = genomes(s3_fasta, 3, "spool-mixed")
    broken = s3_fasta("spool/broken.fa", "not a genome at all\n", bucket="genomes")

    # A half-written file (temp name) is never picked up.
    (spool / "incoming" / ".half.csv.tmp").write_text("name,source_file\nx")
    drop(spool, "good.csv", csv_manifest(good))
    jsonl = [json.dumps({"name": n, "sourceFile": u, "tags": {"k": "v"}}) for n, u in mixed]
    jsonl.append(json.dumps({"name": "spool-broken", "source_file": broken}))
    drop(spool, "mixed.jsonl", "\n".join(jsonl) + "\n")
    drop(
        spool,
        "invalid.csv",
        "name,source_file\nok-name,s3://genomes/a.fa\nx,s3://genomes/b.fa\nthird,http://nope/c.fa\n",
    )

    wait_for(lambda: (spool / "done" / "good.csv").exists(), 60)
    wait_for(lambda: (spool / "failed" / "mixed.jsonl").exists(), 60)
    wait_for(lambda: (spool / "failed" / "invalid.csv").exists(), 60)

    done = report(spool, "done", "good.csv")
    assert done["summary"] == {"total": 8, "imported": 8, "already_present": 0, "failed": 0}
    refs = {r["name"]: r["id"] for r in emulator.stats()["references"][store_id]}
    for item in done["items"]:
        assert item["status"] == "IMPORTED"
        assert item["reference_id"] == refs[item["name"]]
        assert item["job_id"] and item["store_id"] == store_id

    failed = report(spool, "failed", "mixed.jsonl")
    assert failed["summary"] == {"total": 4, "imported": 3, "already_present": 0, "failed": 1}
    [bad] = [i for i in failed["items"] if i["status"] == "FAILED"]
    assert bad["name"] == "spool-broken" and bad["message"]

    invalid = report(spool, "failed", "invalid.csv")
    assert invalid["summary"]["total"] == 0
    fields = {(e["line"], e["field"]) for e in invalid["errors"]}
    assert (3, "name") in fields  # "x" is too short
    assert (4, "source_file") in fields

    # Nothing left behind, the temp file untouched, and the worker still takes work.
    assert sorted(p.name for p in (spool / "processing").iterdir()) == []
    assert (spool / "incoming" / ".half.csv.tmp").exists()
    assert worker.alive()
    again = genomes(s3_fasta, 2, "spool-again")
    drop(spool, "again.csv", csv_manifest(again + good[:1]))
    wait_for(lambda: (spool / "done" / "again.csv").exists(), 60)
    assert report(spool, "done", "again.csv")["summary"]["total"] == 3

    # The same file name again: filed beside the first, its rows not sent again.
    starts = emulator.stats()["calls"]["StartReferenceImportJob"]
    drop(spool, "good.csv", csv_manifest(good))
    wait_for(lambda: (spool / "done" / "good.1.csv").exists(), 60)
    assert report(spool, "done", "good.1.csv")["summary"]["imported"] == 8
    assert report(spool, "done", "good.csv")["summary"]["imported"] == 8
    assert emulator.stats()["calls"]["StartReferenceImportJob"] == starts

    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    names = references_by_store(emulator.stats())[store_id]
    assert sorted(names) == sorted({n for n, _ in good + mixed + again})
    assert any(e.get("event") == "worker.ready" for e in worker.logs())


def test_worker_needs_an_intake() -> None:
    done = subprocess.run(
        [*CLI_WORKER, "--role-arn", "arn:aws:iam::1:role/x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--spool" in done.stderr
