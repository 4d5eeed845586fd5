"""Poison messages on both queues of a ``refimport worker`` process: whatever a body holds, the
worker stays up, answers and deletes each invalid request, deletes each unusable event with one
line, and imports the good message sent after them; nothing comes back for ever."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.fleet.test_worker_sqs import Worker, start
from tests.helpers.fleet import Queues, eventually
from tests.helpers.integration import genomes

__all__ = ["start"]  # the fixture, used by name

DEEP = "[" * 100_000
#: Bodies no request may be: each is answered (a rejection document) and deleted.
POISON_REQUESTS = {
    "nested brackets": DEEP,
    "nested requests": '{"requests": ' + DEEP,
    "nested objects": '{"a":' * 20_000 + "1" + "}" * 20_000,
    "a huge number": "9" * 200_000,
    "a key twice": '{"requests": [{"name": "a", "name": "b", "source_file": "s3://g/a.fa"}]}',
    "not an object": "[1, 2, 3]",
}
#: Bodies no event may be: each is deleted, with one line.
POISON_EVENTS = {
    "nested brackets": DEEP,
    "nested objects": '{"detail":' * 20_000 + "{}" + "}" * 20_000,
    "a huge number": "9" * 200_000,
    "a key twice": '{"source": "aws.omics", "source": "x", "detail": {}}',
    "not json": "\x01not json",
}


@pytest.mark.slow
async def test_poison_on_either_queue_stops_nothing_and_comes_back_never(
    start: Callable[..., Worker],
    queues: Queues,
    s3_fasta: Callable[..., str],
    store: str,
    tmp_path: Path,
) -> None:
    sqs = queues.client()
    events = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    # The poison is waiting before the worker starts, as after a crash: the first receive has it.
    event_ids = {
        sqs.send_message(QueueUrl=events, MessageBody=body)["MessageId"]: what
        for what, body in POISON_EVENTS.items()
    }
    request_ids = {queues.send(body): what for what, body in POISON_REQUESTS.items()}
    worker = start(
        "--sqs-queue-url",
        queues.requests,
        "--results-queue-url",
        queues.results,
        "--events-queue-url",
        events,
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--store-id",
        store,
    )
    items = genomes(s3_fasta, 2, "after-poison")
    good = queues.send({"requests": [{"name": n, "source_file": u} for n, u in items]})

    docs = await eventually(lambda: queues.collect(len(request_ids) + 1), within=120)
    by_id = {d["message_id"]: d for d in docs}
    assert by_id[good]["summary"]["imported"] == 2, by_id[good]
    for message_id, what in request_ids.items():
        doc = by_id[message_id]
        assert doc["summary"]["total"] == 0 and doc["errors"], (what, doc)
    assert any(
        "given twice" in e["message"] for e in by_id[_id(request_ids, "a key twice")]["errors"]
    )
    assert "nested deeper" in by_id[_id(request_ids, "nested brackets")]["errors"][0]["message"]

    # Every poison event deleted, each said once; both queues empty: nothing is redelivered.
    await eventually(lambda: queues.pending(events) == 0, within=120)
    await eventually(lambda: queues.pending(queues.requests) == 0, within=60)
    assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
    unusable = [e for e in worker.events() if e.get("event") == "events.message_unusable"]
    assert sorted(e["message_id"] for e in unusable) == sorted(event_ids)
    rejected = [e for e in worker.events() if e.get("event") == "sqs.message_rejected"]
    assert sorted(e["message_id"] for e in rejected) == sorted(request_ids)
    assert "Traceback" not in worker.log.read_text()

    # Still taking work, and stops cleanly.
    again = genomes(s3_fasta, 1, "after-poison-2")
    later = queues.send({"requests": [{"name": n, "source_file": u} for n, u in again]})
    [doc] = await eventually(lambda: queues.documents(), within=120)
    assert doc["message_id"] == later and doc["summary"]["imported"] == 1
    worker.proc.terminate()
    assert await anyio.to_thread.run_sync(worker.proc.wait, 60) == 0


def _id(ids: dict[str, str], what: str) -> str:
    return next(message_id for message_id, w in ids.items() if w == what)
