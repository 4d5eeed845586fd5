"""A worker whose set-up is wrong keeps running and retrying, says so in its log and on
``/readyz``, loses nothing, and imports every row once when restarted with the set-up fixed."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import genomes
from tests.helpers.worker import WorkerProcess, wait_for


def test_worker_with_denied_credentials_is_not_ready_and_keeps_the_rows(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = str(tmp_path / "j.sqlite")
    args = ("--http-port", "0", "--journal", journal, "--store-id", store_id)
    good_key = os.environ["AWS_ACCESS_KEY_ID"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADENIED0000000000")  # allowed nothing
    worker = start_worker(*args)
    assert worker.request("GET", "/readyz")[0] == 200

    items = genomes(s3_fasta, 3, "setup-worker")
    body = {"requests": [{"name": n, "source_file": u} for n, u in items]}
    status, answer, _ = worker.request("POST", "/v1/imports", body)
    assert status == 202, answer
    ids = answer["ids"]

    wait_for(lambda: worker.request("GET", "/readyz")[0] == 503, 30)
    failures = wait_for(
        lambda: [e for e in worker.logs() if e.get("event") == "store.setup_failed"], 30
    )
    assert failures[0]["kind"] == "access" and "iam:PassRole" in failures[0]["fix"]
    # It keeps trying (--busy-wait apart), and fails no row meanwhile.
    wait_for(
        lambda: len([e for e in worker.logs() if e.get("event") == "store.setup_failed"]) >= 3,
        30,
    )
    assert worker.alive()
    metrics = worker.request("GET", "/metrics")[1]
    assert (
        f'refimport_store_setup_error{{kind="access",region="us-east-1",store_id="{store_id}"}} 1.0'
        in metrics
    )
    rows = [worker.request("GET", f"/v1/imports/{i}")[1] for i in ids]
    assert {r["state"] for r in rows} == {"QUEUED"}
    assert emulator.stats()["calls"].get("StartReferenceImportJob", 0) == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    # Fixed: the same worker, the right credentials, the same journal.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", good_key)
    worker = start_worker(*args)

    def final() -> list[dict] | None:
        rows = [worker.request("GET", f"/v1/imports/{i}")[1] for i in ids]
        return rows if all(r["final"] for r in rows) else None

    rows = wait_for(final, 60)
    assert {r["status"] for r in rows} == {"IMPORTED"}
    refs = [r["name"] for r in emulator.stats()["references"][store_id]]
    assert sorted(refs) == sorted(n for n, _ in items)
    assert worker.request("GET", "/readyz")[0] == 200
