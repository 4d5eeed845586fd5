"""The real SQLite journal with its statements run inline, on the event loop.

:class:`~async_refimport.SQLiteJournal` runs each statement in a worker thread
(``anyio.to_thread``) under a watchdog timer: which thread finishes first would make a history
depend on real time. :class:`InlineJournal` runs the very same functions (the same SQL, the same
``BEGIN IMMEDIATE`` transactions, the same error mapping) directly instead. What differs:

* no thread and no watchdog (``timeout`` never fires: nothing can hold a lock across an await,
  since each call runs to completion before the loop goes on);
* ``open``/``close`` call ``_connect`` and ``conn.close`` inline too;
* before each call it waits while its process is paused (SIGSTOP), and once its process is
  killed every call fails (the connection is closed at the instant of the kill, as the kernel
  would close it: what was committed stays, nothing else ran);
* after each call that changed the file, the world checks the journal's consistency (invariant 5).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio

from ._engine_imports import (
    JournalError,
    LeaseLostError,
    SQLiteJournal,
    StoreBookedError,
    explain_sqlite_error,
)

if TYPE_CHECKING:
    from .world import SimProcess

_T = TypeVar("_T")


class InlineJournal(SQLiteJournal):
    """:class:`SQLiteJournal` without its worker thread (see the module's docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        process: SimProcess,
        clock: Callable[[], float],
        after_write: Callable[[sqlite3.Connection, str], None],
    ) -> None:
        super().__init__(path, clock=clock)
        self._process = process
        self._after_write = after_write

    async def open(self) -> None:
        if self._conn is not None:
            return
        self._process.check_alive()
        self._conn = self._connect()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def sever(self) -> None:
        """kill -9: the connection goes, nothing uncommitted survives, no clean-up runs."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if conn.in_transaction:  # never true: calls run to completion, but be explicit
                conn.rollback()
            conn.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        # As the original: shielded, so a cancelled caller never leaves half a transaction.
        with anyio.CancelScope(shield=True):
            await self._process.unpaused()
        conn = self._conn
        if conn is None or self._process.dead:
            raise JournalError(f"journal {self.path} is not open")
        before = conn.total_changes
        self._check_file()
        try:
            result = fn(conn)
        except (StoreBookedError, LeaseLostError) as exc:
            if conn.in_transaction:
                conn.rollback()
            self._process.world.journal_refused(self._process, exc)
            raise
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise JournalError(f"journal {self.path}: {explain_sqlite_error(exc)}") from exc
        if conn.total_changes != before:
            self._after_write(conn, self._process.name)
        return result
