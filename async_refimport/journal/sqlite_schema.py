"""The SQLite journal's file: its DDL, its migrations, opening it, and the connection's thread.

A journal file is created with mode 0600 (it names buckets, roles and stores) in a directory of
mode 0700, runs in WAL mode with ``synchronous=FULL`` (a committed transaction survives kill -9 and
power loss), and carries its schema version in ``meta``. Migrations only ever add: an older
refimport still reads a migrated file.

:class:`SQLiteFile` is the plumbing under :class:`~async_refimport.SQLiteJournal`: one connection
used from one worker thread, every call bounded in time and shielded from cancellation.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

import anyio
import anyio.to_thread

from async_refimport._errors import JournalError, LeaseLostError, StoreBookedError
from async_refimport._models import StoreRef
from async_refimport.journal._common import INVALID_ITEM

_T = TypeVar("_T")

SCHEMA_VERSION = 1
"""The schema this version writes; a file of a newer one is refused."""

SCHEMA = """
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
    original_source TEXT,
    source_md5 TEXT,
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
"""The journal's tables, created if missing (idempotent)."""


ADDED_ROW_COLUMNS = ("md5", "original_source", "source_md5")
"""Columns of ``rows`` added after schema 1 shipped (all TEXT, NULL when not known): the
reference's md5 the service reports, and a staged row's manifest source and its published md5."""


def missing_row_columns(conn: sqlite3.Connection) -> list[str]:
    """The columns of :data:`ADDED_ROW_COLUMNS` the file's ``rows`` table does not have yet.

    Args:
        conn: A connection to the journal.

    Returns:
        Their names, in the order they were added.
    """
    have = {c[1] for c in conn.execute("PRAGMA main.table_info(rows)")}
    return [c for c in ADDED_ROW_COLUMNS if c not in have]


def has_md5_column(conn: sqlite3.Connection) -> bool:
    """Whether the file's ``rows`` table has the ``md5`` column (added after schema 1 shipped).

    Args:
        conn: A connection to the journal.

    Returns:
        True if it has.
    """
    return "md5" not in missing_row_columns(conn)


def add_md5_column(conn: sqlite3.Connection) -> None:
    """Give a journal written before rows had an md5 (or a staged source) the columns of
    :data:`ADDED_ROW_COLUMNS` it lacks (NULL: not known).

    Nothing else changes, so an older refimport still reads the file. Idempotent, also when
    another process adds a column at the same moment.

    Args:
        conn: A read-write connection to the journal.

    Raises:
        sqlite3.OperationalError: a column could not be added.
    """
    for column in missing_row_columns(conn):
        try:
            conn.execute(f"ALTER TABLE rows ADD COLUMN {column} TEXT")
        except sqlite3.OperationalError:
            # Another process may have added it between the look and the ALTER: the table
            # itself, not the error's wording, says whether the migration is done.
            if column in missing_row_columns(conn):
                raise


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the journal's tables if missing and bring an older file up to date.

    Args:
        conn: A read-write connection to the journal.
        path: The journal's file (for messages).

    Raises:
        JournalError: the file has a newer schema than this version understands.
        sqlite3.Error: the file cannot be written.
    """
    # One script, one transaction: two processes creating a fresh journal at once both succeed.
    conn.executescript(
        "BEGIN IMMEDIATE;"
        + SCHEMA
        + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
        + "COMMIT;"
    )
    add_md5_column(conn)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if int(row[0]) > SCHEMA_VERSION:
        raise JournalError(
            f"journal {path} has schema {row[0]}, newer than this version "
            f"understands ({SCHEMA_VERSION}); upgrade async-refimport"
        )


def connect(path: Path, timeout: float) -> sqlite3.Connection:
    """Open (creating and migrating it when needed) the journal at ``path`` for writing.

    Args:
        path: The journal's file; its directory is created (mode 0700) when missing.
        timeout: Seconds one call may take; waiting for another process's lock counts against it.

    Returns:
        A connection in autocommit mode (transactions are explicit), usable from any thread.

    Raises:
        JournalError: the file cannot be opened, created or migrated.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Create it 0600 before SQLite opens it: it names buckets, roles and stores.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        wait = min(timeout, 30.0)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=wait)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
        migrate(conn, path)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open journal {path}: {exc}") from exc
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing journal for reading only: the file is never created, migrated or changed.

    Args:
        path: The journal's file.

    Returns:
        A read-only connection, usable from any thread.

    Raises:
        JournalError: no file at ``path``, a file that is not a refimport journal, or one of a
            newer schema.
    """
    if not path.is_file():
        raise JournalError(f"no journal at {path}")
    if not os.access(path, os.R_OK):
        raise JournalError(f"journal {path} cannot be read: permission denied ({_owner(path)})")
    try:
        try:
            conn, tables = _open_read_only(path, immutable=False)
        except sqlite3.OperationalError as exc:
            if not _cannot_share(exc, path):
                raise
            # Reading a WAL journal takes a -shm file beside it, which a read-only directory
            # or file refuses; with no -wal content to miss, the file is read as it stands.
            conn, tables = _open_read_only(path, immutable=True)
        if not {"meta", "rows", "jobs"} <= tables:
            conn.close()
            raise JournalError(f"{path} is not a refimport journal")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise JournalError(_unreadable(path, exc)) from exc
    if row is None or int(row[0]) > SCHEMA_VERSION:
        conn.close()
        raise JournalError(
            f"journal {path} has schema {row[0] if row else '?'}, which this version "
            f"does not understand ({SCHEMA_VERSION}); upgrade async-refimport"
        )
    if missing := missing_row_columns(conn):
        # A journal written before rows had these columns, opened read-only (it cannot be
        # migrated): a temporary view of the same name, searched before the file's own tables,
        # adds them as NULL for this connection only; the file is not touched.
        nulls = ", ".join(f"NULL AS {column}" for column in missing)
        conn.execute(f"CREATE TEMP VIEW rows AS SELECT *, {nulls} FROM main.rows")
    return conn


def _open_read_only(path: Path, *, immutable: bool) -> tuple[sqlite3.Connection, set[str]]:
    """A read-only connection to ``path`` and the names of its tables (reading them is what
    tells whether the file can be read at all)."""
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=30.0,
    )
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        return conn, {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    except BaseException:
        conn.close()
        raise


# SQLite's primary result codes of a file it may not write or create: SQLITE_READONLY and
# SQLITE_CANTOPEN.
_NOT_WRITABLE = frozenset({8, 14})


def _cannot_share(exc: sqlite3.Error, path: Path) -> bool:
    """Whether ``exc`` is SQLite failing to make the files a WAL reader shares (``-shm``) beside
    a journal it may not write, whose ``-wal`` holds nothing a reader would miss."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _NOT_WRITABLE:
        return False
    wal = path.with_name(path.name + "-wal")
    return not wal.exists() or wal.stat().st_size == 0


def _unreadable(path: Path, exc: sqlite3.DatabaseError) -> str:
    """What a failure to read the journal at ``path`` means, in one line."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _NOT_WRITABLE:
        return (
            f"journal {path} cannot be read: {exc} (its directory or its -wal/-shm files are not "
            f"writable: permission denied, {_owner(path.parent)}; run as their owner, or copy "
            "the journal with its -wal file somewhere writable)"
        )
    return f"{path} is not a refimport journal ({exc})"


def _owner(path: Path) -> str:
    """``path``'s owner and mode, for a permission error (``owner uid 0, mode -r--r--r--``)."""
    try:
        st = path.stat()
    except OSError:
        return "cannot stat it"
    return f"owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}, you are uid {os.getuid()}"


# SQLite's primary result codes for a write the file system refused: SQLITE_IOERR (a failed
# write(2), as EFBIG past a file-size limit) and SQLITE_FULL (ENOSPC).
_WRITE_REFUSED = {10, 13}


def explain(exc: sqlite3.Error) -> str:
    """SQLite's reason, with what a user can do about a write the file system refused.

    Args:
        exc: SQLite's error.

    Returns:
        One line for a message.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _WRITE_REFUSED:
        return f"{exc}: cannot write to it (is its disk full?)"
    return str(exc)


def lease_refused(
    conn: sqlite3.Connection, store: StoreRef, owner: str, *, live_only: bool, now: float
) -> LeaseLostError | None:
    """Fencing: the refusal of ``owner``'s write for ``store``, or ``None`` if it may write.

    Args:
        conn: The connection, inside the write's transaction (so the look and the write are one).
        store: The store written.
        owner: The writer's lease owner.
        live_only: Let ``owner`` write unless another owner holds a lease that has not expired
            (a job's write-ahead); otherwise ``owner`` must hold the lease itself.
        now: The time of the write (for ``live_only``).

    Returns:
        The error to raise, or ``None``.
    """
    lease = conn.execute(
        "SELECT owner, expires_at FROM leases WHERE store_key = ?", (store.key,)
    ).fetchone()
    if live_only:
        if lease is not None and lease[0] != owner and lease[1] >= now:
            return LeaseLostError(
                f"store {store} is leased by {lease[0]}", store_key=store.key, owner=owner
            )
        return None
    if lease is None or lease[0] != owner:
        holder = lease[0] if lease is not None else "nobody"
        return LeaseLostError(
            f"store {store}: the lease is held by {holder}, not {owner}",
            store_key=store.key,
            owner=owner,
        )
    return None


class SQLiteFile:
    """One journal file's connection, used from one worker thread (SQLite's single writer).

    Args:
        path: The journal file; its directory is created (mode 0700) when missing.
        clock: Wall-clock seconds, injectable for tests.
        timeout: Seconds one call may take (waiting for another process's lock included) before
            it is interrupted and fails with :class:`JournalError`.
        read_only: Open an existing journal for reading only: the file is never created,
            migrated or changed, and a file that is not a refimport journal is refused.
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
            except JournalError as exc:
                if conn.in_transaction:
                    conn.rollback()
                if exc.code == INVALID_ITEM:  # a row or job no refimport wrote: name the file
                    raise JournalError(f"journal {self.path}: {exc}", code=exc.code) from exc
                raise
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.rollback()
                raise JournalError(f"journal {self.path}: {explain(exc)}") from exc

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

    async def _transaction(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn`` in one write transaction on the worker thread."""
        return await self._run(lambda conn: self._write(conn, fn))

    @staticmethod
    def _check_lease(conn: sqlite3.Connection, store: StoreRef, owner: str | None) -> None:
        """Fencing: refuse a write for ``store`` unless ``owner`` holds its lease."""
        if owner is None:
            return
        if (refused := lease_refused(conn, store, owner, live_only=False, now=0.0)) is not None:
            raise refused

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the file, creating and migrating it unless read-only; idempotent.

        Raises:
            JournalError: the file cannot be opened, or is not a refimport journal.
        """
        if self._conn is not None:
            return
        self._conn = await anyio.to_thread.run_sync(self._connect, limiter=self._limiter)

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            return connect_read_only(self.path)
        conn = connect(self.path, self._timeout)
        self._inode = self.path.stat().st_ino
        return conn

    async def aclose(self) -> None:
        """Close the connection (shielded); idempotent, and nothing committed is lost."""
        await self.close()

    async def close(self) -> None:
        """The same as :meth:`aclose` (kept for callers of earlier versions; subclasses that
        close differently override this one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)
