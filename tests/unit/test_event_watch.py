"""The events watcher's decisions, with an in-memory SQS and gateway (no HTTP, no real waiting)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from async_refimport import PollingPolicy, SQLiteJournal, StoreRef
from async_refimport.aws.sqs import Message
from async_refimport.completion.events import EventsPolicy, EventWatcher, parse_event, queue_region
from async_refimport.completion.polling import PollingWatcher
from async_refimport.gateway.aws import SourceSpec
from async_refimport.testing import MemoryGateway
from tests.helpers.common import ROLE_ARN, STORE_ID

STORE = StoreRef(STORE_ID, "us-east-1")
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/omics-events"


def envelope(job_id: str, status: str, *, source: str = "aws.omics") -> str:
    return json.dumps(
        {
            "version": "0",
            "source": source,
            "detail-type": "Reference Import Job Status Change",
            "region": "us-east-1",
            "detail": {
                "omicsVersion": "1.0.0",
                "id": job_id,
                "referenceStoreId": STORE_ID,
                "status": status,
            },
        }
    )


@dataclass
class FakeSqs:
    """Records what the watcher does with each message."""

    deleted: list[str] = field(default_factory=list)
    released: list[tuple[str, int]] = field(default_factory=list)

    async def delete(self, queue_url: str, receipt_handle: str) -> None:
        self.deleted.append(receipt_handle)

    async def set_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        self.released.append((receipt_handle, seconds))

    async def aclose(self) -> None:
        pass


def message(body: str, handle: str = "h") -> Message:
    return Message("m-" + handle, handle, body)


async def start_job(gateway: MemoryGateway, name: str = "ref0") -> str:
    return await gateway.start_import(
        STORE, ROLE_ARN, [SourceSpec(f"s3://genomes/{name}.fa", name)], f"token-{name}"
    )


def watcher(
    gateway: MemoryGateway, journal: SQLiteJournal, sqs: FakeSqs, **policy: float
) -> EventWatcher:
    polling = PollingWatcher(gateway, PollingPolicy(first_poll=0.001, min_interval=0.001))
    return EventWatcher(
        gateway,
        polling,
        {QUEUE: sqs},  # type: ignore[dict-item]
        journal,
        EventsPolicy(**policy),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (envelope("5012345678", "COMPLETED"), ("5012345678", "COMPLETED", True)),
        (envelope("5012345678", "IN_PROGRESS"), ("5012345678", "IN_PROGRESS", False)),
        (envelope("5012345678", "CANCELLED"), ("5012345678", "CANCELLED", True)),
        (envelope("5012345678", "COMPLETED", source="aws.s3"), None),
        ("not json", None),
        ("[]", None),
        (
            json.dumps(
                {"source": "aws.omics", "detail-type": "Reference Import Job Status Change"}
            ),
            None,
        ),
    ],
)
def test_parse_event(body: str, parsed: tuple[str, str, bool] | None) -> None:
    event = parse_event(body)
    if parsed is None:
        assert event is None
    else:
        assert event is not None and (event.job_id, event.status, event.final) == parsed


async def test_the_terminal_event_wakes_the_wait_with_one_get(journal_path: Path) -> None:
    gateway = MemoryGateway(polls_to_finish=1)
    sqs = FakeSqs()
    async with SQLiteJournal(journal_path) as journal:
        w = watcher(gateway, journal, sqs, safety_interval=3600.0)
        job_id = await start_job(gateway)
        result = None

        async def waiter() -> None:
            nonlocal result
            result = await w.wait(STORE, job_id, 1, anyio.current_time())

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0.01)
                assert await w.handle(QUEUE, message(envelope(job_id, "IN_PROGRESS"), "a")) == (
                    "deleted"
                )
                assert await w.handle(QUEUE, message(envelope(job_id, "COMPLETED"), "b")) == "used"
    assert result is not None and result.done
    assert gateway.calls["get"] == 1  # no poll before the event: one Get to confirm
    assert w.woken == 1 and w.caught_by_polling == 0
    assert sqs.deleted == ["a", "b"]


async def test_an_event_before_the_wait_began_is_remembered(journal_path: Path) -> None:
    gateway = MemoryGateway(polls_to_finish=1)
    async with SQLiteJournal(journal_path) as journal:
        w = watcher(gateway, journal, FakeSqs(), safety_interval=3600.0)
        job_id = await start_job(gateway)
        await w.handle(QUEUE, message(envelope(job_id, "COMPLETED")))
        with anyio.fail_after(5):
            snapshot = await w.wait(STORE, job_id, 1, anyio.current_time())
    assert snapshot.done and gateway.calls["get"] == 1


async def test_a_lost_event_is_caught_by_the_safety_net(journal_path: Path) -> None:
    gateway = MemoryGateway(polls_to_finish=2)
    async with SQLiteJournal(journal_path) as journal:
        w = watcher(gateway, journal, FakeSqs(), safety_interval=0.01)
        job_id = await start_job(gateway)
        with anyio.fail_after(5):
            snapshot = await w.wait(STORE, job_id, 1, anyio.current_time())
    assert snapshot.done
    assert w.caught_by_polling == 1 and w.woken == 0
    assert gateway.calls["get"] == 2


async def test_an_event_ahead_of_get_is_confirmed_again(journal_path: Path) -> None:
    # The event says COMPLETED, but Get still shows the job running (reads may lag): the
    # watcher looks again shortly instead of waiting for the safety net.
    gateway = MemoryGateway(polls_to_finish=3)
    async with SQLiteJournal(journal_path) as journal:
        w = watcher(gateway, journal, FakeSqs(), safety_interval=3600.0, confirm_interval=0.01)
        job_id = await start_job(gateway)
        await w.handle(QUEUE, message(envelope(job_id, "COMPLETED")))
        with anyio.fail_after(5):
            snapshot = await w.wait(STORE, job_id, 1, anyio.current_time())
    assert snapshot.done and gateway.calls["get"] == 3


async def test_events_of_jobs_not_waited_here(journal_path: Path) -> None:
    gateway = MemoryGateway()
    sqs = FakeSqs()
    async with SQLiteJournal(journal_path) as journal:
        from tests.unit.test_importer_logic import requests

        ids = await journal.add_rows([(STORE, r) for r in requests(2)])
        rows = await journal.queued_rows(STORE, 1)
        running = await journal.begin_job(STORE, rows, "t-running")
        running = await journal.record_job_id(running, "7777777777")
        w = watcher(gateway, journal, sqs)
        # Another worker sharing the journal runs 7777777777: its event goes back to the queue.
        assert await w.handle(QUEUE, message(envelope("7777777777", "COMPLETED"), "x")) == (
            "released"
        )
        assert sqs.released == [("x", EventsPolicy().release_after)]
        # Another tool's job, unknown to the journal: deleted, the queue does not fill up.
        assert await w.handle(QUEUE, message(envelope("1111111111", "COMPLETED"), "y")) == (
            "deleted"
        )
        # Once the job is settled, a late duplicate of its event is deleted too.
        await journal.finish_job(running, [], status="COMPLETED", requeue=[rows[0].row_id])
        assert await w.handle(QUEUE, message(envelope("7777777777", "COMPLETED"), "z")) == (
            "deleted"
        )
        # Not an omics job event at all: deleted.
        assert await w.handle(QUEUE, message("hello", "w")) == "deleted"
    assert sqs.deleted == ["y", "z", "w"]
    assert len(ids) == 2


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1"),
        ("https://ap-southeast-2.queue.amazonaws.com/123456789012/q", "ap-southeast-2"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "cn-north-1"),
        ("http://127.0.0.1:4566/000000000000/q", None),
    ],
)
def test_queue_region(url: str, region: str | None) -> None:
    assert queue_region(url) == region
