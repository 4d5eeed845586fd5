"""Rows whose source is staged first (the StagingQueue role of the SQLite journal): journaled
STAGING, invisible to the lanes, QUEUED with the staged object in one write, the manifest's source
kept; a re-run of the same manifest finds them, and a journal from before these columns opens."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from async_refimport import ImportRequest, RowState, StoreRef
from async_refimport.journal.base import Settlement
from async_refimport.journal.sqlite import SQLiteJournal
from tests.helpers.common import ROLE_ARN, STORE_ID
from tests.helpers.journal import STORE, reqs

MD5 = "0123456789abcdef0123456789abcdef"
WEST = StoreRef(STORE_ID, "us-west-2")


def staged(n: int, store: StoreRef = STORE) -> list[tuple[StoreRef, ImportRequest]]:
    return [
        (
            store,
            ImportRequest(
                store.store_id,
                ROLE_ARN,
                f"https://ftp.example.org/g{i}.fa.gz",
                f"g{i}",
                source_md5=MD5,
            ),
        )
        for i in range(n)
    ]


async def test_a_staging_row_is_queued_once_staged(tmp_path: Path) -> None:
    async with SQLiteJournal(tmp_path / "j.sqlite") as j:
        ids = await j.add_staging_rows(staged(2) + staged(1, WEST))
        assert await j.queued_rows(STORE, 10) == []  # the lanes never see a STAGING row
        assert await j.queued_count(STORE) == 0
        assert set(await j.stores_with_work()) == {STORE, WEST}  # a restart resumes them
        rows = await j.staging_rows(10)
        assert [(r.row_id, r.store, r.source, r.source_md5) for r in rows] == [
            (ids[0], STORE, "https://ftp.example.org/g0.fa.gz", MD5),
            (ids[1], STORE, "https://ftp.example.org/g1.fa.gz", MD5),
            (ids[2], WEST, "https://ftp.example.org/g0.fa.gz", MD5),
        ]
        assert len(await j.staging_rows(1)) == 1
        assert [r.row_id for r in await j.staging_rows(10, store=WEST)] == [ids[2]]
        assert [r.row_id for r in await j.staging_rows(1, store=STORE)] == [ids[0]]

        assert await j.mark_staged(ids[0], "s3://stage-east/sha256/ab/g0.fa.gz")
        assert not await j.mark_staged(ids[0], "s3://elsewhere/g0.fa.gz")  # idempotent
        assert await j.fail_staging(ids[1], "truncated download: 10 of 20 bytes")
        assert not await j.fail_staging(ids[1], "again")
        assert not await j.fail_staging(ids[0], "not staging any more")

        [queued] = await j.queued_rows(STORE, 10)
        assert queued.row_id == ids[0] and queued.source_file.startswith("s3://stage-east/")
        first, failed, west = await j.results(ids)
        assert first.state is RowState.QUEUED
        assert first.source_file == "s3://stage-east/sha256/ab/g0.fa.gz"
        assert first.original_source == "https://ftp.example.org/g0.fa.gz"
        assert (first.role_arn, first.source_md5) == (ROLE_ARN, MD5)
        assert failed.state is RowState.FAILED and (failed.message or "").startswith("truncated")
        assert west.state is RowState.STAGING
        assert (await j.counts())[WEST] == {RowState.STAGING: 1}


async def test_a_rerun_finds_staged_rows_by_their_manifest_source(tmp_path: Path) -> None:
    async with SQLiteJournal(tmp_path / "j.sqlite") as j:
        ids = await j.add_staging_rows(staged(2))
        await j.mark_staged(ids[0], "s3://stage/g0.fa.gz")
        await j.fail_staging(ids[1], "404")
        job = await j.begin_job(STORE, await j.queued_rows(STORE, 10), "t")
        await j.finish_job(
            job, [Settlement(ids[0], RowState.IMPORTED, "1111111111")], status="COMPLETED"
        )

        again = staged(2)
        assert await j.conflicts(again) == []
        assert await j.add_staging_rows(again) == ids
        imported, retried = await j.results(ids)
        assert imported.state is RowState.IMPORTED  # nothing staged or imported anew
        assert imported.original_source == "https://ftp.example.org/g0.fa.gz"
        assert retried.state is RowState.STAGING and retried.message is None

        other = [(STORE, replace(again[0][1], source_file="https://other.example/g0.fa"))]
        [conflict] = await j.conflicts(other)
        assert conflict.field == "source_file" and "https://ftp.example.org" in conflict.reason


async def test_a_failed_staged_row_requeued_from_s3_forgets_its_original(tmp_path: Path) -> None:
    async with SQLiteJournal(tmp_path / "j.sqlite") as j:
        [row] = await j.add_staging_rows(staged(1))
        await j.fail_staging(row, "404")
        plain = [(STORE, ImportRequest(STORE_ID, ROLE_ARN, "s3://genomes/g0.fa", "g0"))]
        assert await j.add_rows(plain) == [row]
        [result] = await j.results([row])
        assert result.state is RowState.QUEUED and result.original_source is None
        assert result.source_md5 is None and result.source_file == "s3://genomes/g0.fa"


async def test_a_journal_from_before_staging_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    async with SQLiteJournal(path) as j:
        await j.add_rows(reqs(1))
    conn = sqlite3.connect(path)
    for column in ("original_source", "source_md5"):  # as the previous version created it
        conn.execute(f"ALTER TABLE rows DROP COLUMN {column}")
    conn.close()
    async with SQLiteJournal(path, read_only=True) as ro:
        [old] = await ro.results()
        assert old.state is RowState.QUEUED and old.original_source is None
    async with SQLiteJournal(path) as rw:  # migrated: the columns added, the row kept
        [row] = await rw.add_staging_rows(staged(1))
        await rw.mark_staged(row, "s3://stage/g0.fa.gz")
        assert [r.original_source for r in await rw.results()] == [
            None,
            "https://ftp.example.org/g0.fa.gz",
        ]
