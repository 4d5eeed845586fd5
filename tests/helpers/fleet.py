"""Helpers of the fleet tests (their fixtures are in tests/fleet/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import boto3

from async_refimport import Importer, ImporterSettings, Journal, PacingPolicy
from async_refimport.aws.sqs import SqsClient
from async_refimport.emulator import EmulatorThread
from async_refimport.manifest.reader import ManifestDefaults
from async_refimport.worker.intakes.sqs.intake import SqsIntake
from async_refimport.worker.intakes.sqs.options import SqsIntakeSettings
from async_refimport.worker.intakes.sqs.outbox import ResultSender
from tests.helpers.common import ROLE_ARN

MANIFEST_BUCKET = "refimport-manifests"


@dataclass
class Queues:
    """The moto server and the queues of one test."""

    endpoint: str
    requests: str
    results: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def client(self, service: str = "sqs") -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")

    def send(self, body: Any) -> str:
        """Send one request message (a dict is sent as JSON); returns its MessageId."""
        text = body if isinstance(body, str) else json.dumps(body)
        return str(
            self.client().send_message(QueueUrl=self.requests, MessageBody=text)["MessageId"]
        )

    def put_manifest(self, key: str, text: str) -> str:
        s3 = self.client("s3")
        try:
            s3.create_bucket(Bucket=MANIFEST_BUCKET)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        s3.put_object(Bucket=MANIFEST_BUCKET, Key=key, Body=text.encode())
        return f"s3://{MANIFEST_BUCKET}/{key}"

    def pending(self, url: str | None = None) -> int:
        """Messages on a queue, visible or in flight."""
        attrs = self.client().get_queue_attributes(
            QueueUrl=url or self.requests,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )

    def documents(self, wait: float = 1) -> list[dict[str, Any]]:
        """Receive (and delete) every result document available now."""
        sqs = self.client()
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.results, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait)
            ).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.results, ReceiptHandle=m["ReceiptHandle"])
            wait = 0

    def collect(self, n: int) -> list[dict[str, Any]] | None:
        """Every document received so far, once there are at least ``n`` (else None)."""
        self.received.extend(self.documents(wait=0))
        return list(self.received) if len(self.received) >= n else None


def fast_settings() -> ImporterSettings:
    return ImporterSettings(
        max_sources_per_job=10,
        busy_wait=0.2,
        rescan_interval=0.5,
        lease_ttl=3.0,
        pacing=PacingPolicy(rate=50),
    )


@dataclass
class Running:
    importer: Importer
    intake: SqsIntake
    sender: ResultSender


@asynccontextmanager
async def running(
    journal: Path | Journal,
    emulator: EmulatorThread,
    queues: Queues,
    store_id: str,
    *,
    results: bool = True,
    intake_settings: SqsIntakeSettings | None = None,
    queue_url: str | None = None,
) -> AsyncIterator[Running]:
    """An Importer with an SQS intake and a result sender, as one worker of a fleet runs them."""
    defaults = ManifestDefaults(
        store_id=store_id, role_arn=ROLE_ARN, endpoint_url=emulator.omics_endpoint_url
    )
    settings = intake_settings or SqsIntakeSettings(
        wait_time=1, visibility_timeout=10, retry_delay=1, error_backoff=0.2
    )
    async with (
        Importer(journal, region=emulator.region, settings=fast_settings()) as imp,
        SqsClient(region="us-east-1") as sqs,
        anyio.create_task_group() as tg,
    ):
        sender = ResultSender(imp, sqs, interval=0.5, min_gap=0.2, retry_backoff=0.2)
        intake = SqsIntake(
            imp,
            sqs,
            queue_url or queues.requests,
            defaults,
            results_queue_url=queues.results if results else None,
            settings=settings,
            on_journaled=sender.wake,
        )
        await tg.start(sender.run)
        await tg.start(intake.run)
        yield Running(imp, intake, sender)
        imp.stop()
        tg.cancel_scope.cancel()


async def eventually(
    predicate: Callable[[], Any], within: float = 30, interval: float = 0.1
) -> Any:
    """Wait (on the event loop) until ``predicate()`` is truthy; blocking predicates run in a thread."""
    with anyio.fail_after(within):
        while True:
            value = await anyio.to_thread.run_sync(predicate)
            if value:
                return value
            await anyio.sleep(interval)
