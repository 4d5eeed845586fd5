"""The HTTP intake of a worker subprocess: submit, query, stores, probes, metrics, auth."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import genomes
from tests.helpers.worker import CLI_WORKER, WorkerProcess, wait_for

TOKEN = "s3cr3t-test-token"


def test_http_intake_submit_query_and_metrics(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    worker = start_worker(
        "--http-port",
        "0",
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--store-id",
        store_id,
        token=TOKEN,
    )
    assert worker.http.startswith("http://127.0.0.1:")

    # Probes answer without a token; everything else needs it.
    assert worker.request("GET", "/healthz", token=False)[0] == 200
    assert worker.request("GET", "/readyz", token=False)[0] == 200
    status, _, headers = worker.request("GET", "/v1/stores", token=False)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert worker.request("GET", "/metrics", token="wrong")[0] == 401

    items = genomes(s3_fasta, 6, "http")
    body = {"requests": [{"name": n, "source_file": u, "tags": {"via": "http"}} for n, u in items]}
    assert worker.request("POST", "/v1/imports", body, token=False)[0] == 401

    # Every problem of a bad submission is reported at once, and nothing is queued.
    bad = {
        "requests": [
            {"name": "ok-row", "source_file": items[0][1]},
            {"name": "x", "source_file": "http://not-s3/a.fa"},
            {"source_file": items[1][1], "colour": "blue"},
            "not an object",
        ]
    }
    status, answer, _ = worker.request("POST", "/v1/imports", bad)
    assert status == 400
    problems = {(e["index"], e["field"]) for e in answer["errors"]}
    assert {
        (2, "name"),
        (2, "source_file"),
        (3, "colour"),
        (3, "name"),
        (4, "json"),
    } <= problems
    assert worker.request("POST", "/v1/imports", {"requests": []})[0] == 400

    status, answer, _ = worker.request("POST", "/v1/imports", body)
    assert status == 202, answer
    ids = answer["ids"]
    assert len(ids) == 6

    def final() -> list[dict] | None:
        rows = [worker.request("GET", f"/v1/imports/{i}")[1] for i in ids]
        return rows if all(r["final"] for r in rows) else None

    rows = wait_for(final, 60)
    refs = {r["name"]: r["id"] for r in emulator.stats()["references"][store_id]}
    for row in rows:
        assert row["status"] == "IMPORTED" and row["reference_id"] == refs[row["name"]]
    status, listed, _ = worker.request("GET", "/v1/imports?ids=" + ",".join(map(str, ids)))
    assert status == 200 and [r["row_id"] for r in listed["items"]] == ids
    assert worker.request("GET", "/v1/imports/999999")[0] == 404

    # Submitting the same names again is idempotent: same ids, nothing sent.
    status, again, _ = worker.request("POST", "/v1/imports", body)
    assert status == 202 and again["ids"] == ids

    status, stores, _ = worker.request("GET", "/v1/stores")
    assert status == 200
    [store] = stores["stores"]
    assert store["store_id"] == store_id
    assert store["queue_depth"] == 0 and store["rows"]["IMPORTED"] == 6
    assert store["active_job"] is None

    status, text, headers = worker.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "refimport_rows",
        "refimport_queue_depth",
        "refimport_jobs_started",
        "refimport_jobs_finished",
        "refimport_job_duration_seconds",
        "refimport_api_calls",
        "refimport_api_throttles",
        "refimport_api_retries",
    ):
        assert name in families, name

    def value(family: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[family].samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert value("refimport_rows", "refimport_rows", state="IMPORTED") == 6
    assert value("refimport_jobs_started", "refimport_jobs_started_total") >= 1
    assert (
        value("refimport_jobs_finished", "refimport_jobs_finished_total", status="COMPLETED") >= 1
    )
    assert value("refimport_job_duration_seconds", "refimport_job_duration_seconds_count") >= 1
    assert (
        value(
            "refimport_api_calls", "refimport_api_calls_total", operation="StartReferenceImportJob"
        )
        >= 1
    )

    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 0


def test_a_port_in_use_fails_with_one_log_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*CLI_WORKER, "--http-port", str(port), "--journal", str(tmp_path / "j.sqlite")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    last = json.loads(done.stderr.strip().splitlines()[-1])
    assert last["event"] == "worker.failed" and "address already in use" in last["error"]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_finished_rows_are_compacted_after_the_retention(
    start_worker: Callable[..., WorkerProcess],
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    # Retention of about a second, compaction twice a second.
    worker = start_worker(
        "--http-port", "0", "--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id,
        "--retention", str(1 / 86_400), "--compact-interval", "0.5",
    )  # fmt: skip
    items = genomes(s3_fasta, 3, "compact")
    body = {"requests": [{"name": n, "source_file": u} for n, u in items]}
    status, answer, _ = worker.request("POST", "/v1/imports", body)
    assert status == 202
    ids = answer["ids"]
    wait_for(
        lambda: all(worker.request("GET", f"/v1/imports/{i}")[1].get("final", True) for i in ids),
        60,
    )
    wait_for(lambda: worker.request("GET", f"/v1/imports/{ids[0]}")[0] == 404, 30)
    assert worker.request("GET", "/v1/stores")[1]["stores"] == []
    assert any(e.get("event") == "journal.compacted" for e in worker.logs())
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
