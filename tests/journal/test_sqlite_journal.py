"""What only the SQLite journal has: a file on a disk, which a user can point at anything, delete
or share read-only."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from async_refimport import JournalError, SQLiteJournal
from async_refimport.journal import opened_journal
from tests.helpers.journal import STORE, reqs


def _digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


async def test_read_only_opens_a_journal_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    async with SQLiteJournal(path) as j:
        ids = await j.add_rows(reqs(2))
    before = _digest(path)
    async with opened_journal(path, read_only=True) as j:
        assert [r.row_id for r in await j.results()] == ids
        assert (await j.counts())[STORE]
        with pytest.raises(JournalError, match="reading only"):
            await j.add_rows(reqs(3))
    assert _digest(path) == before


async def test_read_only_refuses_what_is_not_a_journal(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE samples (id INTEGER)")
    conn.commit()
    conn.close()
    before = _digest(other)
    with pytest.raises(JournalError, match="not a refimport journal"):
        async with opened_journal(other, read_only=True):
            pass
    assert _digest(other) == before
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 100)
    with pytest.raises(JournalError, match="not a refimport journal"):
        async with opened_journal(text, read_only=True):
            pass
    with pytest.raises(JournalError, match="no journal at"):
        async with opened_journal(tmp_path / "missing.sqlite", read_only=True):
            pass
    assert not (tmp_path / "missing.sqlite").exists()


async def test_a_journal_deleted_while_open_stops_every_call(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    async with SQLiteJournal(path) as j:
        await j.add_rows(reqs(1))
        path.unlink()
        with pytest.raises(JournalError, match="deleted or replaced"):
            await j.add_rows(reqs(2))
        with pytest.raises(JournalError, match="deleted or replaced"):
            await j.results()


async def test_a_call_that_outlives_its_limit_is_interrupted(tmp_path: Path) -> None:
    """A journal locked by another process fails the call within its bound, not never."""
    path = tmp_path / "journal.sqlite"
    async with SQLiteJournal(path) as j:
        await j.add_rows(reqs(1))
    async with SQLiteJournal(path, timeout=0.5) as j:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(JournalError, match=r"interrupted|locked"):
                await j.add_rows(reqs(2, prefix="more"))
            assert time.monotonic() - started < 10
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert len(await j.add_rows(reqs(2, prefix="more"))) == 2  # and it recovers
