"""A journal whose disk is full says so in words a user can act on, whichever way SQLite tells it
(``database or disk is full`` when the space runs out, ``disk I/O error`` when a write is refused
past a file-size limit), and nothing is half-written."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from async_refimport import JournalError, SQLiteJournal
from tests.helpers.journal import reqs


async def test_a_full_database_is_a_journal_error_that_names_the_disk(tmp_path: Path) -> None:
    async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        ids = await journal.add_rows(reqs(2))
        conn = journal._conn  # the journal's own connection: the limit applies to its writes
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]

        def cap() -> None:
            # SQLite's own quota: no page beyond those in use, as on a full file system.
            conn.execute(f"PRAGMA max_page_count = {pages}")

        await anyio.to_thread.run_sync(cap)
        with pytest.raises(JournalError, match=r"disk is full.*is its disk full\?"):
            await journal.add_rows(reqs(2000))
        # The refused batch left nothing behind: all or nothing.
        assert [r.row_id for r in await journal.results()] == ids
