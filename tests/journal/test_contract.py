"""The Journal contract: what the engine relies on, checked on SQLite and on DynamoDB alike."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from async_refimport import LeaseLostError, RowState, StoreBookedError, StoreRef
from async_refimport.journal.base import JobState, Settlement
from tests.helpers.common import ROLE_ARN, STORE_ID
from tests.helpers.journal import STORE, JournalFactory, reqs


async def test_write_ahead_then_job_id_then_settle(journal_factory: JournalFactory) -> None:
    async with journal_factory() as j:
        ids = await j.add_rows(reqs(3))
        rows = await j.queued_rows(STORE, 100)
        assert [r.row_id for r in rows] == ids
        job = await j.begin_job(STORE, rows, "token-1")
        assert [r.state for r in await j.results(ids)] == [RowState.SUBMITTED] * 3
        assert await j.queued_rows(STORE, 100) == []
        [pending] = await j.unfinished_jobs(STORE)
        assert pending.state is JobState.PENDING and pending.job_id is None
        assert pending.client_token == "token-1" and len(pending.rows) == 3
        job = await j.record_job_id(job, "5555555555")
        [running] = await j.unfinished_jobs(STORE)
        assert running.state is JobState.RUNNING and running.job_id == "5555555555"
        assert "5555555555" in await j.known_job_ids(STORE)
        results = await j.finish_job(
            job,
            [
                Settlement(ids[0], RowState.IMPORTED, "7777777777"),
                Settlement(ids[1], RowState.FAILED, None, "not FASTA"),
            ],
            status="COMPLETED_WITH_FAILURES",
            requeue=[ids[2]],
        )
        states = {r.row_id: r.state for r in results}
        assert states == {
            ids[0]: RowState.IMPORTED,
            ids[1]: RowState.FAILED,
            ids[2]: RowState.QUEUED,
        }
        assert await j.unfinished_jobs(STORE) == []
        [imported] = await j.results([ids[0]])
        assert imported.job_id == "5555555555" and imported.reference_id == "7777777777"
        assert [r.row_id for r in await j.queued_rows(STORE, 100)] == [ids[2]]
        [done] = await j.jobs(STORE)
        assert done.state is JobState.DONE and done.status == "COMPLETED_WITH_FAILURES"
        counts = (await j.counts())[STORE]
        assert counts == {RowState.IMPORTED: 1, RowState.FAILED: 1, RowState.QUEUED: 1}


async def test_one_active_job_per_store(journal_factory: JournalFactory) -> None:
    async with journal_factory() as a, journal_factory() as b:
        await a.add_rows(reqs(4))
        rows = await a.queued_rows(STORE, 2)
        await a.begin_job(STORE, rows, "token-a")
        other = await b.queued_rows(STORE, 2)
        assert len(other) == 2 and not {r.row_id for r in other} & {r.row_id for r in rows}
        with pytest.raises(StoreBookedError, match="active job"):
            await b.begin_job(STORE, other, "token-b")
        # The refused attempt left nothing behind: the other rows are still queued.
        assert len(await b.queued_rows(STORE, 10)) == 2
        assert await b.stores_with_work() == [STORE]


async def test_resubmission_keeps_finished_rows_and_requeues_failed(
    journal_factory: JournalFactory,
) -> None:
    async with journal_factory() as j:
        ids = await j.add_rows(reqs(2))
        job = await j.begin_job(STORE, await j.queued_rows(STORE, 10), "t")
        await j.finish_job(
            job,
            [
                Settlement(ids[0], RowState.IMPORTED, "1111111111"),
                Settlement(ids[1], RowState.FAILED, None, "x"),
            ],
            status="COMPLETED_WITH_FAILURES",
        )
        again = await j.add_rows(reqs(2))
        assert again == ids
        states = [r.state for r in await j.results(ids)]
        assert states == [RowState.IMPORTED, RowState.QUEUED]
        assert await j.stores_with_work() == [STORE]


async def test_a_name_with_another_source_is_refused(journal_factory: JournalFactory) -> None:
    from async_refimport import ImportRequest, RequestValidationError

    async with journal_factory() as j:
        await j.add_rows(reqs(1))
        moved = ImportRequest(STORE_ID, ROLE_ARN, "s3://genomes/elsewhere.fa", "ref0")
        with pytest.raises(RequestValidationError, match="ref0"):
            await j.add_rows([(STORE, moved)])


async def test_requeue_is_capped(journal_factory: JournalFactory) -> None:
    async with journal_factory() as j:
        [row_id] = await j.add_rows(reqs(1))
        for attempt in range(3):
            job = await j.begin_job(STORE, await j.queued_rows(STORE, 1), f"t{attempt}")
            await j.finish_job(
                job, [], status="FAILED", message="service failed", requeue=[row_id], max_attempts=3
            )
        [result] = await j.results([row_id])
        assert result.state is RowState.FAILED and result.message == "service failed"
        assert result.attempts == 3


async def test_a_full_job_of_100_rows_settles(journal_factory: JournalFactory) -> None:
    """100 sources per job: the settlement spans more than one DynamoDB transaction."""
    async with journal_factory() as j:
        ids = await j.add_rows(reqs(100))
        rows = await j.queued_rows(STORE, 100)
        assert len(rows) == 100
        job = await j.record_job_id(await j.begin_job(STORE, rows, "big"), "9999999999")
        results = await j.finish_job(
            job,
            [Settlement(i, RowState.IMPORTED, f"{1_000_000_000 + n}") for n, i in enumerate(ids)],
            status="COMPLETED",
        )
        assert {r.state for r in results} == {RowState.IMPORTED} and len(results) == 100
        assert await j.unfinished_jobs(STORE) == []
        assert await j.stores_with_work() == []


async def test_rows_of_one_job_share_a_role(journal_factory: JournalFactory) -> None:
    from async_refimport import ImportRequest

    other_role = "arn:aws:iam::123456789012:role/Other"
    async with journal_factory() as j:
        await j.add_rows(
            [
                (STORE, ImportRequest(STORE_ID, ROLE_ARN, "s3://g/a.fa", "aaa")),
                (STORE, ImportRequest(STORE_ID, other_role, "s3://g/b.fa", "bbb")),
                (STORE, ImportRequest(STORE_ID, ROLE_ARN, "s3://g/c.fa", "ccc")),
            ]
        )
        rows = await j.queued_rows(STORE, 10)
        assert {r.role_arn for r in rows} == {rows[0].role_arn} and len(rows) in (1, 2)
        assert await j.queued_count(STORE) == 3


async def test_leases_exclude_other_owners_until_expiry(journal_factory: JournalFactory) -> None:
    now = [1000.0]
    async with journal_factory(clock=lambda: now[0]) as j:
        assert await j.acquire_lease(STORE, "a", ttl=30)
        assert not await j.acquire_lease(STORE, "b", ttl=30)
        assert await j.acquire_lease(STORE, "a", ttl=30)  # renewal
        now[0] += 31
        assert await j.acquire_lease(STORE, "b", ttl=30)  # a is presumed dead: taken over
        assert not await j.acquire_lease(STORE, "a", ttl=30)
        await j.release_lease(STORE, "b")
        assert await j.acquire_lease(STORE, "a", ttl=30)


async def test_a_fenced_out_writer_cannot_change_the_store(journal_factory: JournalFactory) -> None:
    """A paused worker whose lease was taken over has every write for the store refused."""
    now = [1000.0]
    async with journal_factory(clock=lambda: now[0]) as j:
        ids = await j.add_rows(reqs(4))
        assert await j.acquire_lease(STORE, "old", ttl=30)
        job = await j.begin_job(STORE, await j.queued_rows(STORE, 2), "t-old", owner="old")
        now[0] += 60  # "old" pauses past its lease ...
        assert await j.acquire_lease(STORE, "new", ttl=30)  # ... and "new" takes the store over
        with pytest.raises(LeaseLostError):
            await j.record_job_id(job, "1111111111", owner="old")
        with pytest.raises(LeaseLostError):
            await j.finish_job(
                job, [Settlement(ids[0], RowState.FAILED, None, "stale")], status="X", owner="old"
            )
        with pytest.raises(LeaseLostError):
            await j.settle_queued(
                [Settlement(ids[3], RowState.FAILED, None, "stale")], store=STORE, owner="old"
            )
        # Nothing the stale writer tried took effect ...
        [pending] = await j.unfinished_jobs(STORE)
        assert pending.client_token == "t-old" and pending.job_id is None
        assert {r.state for r in await j.results(ids)} <= {RowState.QUEUED, RowState.SUBMITTED}
        # ... and the new holder recovers the job as its own.
        adopted = await j.record_job_id(pending, "2222222222", owner="new")
        await j.finish_job(
            adopted,
            [Settlement(r.row_id, RowState.IMPORTED, "3333333333") for r in pending.rows],
            status="COMPLETED",
            owner="new",
        )
        with pytest.raises(LeaseLostError):
            await j.begin_job(STORE, await j.queued_rows(STORE, 2), "t-old-2", owner="old")
        await j.begin_job(STORE, await j.queued_rows(STORE, 2), "t-new-2", owner="new")


async def test_settle_queued_and_counts(journal_factory: JournalFactory) -> None:
    async with journal_factory() as j:
        ids = await j.add_rows(reqs(3))
        await j.settle_queued([Settlement(ids[0], RowState.ALREADY_PRESENT, "1111111111")])
        counts = (await j.counts())[STORE]
        assert counts == {RowState.ALREADY_PRESENT: 1, RowState.QUEUED: 2}
        [present] = await j.results([ids[0]])
        assert present.reference_id == "1111111111"
        assert [r.row_id for r in await j.results()] == ids


async def test_every_row_is_read_a_page_at_a_time_in_the_order_of_results(
    journal_factory: JournalFactory,
) -> None:
    async with journal_factory() as j:
        ids = await j.add_rows(reqs(7))
        await j.settle_queued([Settlement(ids[2], RowState.FAILED, None, "bad")])
        pages = [page async for page in j.iter_results(page=3)]
        assert [len(page) for page in pages] == [3, 3, 1]
        assert [r for page in pages for r in page] == await j.results()
        assert sorted(r.row_id for page in pages for r in page) == sorted(ids)


async def test_the_outbox_owes_a_document_until_every_row_is_final(
    journal_factory: JournalFactory,
) -> None:
    async with journal_factory() as j:
        ids = await j.add_rows(reqs(2), submission="msg-1")
        await j.add_outbox("msg-1", "https://queue/results", ids)
        await j.add_outbox("msg-1", "https://queue/results", ids)  # redelivered: no second entry
        assert await j.due_outbox() == []
        await j.settle_queued([Settlement(i, RowState.IMPORTED, "1111111111") for i in ids])
        [due] = await j.due_outbox()
        assert due.submission == "msg-1" and due.reply_to == "https://queue/results"
        assert list(due.row_ids) == ids
        assert await j.close_outbox("msg-1")
        assert not await j.close_outbox("msg-1")  # another worker sent it already
        assert await j.due_outbox() == []


async def test_stores_are_kept_apart(journal_factory: JournalFactory) -> None:
    other = StoreRef("9876543210", "eu-west-1", profile="team|b")
    async with journal_factory() as j:
        await j.add_rows(reqs(2) + reqs(3, store=other))
        assert {s.key for s in await j.stores_with_work()} == {STORE.key, other.key}
        rows = await j.queued_rows(other, 10)
        assert len(rows) == 3
        await j.begin_job(other, rows, "t-other")
        assert len(await j.queued_rows(STORE, 10)) == 2
        assert await j.unfinished_jobs(STORE) == []


_RACE = """
import anyio, json, sys, time
from async_refimport import StoreBookedError, StoreRef
from async_refimport.journal import resolve_journal

async def main() -> None:
    store = StoreRef("{store_id}", "us-east-1")
    journal = resolve_journal(sys.argv[1], region="us-east-1")
    held = []
    async with journal:
        round = 0
        while len(held) < int(sys.argv[3]) and round < 2000:
            round += 1
            rows = await journal.queued_rows(store, 1)
            if not rows:
                await anyio.sleep(0.01)
                continue
            try:
                job = await journal.begin_job(store, rows, f"{{sys.argv[2]}}-{{round}}")
            except StoreBookedError:
                await anyio.sleep(0.01)  # as a lane waits for a busy store, briefly
                continue
            # From here to the finish this process holds the store: a double booking would
            # show as two such spans that overlap.
            begun = time.time()
            await anyio.sleep(0.05)
            ended = time.time()
            await journal.finish_job(
                job, [], status="X", requeue=[r.row_id for r in rows], max_attempts=99
            )
            held.append((begun, ended))
    print(json.dumps(held))

anyio.run(main)
"""


@pytest.mark.slow
async def test_two_processes_race_for_one_store(
    journal_factory: JournalFactory, journal_url: str
) -> None:
    """Two processes hammer begin_job on one store: exactly one holds it at any time."""
    async with journal_factory() as j:
        await j.add_rows(reqs(3))
    script = _RACE.format(store_id=STORE_ID)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, journal_url, name, "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    outputs = [p.communicate(timeout=160) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    spans = [span for out, _ in outputs for span in json.loads(out)]
    assert len(spans) == 8  # both won their four rounds: contention costs refusals only
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two processes held the store at once"
    async with journal_factory() as j:
        jobs = await j.jobs(STORE)
        assert len(jobs) == 8 and all(job.state is JobState.DONE for job in jobs)


async def test_a_lease_of_a_dead_local_process_is_taken_at_once(
    journal_factory: JournalFactory,
) -> None:
    """After kill -9 on this host, a re-run need not wait out the dead process's lease."""
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_owner = f"{socket.gethostname()}:{dead.pid}:0000"
    live_owner = f"{socket.gethostname()}:{os.getppid()}:0000"  # pytest's parent: alive
    async with journal_factory() as j:
        assert await j.acquire_lease(STORE, dead_owner, ttl=300)
        holder = await j.lease_holder(STORE)
        assert holder is not None and holder[0] == dead_owner
        assert await j.acquire_lease(STORE, "me", ttl=300)
        assert (await j.lease_holder(STORE) or ("", 0.0))[0] == "me"
        await j.release_lease(STORE, "me")
        assert await j.lease_holder(STORE) is None
        assert await j.acquire_lease(STORE, live_owner, ttl=300)
        assert not await j.acquire_lease(STORE, "me", ttl=300)
