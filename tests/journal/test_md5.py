"""Each row keeps the md5 the service reported for its reference, on every backend; a journal
written before rows had an md5 still opens (read-write: migrated; read-only: untouched)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from async_refimport import RowState
from async_refimport.journal.base import Settlement
from async_refimport.journal.sqlite import SQLiteJournal
from tests.helpers.journal import STORE, JournalFactory, reqs

MD5 = "0123456789abcdef0123456789abcdef"


async def test_settlements_keep_the_md5(journal_factory: JournalFactory) -> None:
    async with journal_factory() as j:
        ids = await j.add_rows(reqs(4))
        await j.settle_queued([Settlement(ids[0], RowState.ALREADY_PRESENT, "1111111111", md5=MD5)])
        job = await j.record_job_id(
            await j.begin_job(STORE, await j.queued_rows(STORE, 10), "t"), "5555555555"
        )
        await j.finish_job(
            job,
            [
                Settlement(ids[1], RowState.IMPORTED, "2222222222", md5=MD5[::-1]),
                Settlement(ids[2], RowState.IMPORTED, "3333333333"),
                Settlement(ids[3], RowState.FAILED, None, "not FASTA"),
            ],
            status="COMPLETED_WITH_FAILURES",
        )
        assert [r.md5 for r in await j.results(ids)] == [MD5, MD5[::-1], None, None]

        # A failed row queued again forgets what it had: it has no reference yet.
        await j.add_rows(reqs(4))
        [requeued] = await j.results([ids[3]])
        assert requeued.state is RowState.QUEUED and requeued.md5 is None


async def test_a_journal_from_before_md5(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    async with SQLiteJournal(path) as j:
        ids = await j.add_rows(reqs(2))
        await j.settle_queued([Settlement(ids[0], RowState.ALREADY_PRESENT, "1111111111")])
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE rows DROP COLUMN md5")  # as the previous version created it
    conn.close()
    digest = hashlib.md5(path.read_bytes()).hexdigest()

    async with SQLiteJournal(path, read_only=True) as ro:
        assert [(r.state, r.md5) for r in await ro.results()] == [
            (RowState.ALREADY_PRESENT, None),
            (RowState.QUEUED, None),
        ]
    assert hashlib.md5(path.read_bytes()).hexdigest() == digest  # read-only left it as it was

    async with SQLiteJournal(path) as rw:  # migrated: the column added, the rows kept
        await rw.settle_queued(
            [Settlement(ids[1], RowState.ALREADY_PRESENT, "2222222222", md5=MD5)]
        )
        assert [r.md5 for r in await rw.results()] == [None, MD5]
    async with SQLiteJournal(path) as again:  # migrating twice is harmless
        assert len(await again.results()) == 2


async def test_rows_keep_their_role_and_their_sources_md5(journal_factory: JournalFactory) -> None:
    from dataclasses import replace

    async with journal_factory() as j:
        (store, request), plain = reqs(2)
        ids = await j.add_rows([(store, replace(request, source_md5=MD5)), plain])
        with_md5, without = await j.results(ids)
        assert (with_md5.source_md5, without.source_md5) == (MD5, None)
        assert with_md5.role_arn == request.role_arn and with_md5.original_source is None
        assert with_md5.md5 is None  # the reference's checksum is another one, not known yet
