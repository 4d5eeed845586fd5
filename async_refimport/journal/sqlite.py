"""The journal in one SQLite file: :class:`SQLiteJournal`.

It implements every role of :mod:`async_refimport.journal.base` (and the optional outbox) with
these means:

* every write is one ``BEGIN IMMEDIATE`` transaction: atomic, and serialised with every other
  process's writes by SQLite's locking;
* a unique partial index allows at most one active (PENDING or RUNNING) job per store, so two
  processes sharing one file can never double-book a store;
* fencing is a look at the ``leases`` table inside the same transaction as the write;
* SQLite runs in WAL mode with ``synchronous=FULL``: a committed transaction survives kill -9 and
  power loss; the file is created with mode 0600 (see :mod:`~async_refimport.journal.sqlite_schema`).

All SQLite work happens on one dedicated worker thread (one connection, one writer), never on the
event loop, and every call is bounded in time (``timeout``): past it, SQLite is interrupted and the
call fails with :class:`~async_refimport.JournalError` rather than hold up a cancellation.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from async_refimport._errors import (
    FieldError,
    JournalError,
    StoreBookedError,
)
from async_refimport._models import ImportRequest, RowResult, RowState, StoreRef, quoted
from async_refimport.journal import sqlite_queries as q
from async_refimport.journal._common import (
    enum_of,
    holder_is_gone,
    store_of,
)
from async_refimport.journal.base import (
    FinalJobStatus,
    JobRecord,
    JobState,
    OutboxEntry,
    QueuedRow,
    Settlement,
)

# Kept importable here: the simulator's inline journal maps SQLite's errors the same way.
from async_refimport.journal.sqlite_schema import explain as _explain  # noqa: F401
from async_refimport.journal.sqlite_schema import lease_refused
from async_refimport.journal.sqlite_staging import SQLiteIntake


def default_journal_path() -> Path:
    """The journal a CLI or worker uses when none is named.

    Returns:
        ``$REFIMPORT_JOURNAL``, else ``$XDG_STATE_HOME/refimport/journal.sqlite``
        (``~/.local/state/refimport/journal.sqlite``).
    """
    explicit = os.environ.get("REFIMPORT_JOURNAL")
    if explicit:
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "refimport" / "journal.sqlite"


class SQLiteJournal(SQLiteIntake):
    """The journal in one SQLite file (WAL, synchronous=FULL, mode 0600).

    It keeps the optional staging role too (:class:`~async_refimport.journal.base.StagingQueue`,
    from :class:`~async_refimport.journal.sqlite_staging.SQLiteIntake`).

    Several processes may share one file: SQLite's locking serialises writers (each write is one
    ``BEGIN IMMEDIATE`` transaction) and the unique index on active jobs keeps stores single-booked.
    Every method keeps the guarantee its role Protocol states (:mod:`async_refimport.journal.base`).

    Args:
        path: The journal file; its directory is created (mode 0700) when missing.
        clock: Wall-clock seconds, injectable for tests.
        timeout: Seconds one journal call may take (waiting for another process's lock included)
            before it is interrupted and fails with :class:`JournalError`.
        read_only: Open an existing journal for reading only (``status``, ``report``): the file
            is never created, migrated or changed, and a file that is not a refimport journal
            is refused.
    """

    # -- intake ---------------------------------------------------------------------------------

    async def add_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]:
        """Journal requests as QUEUED rows, atomically (one transaction); idempotent per name.

        A name already journaled for the store keeps its row: a final IMPORTED/ALREADY_PRESENT row is
        returned as is (a re-run sends nothing new), a FAILED row is queued again with the new fields
        (a re-run retries failures), a queued or submitted row is left alone.

        Returns:
            One row id per request, in order.

        Raises:
            RequestValidationError: a name is already journaled for its store with another source
                file (nothing is added then).
            JournalError: the journal cannot be written.
        """
        return await self._add(requests, submission, staging=False)

    async def conflicts(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> list[FieldError]:
        """Read-only: what :meth:`add_rows` would refuse (a name journaled for its store with
        another source file); a run of many chunks checks them all before the first.

        Raises:
            JournalError: the journal cannot be read.
        """

        return await self._conflicts(requests)

    async def stores_with_work(self) -> list[StoreRef]:
        """Read-only: stores with queued rows or an unfinished job.

        Raises:
            JournalError: the journal cannot be read.
        """

        def query(conn: sqlite3.Connection) -> list[StoreRef]:
            keys = conn.execute(
                "SELECT DISTINCT store_key FROM rows WHERE state IN ('STAGING', 'QUEUED', 'SUBMITTED')"
                " UNION SELECT store_key FROM jobs WHERE state IN ('PENDING', 'RUNNING')"
            ).fetchall()
            return [store_of(k[0], "a row or job") for k in keys]

        return await self._run(query)

    async def queued_rows(self, store: StoreRef, limit: int) -> list[QueuedRow]:
        """Read-only: the oldest queued rows of a store that share one role ARN (one job has
        one role).

        Raises:
            JournalError: the journal cannot be read.
        """
        where = (
            "store_key = ?1 AND state = 'QUEUED' AND role_arn = ("
            "   SELECT role_arn FROM rows WHERE store_key = ?1 AND state = 'QUEUED'"
            "   ORDER BY id LIMIT 1)"
            " ORDER BY id LIMIT ?2"
        )
        return await self._run(lambda conn: q.queued_rows_of(conn, where, (store.key, limit)))

    async def queued_count(self, store: StoreRef) -> int:
        """Read-only: the store's queued rows (rows of an active job are SUBMITTED).

        Raises:
            JournalError: the journal cannot be read.
        """

        def query(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM rows WHERE store_key = ? AND state = 'QUEUED'", (store.key,)
            ).fetchone()
            return int(row[0])

        return await self._run(query)

    async def settle_queued(
        self,
        settlements: Sequence[Settlement],
        *,
        store: StoreRef | None = None,
        owner: str | None = None,
    ) -> None:
        """Settle queued rows without a job (name already present, or the store is unusable).

        Atomic with the lease check (one transaction), fenced by ``store``'s lease when ``owner``
        is given; idempotent (a row no longer queued keeps its state).

        Raises:
            ValueError: ``owner`` given without ``store``.
            LeaseLostError: ``owner`` does not hold ``store``'s lease.
            JournalError: the journal cannot be written.
        """
        now = self._clock()
        if owner is not None and store is None:
            raise ValueError("fencing by owner needs the store")

        def update(conn: sqlite3.Connection) -> None:
            if store is not None:
                self._check_lease(conn, store, owner)
            conn.executemany(
                "UPDATE rows SET state = ?, reference_id = ?, message = ?, md5 = ?, updated_at = ?"
                " WHERE id = ? AND state = 'QUEUED'",
                [
                    (s.state.value, s.reference_id, s.message, s.md5, now, s.row_id)
                    for s in settlements
                ],
            )

        await self._transaction(update)

    # -- jobs -----------------------------------------------------------------------------------

    async def begin_job(
        self,
        store: StoreRef,
        rows: Sequence[QueuedRow],
        client_token: str,
        owner: str | None = None,
    ) -> JobRecord:
        """Write a job ahead of its Start call: its token and rows, committed in one transaction.

        Fenced when ``owner`` is given: the job is only written while no other owner holds a live
        lease on the store. Not idempotent (the store is booked by the first call).

        Raises:
            ValueError: ``rows`` is empty.
            StoreBookedError: the store already has an active job (possibly another process's).
            LeaseLostError: another owner holds the store's lease.
            JournalError: a row is no longer queued, or the journal cannot be written.
        """
        if not rows:
            raise ValueError("a job needs at least one row")
        now = self._clock()
        role_arn = rows[0].role_arn

        def begin(conn: sqlite3.Connection) -> int:
            if owner is not None and (
                refused := lease_refused(conn, store, owner, live_only=True, now=now)
            ):
                raise refused
            try:
                cur = conn.execute(
                    "INSERT INTO jobs (store_key, client_token, role_arn, state, written_at)"
                    " VALUES (?, ?, ?, 'PENDING', ?)",
                    (store.key, client_token, role_arn, now),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreBookedError(
                    f"store {store} already has an active job", store_key=store.key
                ) from exc
            job = cur.lastrowid
            assert job is not None
            changed = conn.executemany(
                "UPDATE rows SET state = 'SUBMITTED', job = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ? AND state = 'QUEUED'",
                [(job, now, r.row_id) for r in rows],
            ).rowcount
            if changed != len(rows):
                raise JournalError(f"store {store}: {len(rows) - changed} row(s) were not queued")
            return job

        job = await self._transaction(begin)
        return JobRecord(
            id=job,
            store=store,
            client_token=client_token,
            role_arn=role_arn,
            state=JobState.PENDING,
            written_at=now,
            rows=tuple(rows),
        )

    async def record_job_id(
        self, job: JobRecord, job_id: str, *, owner: str | None = None
    ) -> JobRecord:
        """Record the service's job id of a PENDING job, making it RUNNING; atomic with the lease
        check, fenced by the store's lease when ``owner`` is given.

        Raises:
            LeaseLostError: ``owner`` no longer holds the store's lease.
            JournalError: the job is no longer pending (taken over), or the journal cannot be
                written.
        """
        now = self._clock()

        def record(conn: sqlite3.Connection) -> None:
            self._check_lease(conn, job.store, owner)
            changed = conn.execute(
                "UPDATE jobs SET job_id = ?, state = 'RUNNING', started_at = ?"
                " WHERE id = ? AND state = 'PENDING'",
                (job_id, now, job.id),
            ).rowcount
            if changed != 1:
                raise JournalError(f"job {job.client_token} is no longer pending (taken over?)")

        await self._transaction(record)
        return JobRecord(
            id=job.id,
            store=job.store,
            client_token=job.client_token,
            role_arn=job.role_arn,
            state=JobState.RUNNING,
            written_at=job.written_at,
            job_id=job_id,
            started_at=now,
            rows=job.rows,
        )

    async def finish_job(
        self,
        job: JobRecord,
        settlements: Sequence[Settlement],
        *,
        status: FinalJobStatus | str,
        message: str | None = None,
        requeue: Sequence[int] = (),
        max_attempts: int = 3,
        owner: str | None = None,
    ) -> list[RowResult]:
        """Settle a job's rows and close the job, atomically (one transaction), fenced by the
        store's lease when ``owner`` is given; idempotent (a DONE job keeps its verdict).

        Rows in ``requeue`` go back to QUEUED unless they have had ``max_attempts`` jobs already, in
        which case they fail with ``message``.

        Returns:
            The rows' results after the change.

        Raises:
            LeaseLostError: ``owner`` no longer holds the store's lease.
            JournalError: the journal cannot be written.
        """
        now = self._clock()
        status = str(status)
        results_sql = q.RESULTS + " WHERE rows.job = ?"

        def finish(conn: sqlite3.Connection) -> list[RowResult]:
            self._check_lease(conn, job.store, owner)
            state = conn.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if state is None or state[0] != JobState.DONE:
                settle(conn)
            # Settled already (by another process that took the store over): keep its verdict.
            return [q.row_result(r) for r in conn.execute(results_sql, (job.id,))]

        def settle(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE rows SET state = ?, reference_id = ?, message = ?, md5 = ?, updated_at = ?"
                " WHERE id = ? AND job = ?",
                [
                    (s.state.value, s.reference_id, s.message, s.md5, now, s.row_id, job.id)
                    for s in settlements
                ],
            )
            for row_id in requeue:
                conn.execute(
                    "UPDATE rows SET state = CASE WHEN attempts >= ?1 THEN 'FAILED' ELSE 'QUEUED' END,"
                    " message = ?2, updated_at = ?3 WHERE id = ?4 AND job = ?5",
                    (max_attempts, message or f"job ended {status}", now, row_id, job.id),
                )
            conn.execute(
                "UPDATE jobs SET state = 'DONE', status = ?, message = ?, finished_at = ?"
                " WHERE id = ?",
                (status, message, now, job.id),
            )

        return await self._transaction(finish)

    async def unfinished_jobs(self, store: StoreRef) -> list[JobRecord]:
        """Read-only: the store's PENDING or RUNNING jobs with their rows, oldest first.

        Raises:
            JournalError: the journal cannot be read.
        """

        def query(conn: sqlite3.Connection) -> list[JobRecord]:
            jobs = conn.execute(
                "SELECT id FROM jobs WHERE store_key = ? AND state IN ('PENDING', 'RUNNING')"
                " ORDER BY id",
                (store.key,),
            ).fetchall()
            return [q.job_record(conn, j[0]) for j in jobs]

        return await self._run(query)

    async def known_job_ids(self, store: StoreRef) -> set[str]:
        """Read-only: job ids the journal already holds for a store (a lookup must not adopt
        them twice).

        Raises:
            JournalError: the journal cannot be read.
        """

        def query(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "SELECT job_id FROM jobs WHERE store_key = ? AND job_id IS NOT NULL", (store.key,)
            ).fetchall()
            return {r[0] for r in rows}

        return await self._run(query)

    # -- reading --------------------------------------------------------------------------------

    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]:
        """Read-only: rows' current results, the given ids in order, or every row.

        Raises:
            JournalError: the journal cannot be read.
        """
        return await self._run(lambda conn: q.results_of(conn, row_ids))

    async def iter_results(self, page: int = 1000) -> AsyncIterator[list[RowResult]]:
        """Read-only: every row, oldest first (the order of ``results()``), ``page`` at a time:
        what a report or a status of 10^6 rows reads without holding them.

        Raises:
            JournalError: the journal cannot be read.
        """
        after = 0
        sql = q.RESULTS + " WHERE rows.id > ? ORDER BY rows.id LIMIT ?"
        while True:

            def query(conn: sqlite3.Connection, after: int = after) -> list[RowResult]:
                return [q.row_result(r) for r in conn.execute(sql, (after, page))]

            rows = await self._run(query)
            if not rows:
                return
            yield rows
            after = rows[-1].row_id

    async def jobs(self, store: StoreRef | None = None) -> list[JobRecord]:
        """Read-only: every job (without its rows), oldest first.

        Raises:
            JournalError: the journal cannot be read.
        """

        def query(conn: sqlite3.Connection) -> list[JobRecord]:
            if store is None:
                ids = conn.execute("SELECT id FROM jobs ORDER BY id").fetchall()
            else:
                ids = conn.execute(
                    "SELECT id FROM jobs WHERE store_key = ? ORDER BY id", (store.key,)
                ).fetchall()
            return [q.job_record(conn, i[0], with_rows=False) for i in ids]

        return await self._run(query)

    async def counts(self) -> dict[StoreRef, dict[RowState, int]]:
        """Read-only: rows per store and state.

        Raises:
            JournalError: the journal cannot be read.
        """

        def query(conn: sqlite3.Connection) -> dict[StoreRef, dict[RowState, int]]:
            out: dict[StoreRef, dict[RowState, int]] = {}
            for key, state, n in conn.execute(
                "SELECT store_key, state, count(*) FROM rows GROUP BY store_key, state"
            ):
                try:
                    store = store_of(key, "a row")
                    row_state = enum_of(RowState, state, "a row", "state")
                except JournalError:
                    # Named as a row: the first with this key and state says which is wrong.
                    row_id, name = conn.execute(
                        "SELECT id, name FROM rows WHERE store_key IS ? AND state IS ? LIMIT 1",
                        (key, state),
                    ).fetchone()
                    where = f"row {row_id} ({quoted(str(name))})"
                    store_of(key, where)
                    enum_of(RowState, state, where, "state")
                    raise
                out.setdefault(store, {})[row_state] = n
            return out

        return await self._run(query)

    # -- several processes, long runs -----------------------------------------------------------

    async def acquire_lease(self, store: StoreRef, owner: str, ttl: float) -> bool:
        """Take or renew the right to drive ``store`` for ``ttl`` seconds; atomic (one
        transaction), idempotent for the holder.

        Returns:
            True if ``owner`` holds the lease now, False if another owner holds it.

        Raises:
            JournalError: the journal cannot be written.
        """
        now = self._clock()

        def take(conn: sqlite3.Connection) -> bool:
            held = conn.execute(
                "SELECT owner, expires_at FROM leases WHERE store_key = ?", (store.key,)
            ).fetchone()
            if held is not None and held[0] != owner and held[1] >= now and holder_is_gone(held[0]):
                # The holder was a process on this host that no longer exists (kill -9): its
                # lease cannot be renewed, so waiting for it to lapse would only idle the store.
                conn.execute("DELETE FROM leases WHERE store_key = ?", (store.key,))
            cur = conn.execute(
                "INSERT INTO leases (store_key, owner, expires_at) VALUES (?1, ?2, ?3)"
                " ON CONFLICT (store_key) DO UPDATE SET owner = ?2, expires_at = ?3"
                " WHERE leases.owner = ?2 OR leases.expires_at < ?4",
                (store.key, owner, now + ttl, now),
            )
            return cur.rowcount == 1

        return await self._transaction(take)

    async def lease_holder(self, store: StoreRef) -> tuple[str, float] | None:
        """Read-only: who holds the store's lease and until when (epoch seconds), if anyone.

        Raises:
            JournalError: the journal cannot be read.
        """

        def query(conn: sqlite3.Connection) -> tuple[str, float] | None:
            row = conn.execute(
                "SELECT owner, expires_at FROM leases WHERE store_key = ?", (store.key,)
            ).fetchone()
            return (str(row[0]), float(row[1])) if row is not None else None

        return await self._run(query)

    async def release_lease(self, store: StoreRef, owner: str) -> None:
        """Give up ``owner``'s lease on ``store``; atomic and idempotent (another owner's lease
        is left alone).

        Raises:
            JournalError: the journal cannot be written.
        """

        def release(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM leases WHERE store_key = ? AND owner = ?", (store.key, owner))

        await self._transaction(release)

    async def compact(self, older_than: float) -> int:
        """Forget final rows and finished jobs settled before ``older_than`` (epoch seconds),
        and sent result documents; atomic (one transaction) and idempotent.

        Returns:
            The number of rows forgotten.

        Raises:
            JournalError: the journal cannot be written.
        """

        def purge(conn: sqlite3.Connection) -> int:
            n = conn.execute(
                "DELETE FROM rows WHERE state IN ('IMPORTED', 'ALREADY_PRESENT', 'FAILED')"
                " AND updated_at < ?",
                (older_than,),
            ).rowcount
            conn.execute("DELETE FROM outbox WHERE sent_at < ?", (older_than,))
            conn.execute(
                "DELETE FROM jobs WHERE state = 'DONE' AND finished_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM rows WHERE rows.job = jobs.id)",
                (older_than,),
            )
            return int(n)

        return await self._transaction(purge)

    # -- result documents owed to submitters ------------------------------------------------------

    async def add_outbox(self, submission: str, reply_to: str, row_ids: Sequence[int]) -> None:
        """Owe ``reply_to`` one result document for ``submission`` once its rows are final.

        Atomic and idempotent: a submission already owed (a redelivered message) keeps its first
        entry.

        Raises:
            JournalError: the journal cannot be written.
        """
        now = self._clock()
        ids = json.dumps(list(row_ids))

        def add(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO outbox (submission, reply_to, row_ids, created_at)"
                " VALUES (?, ?, ?, ?)",
                (submission, reply_to, ids, now),
            )

        await self._transaction(add)

    async def due_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """Read-only: unsent result documents whose rows are all final (or forgotten by
        compaction), oldest first.

        Raises:
            JournalError: the journal cannot be read.
        """
        return await self._run(lambda conn: q.due_entries(conn, limit))

    async def close_outbox(self, submission: str) -> bool:
        """Mark a result document sent; atomic and idempotent.

        Returns:
            True if this call marked it, False if it was already (by another process).

        Raises:
            JournalError: the journal cannot be written.
        """
        now = self._clock()

        def close(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE outbox SET sent_at = ? WHERE submission = ? AND sent_at IS NULL",
                (now, submission),
            )
            return cur.rowcount == 1

        return await self._transaction(close)
