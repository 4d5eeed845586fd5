"""The capacity wait made visible (issue 19): a store waiting out the account's full import quota
says so, and why, in the CLI's progress display and in the worker's ``/metrics``; once the quota
frees up, its rows import and the wait is over.

The emulator's account has one import slot, held by a read-set import (``other_imports``) for a
few seconds: every Start is refused with 402 while the store itself runs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from async_refimport.emulator import EmulatorThread, make_fasta
from tests.helpers.cli import ROLE_ARN, Run, create_store
from tests.helpers.integration import FullQuota
from tests.helpers.worker import WorkerProcess, start_worker, wait_for

from .test_cli import write_manifest

__all__ = ["start_worker"]  # the worker tests' fixture, used here too

QUOTA_SAID = "the account's concurrent import quota is full; read-set imports count too"


def names_in(emulator: EmulatorThread, store: str) -> list[str]:
    return sorted(r["name"] for r in emulator.stats()["references"].get(store, []))


@pytest.mark.slow
def test_the_plain_progress_says_the_store_waits_for_the_quota_then_the_rows_import(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    genomes: Callable[..., list[tuple[str, str]]],
    tmp_path: Path,
) -> None:
    store = create_store(emulator)
    items = genomes(2, "quota-cli")
    manifest = write_manifest(tmp_path / "refs.csv", items, "csv")
    # Full until the command has met it, however long its start takes on a loaded machine.
    with FullQuota(emulator, release_after=1):
        run = cli("import", manifest, "--store-id", store, "--role-arn", ROLE_ARN,
                  "--endpoint-url", emulator.omics_endpoint_url,
                  "--journal", tmp_path / "j.sqlite", timeout=300)  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    # The progress display's own line (not the log's): the store, that it waits, and why.
    said = [line for line in run.stderr.splitlines() if line.startswith("refimport: store ")]
    assert any(f"{store} (us-east-1) waits: {QUOTA_SAID}" in line for line in said), run.stderr
    # Nothing lost: every row imported, once; the last line counts them and no wait.
    last = [line for line in run.stderr.splitlines() if "rows done" in line][-1]
    assert "2/2 rows done (imported 2" in last and "waiting" not in last, run.stderr
    assert names_in(emulator, store) == sorted(n for n, _ in items)


def waiting(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    """``refimport_store_waiting`` as scraped: value by (store id, reason)."""
    status, text, _ = worker.request("GET", "/metrics")
    assert status == 200, text
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "refimport_store_waiting":
            for sample in family.samples:
                out[(sample.labels["store_id"], sample.labels["reason"])] = sample.value
    return out


@pytest.mark.slow
def test_the_workers_metrics_show_the_wait_and_its_end(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
) -> None:
    store = create_store(emulator, emulator.region)
    worker = start_worker(
        "--http-port", "0", "--journal", str(tmp_path / "j.sqlite"), "--store-id", store
    )
    items = [
        (f"quota-w-{i}", s3_fasta(f"cli/quota-w-{i}.fa", make_fasta(f"chr{i}", 200, seed=i)))
        for i in range(2)
    ]
    body = {"requests": [{"name": n, "source_file": u} for n, u in items]}
    with FullQuota(emulator, release_after=None) as quota:
        status, answer, _ = worker.request("POST", "/v1/imports", body)
        assert status == 202, answer
        # Full until the worker has said it waits: then the slot frees up.
        wait_for(lambda: waiting(worker).get((store, QUOTA_SAID)) == 1.0, 90)
        quota.release()

    def final() -> bool:
        rows = [worker.request("GET", f"/v1/imports/{i}")[1] for i in answer["ids"]]
        return all(r["final"] for r in rows)

    wait_for(final, 150)
    assert waiting(worker) == {(store, QUOTA_SAID): 0.0}  # the wait is over, its reason kept
    assert names_in(emulator, store) == sorted(n for n, _ in items)
    status, metrics, _ = worker.request("GET", "/metrics")
    assert re.search(r'refimport_rows\{[^}]*state="IMPORTED"[^}]*\} 2\.0', metrics), metrics
