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

import contextvars
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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
_writing: contextvars.ContextVar[str | None] = contextvars.ContextVar("sim_writing", default=None)


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

    # -- the writes that matter, in the history ---------------------------------------------------
    # (Wrapped with *args: the journal's signatures are the engine's; these only watch.)

    async def _writes(self, what: str, call: Any) -> Any:
        token = _writing.set(what)
        try:
            return await call
        finally:
            _writing.reset(token)

    async def add_rows(self, *args: Any, **kwargs: Any) -> Any:
        ids = await self._writes("add_rows", super().add_rows(*args, **kwargs))
        self._say(f"journal: {len(ids)} row(s) added or kept")
        return ids

    async def settle_queued(self, *args: Any, **kwargs: Any) -> Any:
        settlements = args[0] if args else kwargs["settlements"]
        await self._writes("settle_queued", super().settle_queued(*args, **kwargs))
        rows = ", ".join(f"#{s.row_id} {s.state}" for s in settlements)
        self._say(f"journal: settled before any job: {rows}")

    async def begin_job(self, *args: Any, **kwargs: Any) -> Any:
        job = await self._writes("begin_job", super().begin_job(*args, **kwargs))
        names = ",".join(r.name for r in job.rows)
        self._say(f"journal: job #{job.id} written ahead, token {job.client_token[:8]}: [{names}]")
        return job

    async def record_job_id(self, *args: Any, **kwargs: Any) -> Any:
        job = await self._writes("record_job_id", super().record_job_id(*args, **kwargs))
        self._say(f"journal: job #{job.id} is service job {job.job_id}")
        self._process.world.job_journaled(job.job_id)
        return job

    async def finish_job(self, *args: Any, **kwargs: Any) -> Any:
        results = await self._writes("finish_job", super().finish_job(*args, **kwargs))
        job = args[0] if args else kwargs["job"]
        rows = ", ".join(f"{r.name} {r.state}" for r in results)
        self._say(f"journal: job #{job.id} ({job.job_id}) {kwargs.get('status')}: {rows}")
        self._process.world.job_settled(job.job_id, str(kwargs.get("status")))
        return results

    def _say(self, text: str) -> None:
        self._process.world.log(self._process.name, text)

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        # As the original: shielded, so a cancelled caller never leaves half a transaction.
        with anyio.CancelScope(shield=True):
            if _writing.get() is not None:
                # SIGSTOP may be drawn to land just before a write (the fencing's test).
                self._process.world.before_write(self._process, _writing.get() or "")
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
