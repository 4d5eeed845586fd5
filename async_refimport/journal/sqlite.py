"""The journal: the single, durable source of truth about every row and every import job.

The :class:`Journal` protocol is the seam the engine writes through; :class:`SQLiteJournal` keeps it
in one local file, :class:`~async_refimport.DynamoJournal` in a DynamoDB table a fleet shares
(``resolve_journal`` picks one from what a user names: a path or ``dynamodb://TABLE``). The contract
suite in ``tests/journal`` runs on both, so they cannot drift.

Durability rules (the "write ahead" principle of ``docs/architecture.md``):

* a job's rows and clientToken are committed (``begin_job``) *before* StartReferenceImportJob is sent,
  and its job id (``record_job_id``) right after the service answered;
* a unique partial index allows at most one active (PENDING or RUNNING) job per store, so two
  processes sharing one journal file can never double-book a store;
* writes that change a store's rows or jobs are fenced by the store's lease (``owner``): a process
  that lost the lease has them refused (:class:`~async_refimport.LeaseLostError`);
* SQLite runs in WAL mode with ``synchronous=FULL``: a committed transaction survives kill -9 and
  power loss; the file is created with mode 0600 (it names buckets, roles and stores).

All SQLite work happens on one dedicated worker thread (one connection, one writer), never on the
event loop, and every call is bounded in time (``timeout``): past it, SQLite is interrupted and the
call fails with :class:`~async_refimport.JournalError` rather than hold up a cancellation.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from async_refimport._errors import (
    FieldError,
    JournalError,
    LeaseLostError,
    RequestValidationError,
    StoreBookedError,
)
from async_refimport._models import ImportRequest, RowResult, RowState, StoreRef

SCHEMA_VERSION = 1
_T = TypeVar("_T")


class JobState(StrEnum):
    """A job as the journal sees it.

    PENDING: written ahead, no job id known yet (Start not sent, in flight, or lost in a crash).
    RUNNING: the service gave a job id; the job may still be running.
    DONE: settled; every row of it is final or requeued.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"


@dataclass(frozen=True, slots=True)
class QueuedRow:
    """A row as a lane needs it to build a StartReferenceImportJob source."""

    row_id: int
    name: str
    source_file: str
    role_arn: str
    description: str | None
    tags: Mapping[str, str]
    attempts: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One import job, from its write-ahead on."""

    id: int
    store: StoreRef
    client_token: str
    role_arn: str
    state: JobState
    written_at: float
    job_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    status: str | None = None
    message: str | None = None
    rows: tuple[QueuedRow, ...] = ()


@dataclass(frozen=True, slots=True)
class Settlement:
    """What happened to one row of a finished job."""

    row_id: int
    state: RowState
    reference_id: str | None = None
    message: str | None = None
    md5: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A result document owed to a submitter once every row of its submission is final."""

    submission: str
    reply_to: str
    row_ids: tuple[int, ...]


class Journal(Protocol):
    """What the engine needs from durable storage.

    Fencing: the writes that change a store's rows or jobs (``begin_job``, ``record_job_id``,
    ``finish_job``, ``settle_queued``) take the caller's lease ``owner``; given one, the journal
    refuses the write with :class:`LeaseLostError` unless that owner still holds the store's lease.
    ``begin_job`` raises :class:`StoreBookedError` when the store already has an active job.
    """

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def add_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]: ...
    async def conflicts(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> list[FieldError]: ...
    async def stores_with_work(self) -> list[StoreRef]: ...
    async def queued_rows(self, store: StoreRef, limit: int) -> list[QueuedRow]: ...
    async def queued_count(self, store: StoreRef) -> int: ...
    async def settle_queued(
        self,
        settlements: Sequence[Settlement],
        *,
        store: StoreRef | None = None,
        owner: str | None = None,
    ) -> None: ...
    async def begin_job(
        self,
        store: StoreRef,
        rows: Sequence[QueuedRow],
        client_token: str,
        owner: str | None = None,
    ) -> JobRecord: ...
    async def record_job_id(
        self, job: JobRecord, job_id: str, *, owner: str | None = None
    ) -> JobRecord: ...
    async def finish_job(
        self,
        job: JobRecord,
        settlements: Sequence[Settlement],
        *,
        status: str,
        message: str | None = None,
        requeue: Sequence[int] = (),
        max_attempts: int = 3,
        owner: str | None = None,
    ) -> list[RowResult]: ...
    async def unfinished_jobs(self, store: StoreRef) -> list[JobRecord]: ...
    async def known_job_ids(self, store: StoreRef) -> set[str]: ...
    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]: ...
    def iter_results(self, page: int = 1000) -> AsyncIterator[list[RowResult]]: ...
    async def jobs(self, store: StoreRef | None = None) -> list[JobRecord]: ...
    async def counts(self) -> dict[StoreRef, dict[RowState, int]]: ...
    async def acquire_lease(self, store: StoreRef, owner: str, ttl: float) -> bool: ...
    async def release_lease(self, store: StoreRef, owner: str) -> None: ...
    async def lease_holder(self, store: StoreRef) -> tuple[str, float] | None: ...
    async def compact(self, older_than: float) -> int: ...
    async def add_outbox(self, submission: str, reply_to: str, row_ids: Sequence[int]) -> None: ...
    async def due_outbox(self, limit: int = 100) -> list[OutboxEntry]: ...
    async def close_outbox(self, submission: str) -> bool: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    store_key TEXT NOT NULL,
    client_token TEXT NOT NULL UNIQUE,
    role_arn TEXT NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    written_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    status TEXT,
    message TEXT
);
-- At most one active job per store, whichever process asks: the journal's own guard against
-- double-booking a store.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active_per_store
    ON jobs (store_key) WHERE state IN ('PENDING', 'RUNNING');
CREATE TABLE IF NOT EXISTS rows (
    id INTEGER PRIMARY KEY,
    store_key TEXT NOT NULL,
    name TEXT NOT NULL,
    source_file TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    description TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    job INTEGER REFERENCES jobs (id),
    reference_id TEXT,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    md5 TEXT,
    submission TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (store_key, name)
);
CREATE INDEX IF NOT EXISTS rows_by_store_state ON rows (store_key, state, id);
CREATE INDEX IF NOT EXISTS rows_by_job ON rows (job);
CREATE TABLE IF NOT EXISTS leases (
    store_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    submission TEXT PRIMARY KEY,
    reply_to TEXT NOT NULL,
    row_ids TEXT NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;
"""

_ROW_COLUMNS = (
    "rows.id, rows.store_key, rows.name, rows.source_file, rows.state, rows.reference_id, "
    "jobs.job_id, rows.message, rows.attempts, rows.md5"
)


def _has_md5_column(conn: sqlite3.Connection) -> bool:
    return any(c[1] == "md5" for c in conn.execute("PRAGMA main.table_info(rows)"))


def _add_md5_column(conn: sqlite3.Connection) -> None:
    """Journals written before rows had an md5 get the column (NULL: not known); nothing else
    changes, so an older refimport still reads the file."""
    if _has_md5_column(conn):
        return
    try:
        conn.execute("ALTER TABLE rows ADD COLUMN md5 TEXT")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):  # another process added it just now
            raise


def _row_result(r: sqlite3.Row) -> RowResult:
    store = StoreRef.from_key(r[1])
    return RowResult(
        row_id=r[0],
        store_id=store.store_id,
        region=store.region,
        name=r[2],
        source_file=r[3],
        state=RowState(r[4]),
        reference_id=r[5],
        job_id=r[6],
        message=r[7],
        attempts=r[8],
        md5=r[9],
    )


def _queued_row(r: sqlite3.Row) -> QueuedRow:
    return QueuedRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6])


def source_conflict(
    store: StoreRef, request: ImportRequest, state: str, source_file: str | None
) -> FieldError | None:
    """The problem with journaling ``request`` when its name is journaled for ``store`` already,
    in ``state`` from ``source_file``: a name is one genome, so another source is refused unless
    the row failed (a re-run retries failures with the new fields)."""
    if state == RowState.FAILED or source_file == request.source_file:
        return None
    shown = "present" if state == RowState.ALREADY_PRESENT else str(state).lower()
    return FieldError(
        "source_file",
        f"{request.name!r} is already {shown} in store {store.store_id} from {source_file}",
        row_name=request.name,
    )


def default_journal_path() -> Path:
    """``$REFIMPORT_JOURNAL``, else ``$XDG_STATE_HOME/refimport/journal.sqlite``
    (``~/.local/state/refimport/journal.sqlite``)."""
    explicit = os.environ.get("REFIMPORT_JOURNAL")
    if explicit:
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "refimport" / "journal.sqlite"


class SQLiteJournal:
    """The journal in one SQLite file (WAL, synchronous=FULL, mode 0600).

    Several processes may share one file: SQLite's locking serialises writers (each write is one
    ``BEGIN IMMEDIATE`` transaction) and the unique index on active jobs keeps stores single-booked.

    Args:
        path: The journal file; its directory is created (mode 0700) when missing.
        clock: Wall-clock seconds, injectable for tests.
        timeout: Seconds one journal call may take (waiting for another process's lock included)
            before it is interrupted and fails with :class:`JournalError`.
        read_only: Open an existing journal for reading only (``status``, ``report``): the file
            is never created, migrated or changed, and a file that is not a refimport journal
            is refused.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 60.0,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._timeout = timeout
        self._read_only = read_only
        self._inode: int | None = None
        self._conn: sqlite3.Connection | None = None
        # One connection used from one thread at a time: SQLite's single writer, off the event loop.
        self._limiter = anyio.CapacityLimiter(1)

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._conn
        if conn is None:
            raise JournalError(f"journal {self.path} is not open")

        def call() -> _T:
            self._check_file()
            try:
                return fn(conn)
            except (StoreBookedError, LeaseLostError):
                if conn.in_transaction:
                    conn.rollback()
                raise
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.rollback()
                raise JournalError(f"journal {self.path}: {_explain(exc)}") from exc

        def bounded() -> _T:
            # The shield below is bounded by this: a call that outlives its time limit (a locked
            # or stalled journal) is interrupted, rolled back, and raises JournalError.
            watchdog = threading.Timer(self._timeout, conn.interrupt)
            watchdog.start()
            try:
                return call()
            finally:
                watchdog.cancel()

        # Shielded: a cancelled caller must not leave a transaction half-applied on the connection.
        with anyio.CancelScope(shield=True):
            result = await anyio.to_thread.run_sync(bounded, limiter=self._limiter)
        return result

    def _check_file(self) -> None:
        """Refuse to go on with a journal whose file was deleted or replaced while open: its
        writes would land in an unlinked inode that no later run could read."""
        if self._inode is None:
            return
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            inode = None
        if inode != self._inode:
            raise JournalError(
                f"journal {self.path} was deleted or replaced while in use; stopping so that "
                "nothing is recorded where no later run could find it"
            )

    def _write(self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._read_only:
            raise JournalError(f"journal {self.path} is open for reading only")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result

    @staticmethod
    def _check_lease(conn: sqlite3.Connection, store: StoreRef, owner: str | None) -> None:
        """Fencing: refuse a write for ``store`` unless ``owner`` holds its lease."""
        if owner is None:
            return
        lease = conn.execute(
            "SELECT owner FROM leases WHERE store_key = ?", (store.key,)
        ).fetchone()
        if lease is None or lease[0] != owner:
            holder = lease[0] if lease is not None else "nobody"
            raise LeaseLostError(
                f"store {store}: the lease is held by {holder}, not {owner}",
                store_key=store.key,
                owner=owner,
            )

    async def __aenter__(self) -> SQLiteJournal:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._conn is not None:
            return
        self._conn = await anyio.to_thread.run_sync(self._connect, limiter=self._limiter)

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            return self._connect_read_only()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                # Create it 0600 before SQLite opens it: it names buckets, roles and stores.
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            # Waiting for another process's lock counts against the call's bound.
            wait = min(self._timeout, 30.0)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=wait
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            self._migrate(conn)
            self._inode = self.path.stat().st_ino
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise JournalError(f"no journal at {self.path}")
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
            )
            conn.execute("PRAGMA busy_timeout=30000")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if not {"meta", "rows", "jobs"} <= tables:
                conn.close()
                raise JournalError(f"{self.path} is not a refimport journal")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path} is not a refimport journal ({exc})") from exc
        if row is None or int(row[0]) > SCHEMA_VERSION:
            conn.close()
            raise JournalError(
                f"journal {self.path} has schema {row[0] if row else '?'}, which this version "
                f"does not understand ({SCHEMA_VERSION}); upgrade async-refimport"
            )
        if not _has_md5_column(conn):
            # A journal written before rows had an md5, opened read-only (it cannot be migrated):
            # a temporary view of the same name, searched before the file's own tables, adds the
            # column as NULL for this connection only; the file is not touched.
            conn.execute("CREATE TEMP VIEW rows AS SELECT *, NULL AS md5 FROM main.rows")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # One script, one transaction: two processes creating a fresh journal at once both succeed.
        conn.executescript(
            "BEGIN IMMEDIATE;"
            + _SCHEMA
            + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
            + "COMMIT;"
        )
        _add_md5_column(conn)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if int(row[0]) > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema {row[0]}, newer than this version "
                f"understands ({SCHEMA_VERSION}); upgrade async-refimport"
            )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)

    # -- intake ---------------------------------------------------------------------------------

    async def add_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]:
        """Journal requests as QUEUED rows; returns one row id per request, in order.

        A name already journaled for the store keeps its row: a final IMPORTED/ALREADY_PRESENT row is
        returned as is (a re-run sends nothing new), a FAILED row is queued again with the new fields
        (a re-run retries failures), a queued or submitted row is left alone.

        Raises:
            RequestValidationError: a name is already journaled for its store with another source
                file (nothing is added then).
        """
        now = self._clock()

        def add(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            conflicts: list[FieldError] = []
            for store, req in requests:
                tags = json.dumps(dict(req.tags), sort_keys=True)
                found = conn.execute(
                    "SELECT id, state, source_file FROM rows WHERE store_key = ? AND name = ?",
                    (store.key, req.name),
                ).fetchone()
                if found is None:
                    cur = conn.execute(
                        "INSERT INTO rows (store_key, name, source_file, role_arn, description, tags,"
                        " state, submission, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, 'QUEUED', ?, ?, ?)",
                        (
                            store.key,
                            req.name,
                            req.source_file,
                            req.role_arn,
                            req.description,
                            tags,
                            submission,
                            now,
                            now,
                        ),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                    continue
                row_id, state, source_file = found
                if (conflict := source_conflict(store, req, state, source_file)) is not None:
                    conflicts.append(conflict)
                elif state == RowState.FAILED:
                    conn.execute(
                        "UPDATE rows SET source_file = ?, role_arn = ?, description = ?, tags = ?,"
                        " state = 'QUEUED', job = NULL, message = NULL, reference_id = NULL, md5 = NULL,"
                        " attempts = 0, submission = ?, updated_at = ? WHERE id = ?",
                        (
                            req.source_file,
                            req.role_arn,
                            req.description,
                            tags,
                            submission,
                            now,
                            row_id,
                        ),
                    )
                ids.append(row_id)
            if conflicts:
                raise RequestValidationError(conflicts)
            return ids

        return await self._run(lambda conn: self._write(conn, add))

    async def conflicts(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> list[FieldError]:
        """What :meth:`add_rows` would refuse (a name journaled for its store with another
        source file), writing nothing: a run of many chunks checks them all before the first."""

        def query(conn: sqlite3.Connection) -> list[FieldError]:
            out = []
            for store, req in requests:
                found = conn.execute(
                    "SELECT state, source_file FROM rows WHERE store_key = ? AND name = ?",
                    (store.key, req.name),
                ).fetchone()
                if found and (conflict := source_conflict(store, req, *found)) is not None:
                    out.append(conflict)
            return out

        return await self._run(query)

    async def stores_with_work(self) -> list[StoreRef]:
        """Stores with queued rows or an unfinished job."""

        def query(conn: sqlite3.Connection) -> list[StoreRef]:
            keys = conn.execute(
                "SELECT DISTINCT store_key FROM rows WHERE state IN ('QUEUED', 'SUBMITTED')"
                " UNION SELECT store_key FROM jobs WHERE state IN ('PENDING', 'RUNNING')"
            ).fetchall()
            return [StoreRef.from_key(k[0]) for k in keys]

        return await self._run(query)

    async def queued_rows(self, store: StoreRef, limit: int) -> list[QueuedRow]:
        """The oldest queued rows of a store that share one role ARN (one job has one role)."""

        def query(conn: sqlite3.Connection) -> list[QueuedRow]:
            rows = conn.execute(
                "SELECT id, name, source_file, role_arn, description, tags, attempts FROM rows"
                " WHERE store_key = ?1 AND state = 'QUEUED' AND role_arn = ("
                "   SELECT role_arn FROM rows WHERE store_key = ?1 AND state = 'QUEUED'"
                "   ORDER BY id LIMIT 1)"
                " ORDER BY id LIMIT ?2",
                (store.key, limit),
            ).fetchall()
            return [_queued_row(r) for r in rows]

        return await self._run(query)

    async def queued_count(self, store: StoreRef) -> int:
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
        """Settle queued rows without a job (name already present, or the store is unusable)."""
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

        await self._run(lambda conn: self._write(conn, update))

    # -- jobs -----------------------------------------------------------------------------------

    async def begin_job(
        self,
        store: StoreRef,
        rows: Sequence[QueuedRow],
        client_token: str,
        owner: str | None = None,
    ) -> JobRecord:
        """Write a job ahead of its Start call: its token and rows, committed.

        Args:
            owner: When given, the job is only written while ``owner`` holds the store's lease.

        Raises:
            StoreBookedError: the store already has an active job (possibly another process's).
            LeaseLostError: another owner holds the store's lease.
            JournalError: a row is no longer queued, or the journal cannot be written.
        """
        if not rows:
            raise ValueError("a job needs at least one row")
        now = self._clock()
        role_arn = rows[0].role_arn

        def begin(conn: sqlite3.Connection) -> JobRecord:
            if owner is not None:
                lease = conn.execute(
                    "SELECT owner, expires_at FROM leases WHERE store_key = ?", (store.key,)
                ).fetchone()
                if lease is not None and lease[0] != owner and lease[1] >= now:
                    raise LeaseLostError(
                        f"store {store} is leased by {lease[0]}", store_key=store.key, owner=owner
                    )
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
            return JobRecord(
                id=job,
                store=store,
                client_token=client_token,
                role_arn=role_arn,
                state=JobState.PENDING,
                written_at=now,
                rows=tuple(rows),
            )

        return await self._run(lambda conn: self._write(conn, begin))

    async def record_job_id(
        self, job: JobRecord, job_id: str, *, owner: str | None = None
    ) -> JobRecord:
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

        await self._run(lambda conn: self._write(conn, record))
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
        status: str,
        message: str | None = None,
        requeue: Sequence[int] = (),
        max_attempts: int = 3,
        owner: str | None = None,
    ) -> list[RowResult]:
        """Settle a job's rows and close the job, in one transaction.

        Rows in ``requeue`` go back to QUEUED unless they have had ``max_attempts`` jobs already, in
        which case they fail with ``message``. Returns the rows' results after the change.
        """
        now = self._clock()

        def finish(conn: sqlite3.Connection) -> list[RowResult]:
            self._check_lease(conn, job.store, owner)
            state = conn.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if state is not None and state[0] == JobState.DONE:
                # Settled already (by another process that took the store over): keep its verdict.
                return results_of_job(conn)
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
            return results_of_job(conn)

        def results_of_job(conn: sqlite3.Connection) -> list[RowResult]:
            rows = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM rows LEFT JOIN jobs ON rows.job = jobs.id"
                " WHERE rows.job = ?",
                (job.id,),
            ).fetchall()
            return [_row_result(r) for r in rows]

        return await self._run(lambda conn: self._write(conn, finish))

    async def unfinished_jobs(self, store: StoreRef) -> list[JobRecord]:
        def query(conn: sqlite3.Connection) -> list[JobRecord]:
            jobs = conn.execute(
                "SELECT id FROM jobs WHERE store_key = ? AND state IN ('PENDING', 'RUNNING')"
                " ORDER BY id",
                (store.key,),
            ).fetchall()
            return [self._job(conn, j[0]) for j in jobs]

        return await self._run(query)

    async def known_job_ids(self, store: StoreRef) -> set[str]:
        """Job ids the journal already holds for a store (a lookup must not adopt them twice)."""

        def query(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "SELECT job_id FROM jobs WHERE store_key = ? AND job_id IS NOT NULL", (store.key,)
            ).fetchall()
            return {r[0] for r in rows}

        return await self._run(query)

    def _job(self, conn: sqlite3.Connection, job: int, with_rows: bool = True) -> JobRecord:
        j = conn.execute(
            "SELECT id, store_key, client_token, role_arn, state, written_at, job_id, started_at,"
            " finished_at, status, message FROM jobs WHERE id = ?",
            (job,),
        ).fetchone()
        rows: tuple[QueuedRow, ...] = ()
        if with_rows:
            rows = tuple(
                _queued_row(r)
                for r in conn.execute(
                    "SELECT id, name, source_file, role_arn, description, tags, attempts FROM rows"
                    " WHERE job = ? ORDER BY id",
                    (job,),
                )
            )
        return JobRecord(
            id=j[0],
            store=StoreRef.from_key(j[1]),
            client_token=j[2],
            role_arn=j[3],
            state=JobState(j[4]),
            written_at=j[5],
            job_id=j[6],
            started_at=j[7],
            finished_at=j[8],
            status=j[9],
            message=j[10],
            rows=rows,
        )

    # -- reading --------------------------------------------------------------------------------

    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]:
        """Rows' current results: the given ids in order, or every row."""

        def query(conn: sqlite3.Connection) -> list[RowResult]:
            base = f"SELECT {_ROW_COLUMNS} FROM rows LEFT JOIN jobs ON rows.job = jobs.id"
            if row_ids is None:
                return [_row_result(r) for r in conn.execute(base + " ORDER BY rows.id")]
            found: dict[int, RowResult] = {}
            ids = list(row_ids)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(base + f" WHERE rows.id IN ({marks})", chunk):
                    found[r[0]] = _row_result(r)
            return [found[i] for i in ids if i in found]

        return await self._run(query)

    async def iter_results(self, page: int = 1000) -> AsyncIterator[list[RowResult]]:
        """Every row, oldest first (the order of ``results()``), ``page`` at a time: what a
        report or a status of 10^6 rows reads without holding them."""
        after = 0
        while True:

            def query(conn: sqlite3.Connection, after: int = after) -> list[RowResult]:
                base = f"SELECT {_ROW_COLUMNS} FROM rows LEFT JOIN jobs ON rows.job = jobs.id"
                sql = base + " WHERE rows.id > ? ORDER BY rows.id LIMIT ?"
                return [_row_result(r) for r in conn.execute(sql, (after, page))]

            rows = await self._run(query)
            if not rows:
                return
            yield rows
            after = rows[-1].row_id

    async def jobs(self, store: StoreRef | None = None) -> list[JobRecord]:
        """Every job (without its rows), oldest first."""

        def query(conn: sqlite3.Connection) -> list[JobRecord]:
            if store is None:
                ids = conn.execute("SELECT id FROM jobs ORDER BY id").fetchall()
            else:
                ids = conn.execute(
                    "SELECT id FROM jobs WHERE store_key = ? ORDER BY id", (store.key,)
                ).fetchall()
            return [self._job(conn, i[0], with_rows=False) for i in ids]

        return await self._run(query)

    async def counts(self) -> dict[StoreRef, dict[RowState, int]]:
        def query(conn: sqlite3.Connection) -> dict[StoreRef, dict[RowState, int]]:
            out: dict[StoreRef, dict[RowState, int]] = {}
            for key, state, n in conn.execute(
                "SELECT store_key, state, count(*) FROM rows GROUP BY store_key, state"
            ):
                out.setdefault(StoreRef.from_key(key), {})[RowState(state)] = n
            return out

        return await self._run(query)

    # -- several processes, long runs -----------------------------------------------------------

    async def acquire_lease(self, store: StoreRef, owner: str, ttl: float) -> bool:
        """Take or renew the right to drive ``store`` for ``ttl`` seconds; False if another owner holds it."""
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

        return await self._run(lambda conn: self._write(conn, take))

    async def lease_holder(self, store: StoreRef) -> tuple[str, float] | None:
        """Who holds the store's lease and until when (epoch seconds), if anyone."""

        def query(conn: sqlite3.Connection) -> tuple[str, float] | None:
            row = conn.execute(
                "SELECT owner, expires_at FROM leases WHERE store_key = ?", (store.key,)
            ).fetchone()
            return (str(row[0]), float(row[1])) if row is not None else None

        return await self._run(query)

    async def release_lease(self, store: StoreRef, owner: str) -> None:
        def release(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM leases WHERE store_key = ? AND owner = ?", (store.key, owner))

        await self._run(lambda conn: self._write(conn, release))

    async def compact(self, older_than: float) -> int:
        """Forget final rows and finished jobs settled before ``older_than`` (epoch seconds)."""

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

        return await self._run(lambda conn: self._write(conn, purge))

    # -- result documents owed to submitters ------------------------------------------------------

    async def add_outbox(self, submission: str, reply_to: str, row_ids: Sequence[int]) -> None:
        """Owe ``reply_to`` one result document for ``submission`` once its rows are final.

        Idempotent: a submission already owed (a redelivered message) keeps its first entry.
        """
        now = self._clock()
        ids = json.dumps(list(row_ids))

        def add(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO outbox (submission, reply_to, row_ids, created_at)"
                " VALUES (?, ?, ?, ?)",
                (submission, reply_to, ids, now),
            )

        await self._run(lambda conn: self._write(conn, add))

    async def due_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """Unsent result documents whose rows are all final (or forgotten by compaction)."""

        def query(conn: sqlite3.Connection) -> list[OutboxEntry]:
            due: list[OutboxEntry] = []
            for submission, reply_to, ids_json in conn.execute(
                "SELECT submission, reply_to, row_ids FROM outbox WHERE sent_at IS NULL"
                " ORDER BY created_at"
            ).fetchall():
                ids = tuple(int(i) for i in json.loads(ids_json))
                pending = 0
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    pending += conn.execute(
                        f"SELECT count(*) FROM rows WHERE id IN ({marks})"
                        " AND state IN ('QUEUED', 'SUBMITTED')",
                        chunk,
                    ).fetchone()[0]
                if not pending:
                    due.append(OutboxEntry(submission, reply_to, ids))
                    if len(due) >= limit:
                        break
            return due

        return await self._run(query)

    async def close_outbox(self, submission: str) -> bool:
        """Mark a result document sent; False if it was already (by another process)."""
        now = self._clock()

        def close(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE outbox SET sent_at = ? WHERE submission = ? AND sent_at IS NULL",
                (now, submission),
            )
            return cur.rowcount == 1

        return await self._run(lambda conn: self._write(conn, close))


def tags_of(items: Iterable[tuple[str, Any]]) -> dict[str, str]:
    return {str(k): str(v) for k, v in items}


# SQLite's primary result codes for a write the file system refused: SQLITE_IOERR (a failed
# write(2), as EFBIG past a file-size limit) and SQLITE_FULL (ENOSPC).
_WRITE_REFUSED = {10, 13}


def _explain(exc: sqlite3.Error) -> str:
    """SQLite's reason, with what a user can do about a write the file system refused."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _WRITE_REFUSED:
        return f"{exc}: cannot write to it (is its disk full?)"
    return str(exc)


def lease_owner_name() -> str:
    """A lease owner's name for this process: ``host:pid:random`` (see :func:`holder_is_gone`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(owner: str) -> bool:
    """True if ``owner`` names a process of this host that no longer runs.

    Only a certainty counts: another host's process, a name of another form, or a pid that is
    alive (perhaps reused) all answer False, and the lease is then left to expire.
    """
    host, _, rest = owner.partition(":")
    pid, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


JOURNAL_URL_HELP = "a SQLite file path, or dynamodb://TABLE for a journal shared by a fleet"


@asynccontextmanager
async def opened_journal(
    spec: str | os.PathLike[str] | Journal | None,
    *,
    region: str | None = None,
    read_only: bool = False,
) -> AsyncIterator[Journal]:
    """``async with opened_journal("dynamodb://t") as journal:`` (see :func:`resolve_journal`).

    ``read_only`` opens a SQLite journal without creating, migrating or changing it, and refuses
    a file that is not a refimport journal (``status`` and ``report``).
    """
    journal = resolve_journal(spec, region=region, read_only=read_only)
    await journal.open()
    try:
        yield journal
    finally:
        await journal.close()


def resolve_journal(
    spec: str | os.PathLike[str] | Journal | None,
    *,
    region: str | None = None,
    read_only: bool = False,
) -> Journal:
    """The journal a user names: a :class:`Journal` as is, ``dynamodb://TABLE[?region=R]`` for a
    :class:`~async_refimport.DynamoJournal`, anything else a SQLite path (``None``: the default path).

    Nothing is opened here; ``region`` is the fallback Region of a DynamoDB table.
    """
    if spec is None:
        return SQLiteJournal(default_journal_path(), read_only=read_only)
    if isinstance(spec, str) and spec.startswith("dynamodb:"):
        from async_refimport.journal.dynamo import (
            DynamoJournal,  # lazily: SQLite users never load aioboto3
        )

        return DynamoJournal.from_url(spec, region=region)
    if isinstance(spec, str | os.PathLike):
        return SQLiteJournal(spec, read_only=read_only)
    return spec
