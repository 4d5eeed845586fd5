"""Result documents through the journal's outbox: sent by any worker, at least once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import boto3
import pytest
from prometheus_client import CollectorRegistry

from async_refimport import (
    Importer,
    ImportRequest,
    Journal,
    RowResult,
    RowState,
    SQLiteJournal,
    StoreRef,
)
from async_refimport.aws.sqs import MAX_MESSAGE_BYTES, SqsClient
from async_refimport.emulator import EmulatorThread
from async_refimport.journal.base import Settlement
from async_refimport.journal.dynamo import DynamoJournal, create_table
from async_refimport.worker.intakes.sqs.documents import result_document
from async_refimport.worker.intakes.sqs.outbox import ResultSender
from tests.helpers.common import ROLE_ARN, STORE_ID
from tests.helpers.fleet import Queues, eventually, fast_settings
from tests.helpers.integration import genomes, requests_for
from tests.helpers.logcapture import capture_logs


async def import_rows(
    journal: Path, emulator: EmulatorThread, store: str, items: list[tuple[str, str]]
) -> list[int]:
    """Import rows to the end, as a worker that then dies before sending their document."""
    async with Importer(journal, region=emulator.region, settings=fast_settings()) as imp:
        ids = await imp.submit(requests_for(emulator, store, emulator.region, items))
        results = await imp.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    return ids


async def test_a_document_owed_by_a_dead_worker_is_sent_by_another(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    ids = await import_rows(journal_path, emulator, store, genomes(s3_fasta, 3, "orphan"))
    async with Importer(journal_path, region=emulator.region) as imp:
        await imp.journal.add_outbox("msg-of-a-dead-worker", queues.results, ids)
    # Another worker, which never saw the message, only runs its sender.
    async with (
        Importer(journal_path, region=emulator.region) as imp,
        SqsClient(region="us-east-1") as sqs,
        anyio.create_task_group() as tg,
    ):
        sender = ResultSender(imp, sqs, interval=0.3, min_gap=0.1)
        await tg.start(sender.run)
        [doc] = await eventually(queues.documents)
        assert await imp.journal.due_outbox() == []
        tg.cancel_scope.cancel()
    assert doc["message_id"] == "msg-of-a-dead-worker"
    assert doc["summary"] == {"total": 3, "imported": 3, "already_present": 0, "failed": 0}


async def test_a_missing_results_queue_is_logged_and_the_document_waits_for_it(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    ids = await import_rows(journal_path, emulator, store, genomes(s3_fasta, 2, "noqueue"))
    sqs_admin = boto3.client("sqs", endpoint_url=queues.endpoint, region_name="us-east-1")
    name = queues.results.rsplit("/", 1)[1]
    await anyio.to_thread.run_sync(lambda: sqs_admin.delete_queue(QueueUrl=queues.results))
    with capture_logs() as logs:
        async with (
            Importer(journal_path, region=emulator.region) as imp,
            SqsClient(region="us-east-1") as sqs,
            anyio.create_task_group() as tg,
        ):
            await imp.journal.add_outbox("msg-waiting", queues.results, ids)
            sender = ResultSender(imp, sqs, interval=0.2, min_gap=0.1, retry_backoff=0.2)
            await tg.start(sender.run)
            await eventually(lambda: any(e["event"] == "outbox.send_failed" for e in logs))
            assert len(await imp.journal.due_outbox()) == 1, "still owed, not dropped"
            await anyio.to_thread.run_sync(lambda: sqs_admin.create_queue(QueueName=name))
            [doc] = await eventually(queues.documents, within=30)
            tg.cancel_scope.cancel()
    assert doc["message_id"] == "msg-waiting"
    failed = [e for e in logs if e["event"] == "outbox.send_failed"]
    assert "does not exist" in failed[0]["error"]


async def test_two_senders_racing_send_copies_that_consumers_can_deduplicate(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    ids = await import_rows(journal_path, emulator, store, genomes(s3_fasta, 2, "race"))
    async with (
        Importer(journal_path, region=emulator.region) as one,
        Importer(journal_path, region=emulator.region) as two,
        SqsClient(region="us-east-1") as sqs,
    ):
        await one.journal.add_outbox("msg-raced", queues.results, ids)
        registries = [CollectorRegistry(), CollectorRegistry()]
        senders = [
            ResultSender(imp, sqs, registry=r)
            for imp, r in zip((one, two), registries, strict=True)
        ]
        sent: list[int] = []

        async def send(sender: ResultSender) -> None:
            # Both see it due, neither settled its rows: both adopt it at once.
            sent.append(await sender.send_due(adopt_after=0))

        async with anyio.create_task_group() as tg:
            for sender in senders:
                tg.start_soon(send, sender)
        docs = await anyio.to_thread.run_sync(queues.documents)
        # At least once: one or two copies, all alike; exactly one sender closed the entry.
        assert 1 <= len(docs) == sum(sent) <= 2
        assert all(d == docs[0] for d in docs) and docs[0]["message_id"] == "msg-raced"
        assert await one.journal.due_outbox() == []
        closed = [
            r.get_sample_value("refimport_result_documents_total", {"outcome": "sent"}) or 0
            for r in registries
        ]
        assert sum(closed) == 1


async def test_a_fifo_results_queue_drops_copies_itself(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    sqs_admin = boto3.client("sqs", endpoint_url=queues.endpoint, region_name="us-east-1")
    fifo = sqs_admin.create_queue(
        QueueName=queues.results.rsplit("/", 1)[1] + ".fifo",
        Attributes={"FifoQueue": "true"},
    )["QueueUrl"]
    ids = await import_rows(journal_path, emulator, store, genomes(s3_fasta, 1, "fifo"))
    async with (
        Importer(journal_path, region=emulator.region) as imp,
        SqsClient(region="us-east-1") as sqs,
    ):
        await imp.journal.add_outbox("msg-fifo", fifo, ids)
        [entry] = await imp.journal.due_outbox()
        results = await imp.journal.results(entry.row_ids)
        # Two workers send the same document (neither saw the other close the entry).
        for _ in range(2):
            await sqs.send(fifo, result_document("msg-fifo", results), dedup_id="msg-fifo")
    got = sqs_admin.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [json.loads(m["Body"])["message_id"] for m in got.get("Messages", [])] == ["msg-fifo"]
    sqs_admin.delete_queue(QueueUrl=fifo)


def test_a_document_too_large_for_one_message_keeps_its_summary_and_failures() -> None:
    def row(i: int, state: RowState) -> RowResult:
        return RowResult(
            row_id=i,
            store_id="1234567890",
            region="us-east-1",
            name=f"genome-{i:05d}-" + "x" * 100,
            source_file=f"s3://bucket/genomes/genome-{i:05d}.fa",
            state=state,
            reference_id="1234567890" if state is RowState.IMPORTED else None,
            message=None if state is RowState.IMPORTED else "bad FASTA",
        )

    results = [row(i, RowState.IMPORTED) for i in range(3000)]
    results += [row(i, RowState.FAILED) for i in range(3000, 3010)]
    doc = json.loads(result_document("big", results))
    assert doc["summary"] == {"total": 3010, "imported": 3000, "already_present": 0, "failed": 10}
    assert doc["items_omitted"] == 3000
    assert {i["status"] for i in doc["items"]} == {"FAILED"}
    assert len(result_document("big", results).encode()) <= MAX_MESSAGE_BYTES

    failed = [row(i, RowState.FAILED) for i in range(3000)]
    doc = json.loads(result_document("all-failed", failed))
    assert doc["items"] == [] and doc["items_omitted"] == 3000
    assert doc["summary"]["failed"] == 3000


# -- the journal's side: which documents are due ---------------------------------------------------


@pytest.fixture(params=["sqlite", "dynamodb"])
def journal(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Journal:
    if request.param == "sqlite":
        return SQLiteJournal(tmp_path / "journal.sqlite")
    endpoint = request.getfixturevalue("moto_endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    table = f"outbox-{uuid.uuid4().hex[:10]}"
    assert anyio.run(lambda: create_table(table, region="us-east-1"))
    return DynamoJournal(table, region="us-east-1")


def _rows(n: int, prefix: str, source: str = "a") -> list[tuple[StoreRef, ImportRequest]]:
    store = StoreRef(STORE_ID, "us-east-1")
    return [
        (
            store,
            ImportRequest(
                STORE_ID, ROLE_ARN, f"s3://genomes/{source}/{prefix}{i}.fa", f"{prefix}{i}"
            ),
        )
        for i in range(n)
    ]


def _settle(ids: list[int], state: RowState = RowState.IMPORTED) -> list[Settlement]:
    return [
        Settlement(i, state, "1234567890" if state is RowState.IMPORTED else None, "x") for i in ids
    ]


@pytest.mark.slow
async def test_a_document_is_due_only_while_every_row_is_final(journal: Journal) -> None:
    async with journal:  # type: ignore[attr-defined]
        small = await journal.add_rows(_rows(3, "small"), submission="m-small")
        mixed = await journal.add_rows(_rows(4, "mixed"), submission="m-mixed")
        large = await journal.add_rows(_rows(150, "large"), submission="m-large")
        for name, ids in (("m-small", small), ("m-mixed", mixed), ("m-large", large)):
            await journal.add_outbox(name, "https://queue/results", ids)
        assert await journal.due_outbox() == []

        await journal.settle_queued(_settle(small))
        await journal.settle_queued(_settle(mixed[:3]) + _settle(mixed[3:], RowState.FAILED))
        # Every row of the large one but its very last.
        await journal.settle_queued(_settle(large[:-1]))
        due = {e.submission: e for e in await journal.due_outbox()}
        assert set(due) == {"m-small", "m-mixed"}
        assert list(due["m-mixed"].row_ids) == mixed
        assert await journal.due_outbox(limit=1) != []

        # A re-run queues the failed row again: its document is no longer due.
        await journal.add_rows(_rows(4, "mixed", source="b")[3:], submission="rerun")
        assert {e.submission for e in await journal.due_outbox()} == {"m-small"}

        await journal.settle_queued(_settle(large[-1:]))
        await journal.settle_queued(_settle(mixed[3:]))
        assert {e.submission for e in await journal.due_outbox()} == {
            "m-small",
            "m-mixed",
            "m-large",
        }
        assert await journal.close_outbox("m-large")
        assert {e.submission for e in await journal.due_outbox()} == {"m-small", "m-mixed"}
