"""``refimport worker`` with the SQS intake, as a process: start-up errors, readiness, metrics, and
answers for the whole fleet from any worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from prometheus_client.parser import text_string_to_metric_families

from async_refimport.emulator import EmulatorThread
from async_refimport.journal.dynamo import create_table
from tests.helpers.common import ROLE_ARN
from tests.helpers.fleet import Queues, eventually
from tests.helpers.fleet_harness import ROOT, read_announcement
from tests.helpers.integration import genomes

CLI = [sys.executable, "-m", "async_refimport", "worker"]


class Worker:
    """One ``refimport worker`` process and its HTTP API."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.announced: dict[str, Any] = {}

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.announced["http"] + path, timeout=20) as resp:
                status, raw = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read().decode()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.announced["http"] + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())

    def metric(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        _, text = self.get("/metrics")
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        }

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@pytest.fixture
def start(
    tmp_path: Path, emulator: EmulatorThread, queues: Queues
) -> Iterator[Callable[..., Worker]]:
    """``start(*flags, name=..., wait=True)``: a worker in a directory of its own."""
    started: list[Worker] = []

    def run(*flags: str, name: str = "w", wait: bool = True) -> Worker:
        home = tmp_path / f"{name}-{len(started)}"
        home.mkdir()
        log = home / "worker.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                [
                    *CLI,
                    "--endpoint-url",
                    emulator.omics_endpoint_url,
                    "--region",
                    emulator.region,
                    "--role-arn",
                    ROLE_ARN,
                    "--rescan-interval",
                    "0.5",
                    "--busy-wait",
                    "0.2",
                    "--api-rate",
                    "50",
                    "--sqs-wait",
                    "1",
                    "--outbox-interval",
                    "1",
                    *flags,
                ],
                stdout=subprocess.PIPE,
                stderr=fh,
                text=True,
                env=env,
                cwd=home,
            )
        worker = Worker(proc, log)
        started.append(worker)
        if wait:
            worker.announced = read_announcement(proc, 60, log)
        return worker

    yield run
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)
        if worker.proc.stdout is not None:
            worker.proc.stdout.close()


def test_a_queue_that_does_not_exist_at_start_up_is_one_line_and_exit_1(
    start: Callable[..., Worker], queues: Queues, tmp_path: Path
) -> None:
    gone = queues.requests + "-gone"
    worker = start(
        "--sqs-queue-url",
        gone,
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--store-id",
        "1234567890",
        wait=False,
    )
    assert worker.proc.wait(60) == 1
    errors = [e for e in worker.events() if e.get("level") == "error"]
    assert len(errors) == 1, errors
    assert gone in errors[0]["error"] and "does not exist" in errors[0]["error"]
    assert "Traceback" not in worker.log.read_text()


async def test_readiness_follows_the_queue_and_metrics_name_the_stores_held(
    start: Callable[..., Worker],
    queues: Queues,
    s3_fasta: Callable[..., str],
    store: str,
    tmp_path: Path,
) -> None:
    worker = start(
        "--sqs-queue-url",
        queues.requests,
        "--results-queue-url",
        queues.results,
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--store-id",
        store,
        "--http-port",
        "0",
    )
    assert worker.announced["sqs"] == queues.requests
    assert worker.get("/readyz")[0] == 200
    items = genomes(s3_fasta, 3, "ready")
    message_id = queues.send({"requests": [{"name": n, "source_file": u} for n, u in items]})
    [doc] = await eventually(queues.documents)
    assert doc["message_id"] == message_id and doc["summary"]["imported"] == 3

    held = worker.metric("refimport_store_lease_held")
    assert held == {(("region", "us-east-1"), ("store_id", store)): 1.0}
    messages = worker.metric("refimport_sqs_messages_total")
    assert messages[(("outcome", "journaled"),)] == 1.0
    assert worker.metric("refimport_result_documents_total")[(("outcome", "sent"),)] == 1.0

    # The queue goes away: not ready (a load balancer stops sending), alive, one error logged.
    sqs = boto3.client("sqs", endpoint_url=queues.endpoint, region_name="us-east-1")
    name = queues.requests.rsplit("/", 1)[1]
    sqs.delete_queue(QueueUrl=queues.requests)
    await eventually(lambda: worker.get("/readyz")[0] == 503, within=30)
    assert worker.get("/healthz")[0] == 200
    sqs.create_queue(QueueName=name)
    await eventually(lambda: worker.get("/readyz")[0] == 200, within=30)
    failures = [e for e in worker.events() if e.get("event") == "sqs.receive_failed"]
    assert [e["level"] for e in failures].count("error") == 1
    worker.proc.terminate()
    assert worker.proc.wait(30) == 0


async def test_any_worker_answers_for_the_fleet(
    start: Callable[..., Worker],
    queues: Queues,
    s3_fasta: Callable[..., str],
    store: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    table = f"fleet-{uuid.uuid4().hex[:10]}"
    assert await create_table(table, region="us-east-1")
    journal = ("--journal", f"dynamodb://{table}", "--store-id", store, "--http-port", "0")
    # One worker takes the work; the other only answers questions.
    taker = start(*journal, "--sqs-queue-url", queues.requests, name="taker")
    other = start(*journal, name="other")
    items = genomes(s3_fasta, 4, "fleet-answers")
    status, answer = taker.post(
        "/v1/imports", {"requests": [{"name": n, "source_file": u} for n, u in items]}
    )
    assert status == 202
    ids = answer["ids"]

    def imported_everywhere() -> bool:
        status, body = other.get(f"/v1/imports?ids={','.join(map(str, ids))}")
        return status == 200 and all(i["state"] == "IMPORTED" for i in body["items"])

    await eventually(imported_everywhere)
    status, row = other.get(f"/v1/imports/{ids[0]}")
    assert status == 200 and row["name"] == items[0][0] and row["reference_id"]
    [view] = [s for s in other.get("/v1/stores")[1]["stores"] if s["store_id"] == store]
    assert view["rows"]["IMPORTED"] == 4
    assert view["lease_holder"] is not None
    # The store is held by the taker: the other worker says so, and holds nothing itself.
    assert view["held_here"] is False
    assert (
        other.metric("refimport_store_lease_held").get(
            (("region", "us-east-1"), ("store_id", store)), 0.0
        )
        == 0.0
    )
    # And `refimport status`, from any host, reads the same table.
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "async_refimport.cli.main",
            "status",
            "--journal",
            f"dynamodb://{table}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=dict(os.environ),
    )
    [counted] = [s for s in json.loads(report.stdout)["stores"] if s["store_id"] == store]
    assert counted["counts"]["IMPORTED"] == 4


async def test_readiness_fails_while_the_journal_cannot_be_reached(
    start: Callable[..., Worker],
    queues: Queues,
    store: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    table = f"gone-{uuid.uuid4().hex[:10]}"
    assert await create_table(table, region="us-east-1")
    worker = start(
        "--journal",
        f"dynamodb://{table}",
        "--store-id",
        store,
        "--http-port",
        "0",
        "--sqs-queue-url",
        queues.requests,
        "--results-queue-url",
        queues.results,
    )
    assert worker.get("/readyz")[0] == 200
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    dynamodb.delete_table(TableName=table)
    # The worker's next look at the journal fails: a load balancer stops sending it work.
    await eventually(lambda: worker.get("/readyz")[0] == 503, within=30)
    assert worker.get("/healthz")[0] == 200
    assert worker.proc.poll() is None
    assert await create_table(table, region="us-east-1")
    await eventually(lambda: worker.get("/readyz")[0] == 200, within=30)
    worker.proc.terminate()
    assert worker.proc.wait(30) == 0
