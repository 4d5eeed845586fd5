from __future__ import annotations

import stat
from pathlib import Path

import pytest

from async_refimport import (
    ImportRequest,
    JournalError,
    RowState,
    SQLiteJournal,
    StoreBookedError,
    StoreRef,
)
from async_refimport.journal.base import JobState, Settlement
from tests.helpers.common import ROLE_ARN, STORE_ID

STORE = StoreRef(STORE_ID, "us-east-1")


def reqs(n: int, prefix: str = "ref") -> list[tuple[StoreRef, ImportRequest]]:
    return [
        (STORE, ImportRequest(STORE_ID, ROLE_ARN, f"s3://genomes/{prefix}{i}.fa", f"{prefix}{i}"))
        for i in range(n)
    ]


async def test_file_is_private_and_schema_versioned(journal_path: Path) -> None:
    async with SQLiteJournal(journal_path):
        pass
    assert stat.S_IMODE(journal_path.stat().st_mode) == 0o600
    import sqlite3

    conn = sqlite3.connect(journal_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        async with SQLiteJournal(journal_path):
            pass


async def test_write_ahead_then_job_id_then_settle(journal_path: Path) -> None:
    async with SQLiteJournal(journal_path) as j:
        ids = await j.add_rows(reqs(3))
        rows = await j.queued_rows(STORE, 100)
        assert [r.row_id for r in rows] == ids
        job = await j.begin_job(STORE, rows, "token-1")
        assert [r.state for r in await j.results(ids)] == [RowState.SUBMITTED] * 3
        [pending] = await j.unfinished_jobs(STORE)
        assert pending.state is JobState.PENDING and pending.job_id is None
        assert pending.client_token == "token-1" and len(pending.rows) == 3
        job = await j.record_job_id(job, "5555555555")
        [running] = await j.unfinished_jobs(STORE)
        assert running.state is JobState.RUNNING and running.job_id == "5555555555"
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
        assert (await j.results([ids[0]]))[0].job_id == "5555555555"


async def test_one_active_job_per_store_across_processes(journal_path: Path) -> None:
    async with SQLiteJournal(journal_path) as a, SQLiteJournal(journal_path) as b:
        await a.add_rows(reqs(4))
        rows = await a.queued_rows(STORE, 2)
        await a.begin_job(STORE, rows, "token-a")
        other = await b.queued_rows(STORE, 2)
        with pytest.raises(StoreBookedError, match="active job"):
            await b.begin_job(STORE, other, "token-b")
        # The failed attempt left nothing behind: the rows are still queued.
        assert len(await b.queued_rows(STORE, 10)) == 2


async def test_resubmission_keeps_finished_rows_and_requeues_failed(journal_path: Path) -> None:
    async with SQLiteJournal(journal_path) as j:
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


async def test_requeue_is_capped(journal_path: Path) -> None:
    async with SQLiteJournal(journal_path) as j:
        [row_id] = await j.add_rows(reqs(1))
        for attempt in range(3):
            job = await j.begin_job(STORE, await j.queued_rows(STORE, 1), f"t{attempt}")
            await j.finish_job(
                job, [], status="FAILED", message="service failed", requeue=[row_id], max_attempts=3
            )
        [result] = await j.results([row_id])
        assert result.state is RowState.FAILED and result.message == "service failed"


async def test_leases_exclude_other_owners_until_expiry(journal_path: Path) -> None:
    now = [1000.0]
    async with SQLiteJournal(journal_path, clock=lambda: now[0]) as j:
        assert await j.acquire_lease(STORE, "a", ttl=30)
        assert not await j.acquire_lease(STORE, "b", ttl=30)
        assert await j.acquire_lease(STORE, "a", ttl=30)  # renewal
        now[0] += 31
        assert await j.acquire_lease(STORE, "b", ttl=30)  # a is presumed dead


async def test_compaction_forgets_old_final_rows(journal_path: Path) -> None:
    now = [1000.0]
    async with SQLiteJournal(journal_path, clock=lambda: now[0]) as j:
        ids = await j.add_rows(reqs(2))
        await j.settle_queued([Settlement(ids[0], RowState.ALREADY_PRESENT, "1111111111")])
        now[0] += 100
        assert await j.compact(older_than=1050) == 1
        assert [r.row_id for r in await j.results()] == [ids[1]]
