"""A fleet of ``refimport worker`` processes fed through SQS, for the fleet test and its benchmark.

Each worker runs in a directory of its own; they share nothing but the journal (a
``dynamodb://TABLE`` URL, or one SQLite file standing in for it), the SQS queues, and the
HealthOmics emulator. No pytest here: ``benchmarks/fleet.py`` drives the same harness.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "async_refimport"]


@dataclass(frozen=True)
class FleetSettings:
    """What every worker of the fleet is started with.

    Attributes:
        journal: ``dynamodb://TABLE`` or the path of a shared SQLite file.
        queue_url: The request queue.
        results_url: The results queue.
        omics_endpoint: The emulator's HealthOmics endpoint.
        region: The Region of the stores, queues and table.
        aws_endpoint: moto's server (SQS, S3 and DynamoDB endpoints of every worker).
        role_arn: Role for rows that name none.
        lease_ttl: Seconds a store lease lasts unrenewed.
        max_sources_per_job: Rows per import job.
        rescan_interval: Seconds between looks at the journal for work queued by other workers.
        extra: More worker flags.
    """

    journal: str
    queue_url: str
    results_url: str
    omics_endpoint: str
    region: str
    aws_endpoint: str
    role_arn: str
    lease_ttl: float = 2.0
    max_sources_per_job: int = 10
    rescan_interval: float = 2.0
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        return [
            "worker",
            "--journal",
            self.journal,
            "--sqs-queue-url",
            self.queue_url,
            "--results-queue-url",
            self.results_url,
            "--endpoint-url",
            self.omics_endpoint,
            "--region",
            self.region,
            "--role-arn",
            self.role_arn,
            "--lease-ttl",
            str(self.lease_ttl),
            "--max-sources-per-job",
            str(self.max_sources_per_job),
            "--http-port",
            "0",
            "--rescan-interval",
            str(self.rescan_interval),
            "--busy-wait",
            "0.2",
            "--api-rate",
            "50",
            "--sqs-wait",
            "1",
            "--sqs-visibility-timeout",
            "5",
            "--outbox-interval",
            "2",
            *self.extra,
        ]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
            AWS_ENDPOINT_URL_SQS=self.aws_endpoint,
            AWS_ENDPOINT_URL_S3=self.aws_endpoint,
            AWS_ENDPOINT_URL_DYNAMODB=self.aws_endpoint,
        )
        env.pop("REFIMPORT_JOURNAL", None)
        env.pop("REFIMPORT_WORKER_TOKEN", None)
        return env


@dataclass
class Incarnation:
    """One process of a worker slot (a slot is restarted after each kill)."""

    proc: subprocess.Popen[str]
    log: Path
    started: float
    announced: dict[str, Any] = field(default_factory=dict)
    killed: float | None = None


@dataclass
class FleetWorker:
    """A worker slot: its directory and every process it has run."""

    name: str
    home: Path
    runs: list[Incarnation] = field(default_factory=list)

    @property
    def current(self) -> Incarnation:
        return self.runs[-1]

    def alive(self) -> bool:
        return bool(self.runs) and self.current.proc.poll() is None


class Fleet:
    """Starts, kills, pauses and restarts workers; every incarnation's log is kept."""

    def __init__(self, root: Path, settings: FleetSettings, size: int = 3) -> None:
        self.root = root
        self.settings = settings
        self.workers = [FleetWorker(f"w{i}", root / f"w{i}") for i in range(size)]
        self.kills: list[tuple[str, float]] = []

    def start(self, worker: FleetWorker, *, wait: bool = True) -> Incarnation:
        worker.home.mkdir(parents=True, exist_ok=True)
        log = worker.home / f"worker.{len(worker.runs)}.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                [*CLI, *self.settings.args(), "--owner", f"{worker.name}.{len(worker.runs)}"],
                stdout=subprocess.PIPE,
                stderr=fh,
                text=True,
                env=self.settings.env(),
                cwd=worker.home,
            )
        run = Incarnation(proc, log, time.time())
        worker.runs.append(run)
        if wait:
            run.announced = read_announcement(proc, 60, log)
        return run

    def start_all(self) -> None:
        for worker in self.workers:
            self.start(worker, wait=False)
        for worker in self.workers:
            run = worker.current
            run.announced = read_announcement(run.proc, 90, run.log)

    def kill(self, worker: FleetWorker) -> float:
        """SIGKILL: no clean-up of any kind. Returns the wall time of the kill."""
        run = worker.current
        run.proc.send_signal(signal.SIGCONT)  # a paused process dies as well
        run.proc.kill()
        run.killed = time.time()
        run.proc.wait(30)
        self.kills.append((worker.name, run.killed))
        return run.killed

    def pause(self, worker: FleetWorker) -> None:
        worker.current.proc.send_signal(signal.SIGSTOP)

    def resume(self, worker: FleetWorker) -> None:
        worker.current.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        for worker in self.workers:
            for run in worker.runs:
                if run.proc.poll() is None:
                    run.proc.send_signal(signal.SIGCONT)
                    run.proc.kill()
                    run.proc.wait(30)
                if run.proc.stdout is not None:
                    run.proc.stdout.close()

    def stop_all(self, timeout: float = 30) -> list[int]:
        """SIGTERM every live worker; returns their exit codes."""
        live = [w.current.proc for w in self.workers if w.alive()]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout) for proc in live]

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line of every incarnation, with ``worker`` and ``run`` added."""
        out: list[dict[str, Any]] = []
        for worker in self.workers:
            for n, run in enumerate(worker.runs):
                for line in run.log.read_text().splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        entry["worker"] = worker.name
                        entry["run"] = n
                        out.append(entry)
        return out

    def tail(self, n: int = 3000) -> str:
        return "\n".join(
            f"--- {w.name}.{i}\n{run.log.read_text()[-n:]}"
            for w in self.workers
            for i, run in enumerate(w.runs)
        )


def read_announcement(proc: subprocess.Popen[str], timeout: float, log: Path) -> dict[str, Any]:
    """The JSON line a worker prints on stdout once it takes work."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = proc.stdout.readline()
                if line:
                    return dict(json.loads(line))
            if proc.poll() is not None:
                break
    finally:
        sel.close()
    raise AssertionError(f"worker did not become ready; log:\n{log.read_text()[-4000:]}")


# -- feeding and collecting ------------------------------------------------------------------------


def dynamodb_usage(endpoint: str) -> dict[str, tuple[int, float]]:
    """Requests and seconds per DynamoDB operation served so far (the serialised moto server)."""
    import urllib.request

    with urllib.request.urlopen(endpoint + "/_fleet/dynamodb", timeout=10) as resp:
        raw = json.loads(resp.read())
    return {op: (int(n), float(t)) for op, (n, t) in raw.items()}


def sqs_client(endpoint: str, region: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name=region)


def create_queues(endpoint: str, region: str, tag: str) -> tuple[str, str]:
    sqs = sqs_client(endpoint, region)
    requests = sqs.create_queue(QueueName=f"fleet-requests-{tag}")["QueueUrl"]
    results = sqs.create_queue(QueueName=f"fleet-results-{tag}")["QueueUrl"]
    return str(requests), str(results)


def send_messages(
    endpoint: str, region: str, queue_url: str, bodies: Sequence[dict[str, Any]]
) -> list[str]:
    """Send request messages (in batches of ten); returns their MessageIds, in order."""
    sqs = sqs_client(endpoint, region)
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        answer = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(chunk)],
        )
        assert not answer.get("Failed"), answer.get("Failed")
        by_entry = {int(e["Id"]): e["MessageId"] for e in answer["Successful"]}
        ids += [by_entry[i] for i in range(len(chunk))]
    return ids


class ResultCollector:
    """Drains the results queue, deduplicating by ``message_id`` as consumers are told to."""

    def __init__(self, endpoint: str, region: str, results_url: str) -> None:
        self._sqs = sqs_client(endpoint, region)
        self._url = results_url
        self.documents: dict[str, dict[str, Any]] = {}
        self.copies: Counter[str] = Counter()
        self.arrived: dict[str, float] = {}

    def poll(self, wait: int = 1) -> int:
        """Receive what is there now; returns the number of distinct documents so far."""
        while True:
            got = self._sqs.receive_message(
                QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            ).get("Messages", [])
            if not got:
                return len(self.documents)
            for m in got:
                doc = json.loads(m["Body"])
                self.copies[doc["message_id"]] += 1
                self.documents.setdefault(doc["message_id"], doc)
                self.arrived.setdefault(doc["message_id"], time.time())
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=m["ReceiptHandle"])
            wait = 0

    def wait_for(self, ids: Sequence[str], timeout: float, on_tick: Callable[[], None]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            on_tick()
            self.poll()
            if all(i in self.documents for i in ids):
                return
        missing = [i for i in ids if i not in self.documents]
        raise AssertionError(f"{len(missing)} of {len(ids)} messages got no result document")


# -- chaos -----------------------------------------------------------------------------------------


@dataclass
class Chaos:
    """Kills a random worker every ``every`` seconds (and restarts it), and pauses one once.

    Call :meth:`tick` often; it acts when its time has come.
    """

    fleet: Fleet
    rng: random.Random
    every: tuple[float, float] = (1.0, 2.5)
    min_kills: int = 10
    pause_for: float = 0.0
    pause_after: int = 3
    kills: int = 0
    paused: FleetWorker | None = None
    pause_done: bool = False
    _next: float = 0.0
    _resume_at: float = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if self.paused is not None and now >= self._resume_at:
            self.fleet.resume(self.paused)
            self.paused = None
            self.pause_done = True
        if self._next == 0.0:
            self._next = now + self.rng.uniform(*self.every)
        if now < self._next:
            return
        self._next = now + self.rng.uniform(*self.every)
        candidates = [w for w in self.fleet.workers if w is not self.paused]
        if (
            self.pause_for > 0
            and not self.pause_done
            and self.paused is None
            and self.kills >= self.pause_after
        ):
            self.paused = self.rng.choice(candidates)
            self.fleet.pause(self.paused)
            self._resume_at = now + self.pause_for
            return
        victim = self.rng.choice(candidates)
        self.fleet.kill(victim)
        self.kills += 1
        self.fleet.start(victim)

    def finish(self) -> None:
        """Resume a paused worker and make sure every slot runs."""
        if self.paused is not None:
            self.fleet.resume(self.paused)
            self.paused = None
            self.pause_done = True
        for worker in self.fleet.workers:
            if not worker.alive():
                self.fleet.start(worker)


# -- checks ----------------------------------------------------------------------------------------


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
