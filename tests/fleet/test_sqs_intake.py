"""The SQS intake in-process: messages in, rows journaled and imported, one result document out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_refimport import JournalError, QueueError, SQLiteJournal
from async_refimport.aws.sqs import Message, SqsClient
from async_refimport.emulator import EmulatorThread
from async_refimport.manifest.reader import ManifestDefaults
from async_refimport.worker.intakes.sqs.messages import parse_body
from async_refimport.worker.intakes.sqs.options import SqsIntakeSettings
from tests.helpers.common import ROLE_ARN
from tests.helpers.fleet import Queues, eventually, running
from tests.helpers.integration import genomes
from tests.helpers.logcapture import capture_logs


def rows(items: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"name": n, "source_file": u, "tags": {"via": "sqs"}} for n, u in items]


async def test_a_message_of_rows_is_imported_and_answered_once(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    items = genomes(s3_fasta, 5, "sqs-rows")
    async with running(journal_path, emulator, queues, store) as w:
        message_id = queues.send({"requests": rows(items)})
        [doc] = await eventually(queues.documents)
        # Deleted once journaled: nothing left on the request queue.
        assert await anyio.to_thread.run_sync(queues.pending) == 0
        assert w.intake.reachable
    assert doc["message_id"] == message_id
    assert doc["summary"] == {"total": 5, "imported": 5, "already_present": 0, "failed": 0}
    assert {i["name"] for i in doc["items"]} == {n for n, _ in items}
    assert all(i["status"] == "IMPORTED" and i["reference_id"] for i in doc["items"])
    # Nothing more comes: one document per message.
    assert await anyio.to_thread.run_sync(queues.documents) == []


async def test_a_manifest_pointer_is_read_through_s3(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    items = genomes(s3_fasta, 4, "sqs-manifest")
    csv = "name,source_file,description\n" + "".join(f"{n},{u},genome {n}\n" for n, u in items)
    tsv = "name\tsource_file\n" + "".join(f"{n}-tsv\t{u}\n" for n, u in items[:2])
    csv_uri = await anyio.to_thread.run_sync(queues.put_manifest, "batch/refs.csv", csv)
    tsv_uri = await anyio.to_thread.run_sync(queues.put_manifest, "batch/refs.txt", tsv)
    async with running(journal_path, emulator, queues, store):
        first = queues.send({"manifest": csv_uri})
        # A key without a known extension names its format.
        second = queues.send({"manifest": tsv_uri, "format": "tsv"})
        docs = await eventually(lambda: queues.collect(2), within=40)
    by_id = {d["message_id"]: d for d in docs}
    assert by_id[first]["summary"]["imported"] == 4
    assert by_id[second]["summary"]["imported"] == 2


@pytest.mark.slow
async def test_a_redelivered_message_is_journaled_once_and_answered_once(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    items = genomes(s3_fasta, 3, "sqs-redeliver")
    async with running(journal_path, emulator, queues, store) as w:
        import json

        body = json.dumps({"requests": rows(items)})
        # The same message delivered twice (the first receiver died before deleting it).
        twice = Message("msg-redelivered-1", "no-such-receipt", body, receive_count=2)
        await w.intake._carry(twice)
        await w.intake._carry(twice)
        [doc] = await eventually(queues.documents)
        await anyio.sleep(1.5)  # the sender looks again: the entry is closed
        assert await anyio.to_thread.run_sync(queues.documents) == []
    assert doc["message_id"] == "msg-redelivered-1"
    assert doc["summary"]["total"] == 3
    async with SQLiteJournal(journal_path) as j:
        assert len(await j.results()) == 3


# -- bad input -------------------------------------------------------------------------------------


async def test_bad_messages_are_reported_deleted_and_the_intake_goes_on(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    items = genomes(s3_fasta, 2, "sqs-bad")
    missing = f"s3://{'refimport-manifests'}/no/such/manifest.csv"
    # The bucket exists, the object does not (whichever test ran before on this moto server).
    queues.put_manifest("sqs-bad/present.csv", "name,source_file\n")
    with capture_logs() as logs:
        async with running(journal_path, emulator, queues, store) as w:
            not_json = queues.send("this is {not json")
            bad_rows = queues.send(
                {
                    "requests": [
                        {"name": "fine-row", "source_file": items[0][1]},
                        {"name": "x", "source_file": "http://not-s3/a.fa"},
                        {"source_file": items[1][1], "colour": "blue"},
                    ]
                }
            )
            no_object = queues.send({"manifest": missing})
            neither = queues.send({"hello": "world"})
            docs = await eventually(lambda: queues.collect(4), within=30)
            # The worker keeps taking work after each of them.
            good = queues.send({"requests": rows(items)})
            more = await eventually(lambda: queues.collect(5), within=30)
            assert await anyio.to_thread.run_sync(queues.pending) == 0
            assert w.intake.running
    by_id = {d["message_id"]: d for d in more}
    assert by_id[good]["summary"]["imported"] == 2
    for message_id in (not_json, bad_rows, no_object, neither):
        doc = by_id[message_id]
        assert doc["summary"]["total"] == 0 and doc["items"] == []
        assert doc["errors"]
    assert [e["message"] for e in by_id[not_json]["errors"]] == ["body: not a JSON document"]
    # Every bad row is named by its index and field at once; nothing of that message is journaled.
    bad = {(e["index"], e["field"]) for e in by_id[bad_rows]["errors"]}
    assert (2, "name") in bad and (2, "source_file") in bad
    assert (3, "name") in bad and (3, "colour") in bad
    assert all(e["index"] != 1 for e in by_id[bad_rows]["errors"])
    [missing_error] = by_id[no_object]["errors"]
    assert missing_error["source"] == missing and "NoSuchKey" in missing_error["message"]
    assert "exactly one of" in by_id[neither]["errors"][0]["message"]
    async with SQLiteJournal(journal_path) as j:
        assert {r.name for r in await j.results()} == {n for n, _ in items}
    rejected = [e for e in logs if e["event"] == "sqs.message_rejected"]
    assert {e["message_id"] for e in rejected} == {not_json, bad_rows, no_object, neither}
    assert len(docs) == 4


async def test_a_queue_that_does_not_exist_fails_at_start_with_one_clear_error(
    emulator: EmulatorThread, store: str, queues: Queues, journal_path: Path
) -> None:
    gone = queues.requests.rsplit("/", 1)[0] + "/no-such-queue"
    # The Importer's task groups wrap it: the worker's entry point unwraps a sole error.
    with pytest.raises(BaseException) as caught:
        async with running(journal_path, emulator, queues, store, queue_url=gone):
            pass
    error: BaseException = caught.value
    while isinstance(error, BaseExceptionGroup):
        [error] = error.exceptions
    assert isinstance(error, QueueError)
    assert str(error) == f"queue {gone} does not exist"
    assert "\n" not in str(error)


@pytest.mark.slow
async def test_a_queue_lost_while_running_is_logged_and_taken_again_when_back(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    items = genomes(s3_fasta, 2, "sqs-lost")
    sqs = queues.client()
    name = queues.requests.rsplit("/", 1)[1]
    with capture_logs() as logs:
        async with running(journal_path, emulator, queues, store) as w:
            await anyio.to_thread.run_sync(lambda: sqs.delete_queue(QueueUrl=queues.requests))
            await eventually(lambda: not w.intake.reachable, within=20)
            assert w.intake.running
            await anyio.to_thread.run_sync(lambda: sqs.create_queue(QueueName=name))
            await eventually(lambda: w.intake.reachable, within=20)
            message_id = queues.send({"requests": rows(items)})
            [doc] = await eventually(queues.documents)
    assert doc["message_id"] == message_id and doc["summary"]["imported"] == 2
    failures = [e for e in logs if e["event"] == "sqs.receive_failed" and e["log_level"] == "error"]
    assert len(failures) == 1, "one error when the queue goes away, not one per poll"
    assert "does not exist" in failures[0]["error"]


# -- delivery --------------------------------------------------------------------------------------


class SlowJournal(SQLiteJournal):
    """Journals slowly (a busy database), and fails the first write when told to."""

    def __init__(self, path: Path, *, delay: float = 0.0, fail_first: bool = False) -> None:
        super().__init__(path)
        self.delay = delay
        self.fail_first = fail_first
        self.calls = 0

    async def add_rows(self, requests: Any, submission: str | None = None) -> list[int]:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise JournalError("journal: database is locked")
        await anyio.sleep(self.delay)
        return await super().add_rows(requests, submission)


@pytest.mark.slow
async def test_visibility_is_extended_while_journaling_takes_long(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    items = genomes(s3_fasta, 2, "sqs-slow")
    journal = SlowJournal(journal_path, delay=5.0)
    settings = SqsIntakeSettings(wait_time=1, visibility_timeout=2, retry_delay=1)
    async with running(journal, emulator, queues, store, intake_settings=settings) as w:
        queues.send({"requests": rows(items)})
        await eventually(lambda: w.intake.in_flight == 1, within=10)
        # Another consumer polling through the whole slow write (2.5 visibility timeouts) never
        # gets the message: its visibility was extended.
        sqs = queues.client()
        stolen = await anyio.to_thread.run_sync(
            lambda: [
                sqs.receive_message(
                    QueueUrl=queues.requests, WaitTimeSeconds=1, VisibilityTimeout=0
                ).get("Messages", [])
                for _ in range(4)
            ]
        )
        assert not any(stolen)
        [doc] = await eventually(queues.documents, within=30)
    assert doc["summary"]["imported"] == 2
    assert journal.calls == 1


async def test_a_journal_failure_leaves_the_message_for_a_later_delivery(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    items = genomes(s3_fasta, 2, "sqs-retry")
    journal = SlowJournal(journal_path, fail_first=True)
    with capture_logs() as logs:
        async with running(journal, emulator, queues, store) as w:
            message_id = queues.send({"requests": rows(items)})
            [doc] = await eventually(queues.documents, within=30)
            assert w.intake.journal_ok
    assert doc["message_id"] == message_id and doc["summary"]["imported"] == 2
    assert journal.calls == 2
    assert any(e["event"] == "sqs.message_retry_later" for e in logs)


# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[1, 2]", "body: must be a JSON object"),
        ('{"requests": []}', "requests: must be a non-empty list"),
        ('{"manifest": "https://x/y.csv"}', "manifest: must be an s3://bucket/key URI"),
        ('{"manifest": "s3://b/k.csv", "format": "xls"}', "format: must be one of csv, tsv, jsonl"),
        ('{"manifest": "s3://b/k.csv", "requests": [{}]}', "body: give exactly one of"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: str, problem: str) -> None:
    from async_refimport import RequestValidationError
    from async_refimport.worker.intakes.sqs.documents import error_dict

    with pytest.raises(RequestValidationError) as caught:
        parse_body(body, ManifestDefaults(store_id="1234567890", role_arn=ROLE_ARN))
    assert error_dict(caught.value.errors[0])["message"].startswith(problem)


async def test_sqs_client_maps_a_missing_queue_and_object(queues: Queues) -> None:
    from async_refimport.aws.sqs import ObjectUnavailable

    async with SqsClient(region="us-east-1") as sqs:
        with pytest.raises(QueueError) as caught:
            await sqs.queue_attributes(queues.requests + "-gone")
        assert caught.value.code == "QueueDoesNotExist"
        await anyio.to_thread.run_sync(queues.put_manifest, "exists.csv", "name,source_file\n")
        with pytest.raises(ObjectUnavailable) as missing:
            await sqs.read_object("s3://refimport-manifests/absent.csv", max_bytes=1000)
        assert missing.value.code == "NoSuchKey"
        with pytest.raises(ObjectUnavailable) as large:
            await sqs.read_object("s3://refimport-manifests/exists.csv", max_bytes=3)
        assert large.value.code == "TooLarge"


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/requests", "eu-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/requests", "cn-north-1"),
        ("https://ap-southeast-2.queue.amazonaws.com/123456789012/requests", "ap-southeast-2"),
        ("http://127.0.0.1:5000/123456789012/requests", None),
    ],
)
def test_a_queue_is_reached_in_the_region_its_url_names(url: str, region: str | None) -> None:
    from async_refimport.aws.sqs import queue_region

    assert queue_region(url) == region


async def test_a_message_cannot_choose_the_endpoint_or_the_profile(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
    queues: Queues,
    journal_path: Path,
) -> None:
    """A message naming an endpoint (inline or in a manifest's column) or a profile is refused
    with a result document naming the field; the worker's credentials never reach the endpoint."""
    from tests.helpers.listener import Listener

    items = genomes(s3_fasta, 2, "sqs-aimed")
    with Listener() as trap:
        uri = queues.put_manifest(
            "sqs-aimed/m.csv",
            "name,source_file,endpoint_url\n" + f"{items[1][0]},{items[1][1]},{trap.url}\n",
        )
        async with running(journal_path, emulator, queues, store):
            inline = queues.send({"requests": [{**rows(items[:1])[0], "endpoint_url": trap.url}]})
            profiled = queues.send({"requests": [{**rows(items[:1])[0], "profile": "admin"}]})
            pointed = queues.send({"manifest": uri})
            docs = await eventually(lambda: queues.collect(3), within=30)
        assert trap.connections == 0
    by_id = {d["message_id"]: d for d in docs}
    assert {e["field"] for e in by_id[inline]["errors"]} == {"endpoint_url"}
    assert {e["field"] for e in by_id[profiled]["errors"]} == {"profile"}
    assert {e["field"] for e in by_id[pointed]["errors"]} == {"endpoint_url"}
    for doc in docs:
        assert doc["summary"]["total"] == 0
        assert "remote client" in doc["errors"][0]["message"]
    async with SQLiteJournal(journal_path) as j:
        assert await j.results() == []
    assert emulator.stats()["calls"].get("StartReferenceImportJob", 0) == 0
