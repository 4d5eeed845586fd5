"""The staging ledger: every multipart upload and its finished parts, recorded before relied on.

A SQLite file of the caller's choosing (the journal's own file, or one beside it) holds two tables
of the ledger's own, created if missing (``staging_uploads``, ``staging_parts``). What it gives:

* an upload's id is recorded as soon as S3 returns it, and each part (its number, ETag, SHA-256
  checksum and size) as soon as S3 has it: a crash loses at most the parts in flight, and a
  resumed upload re-sends only the parts missing (S3's ListParts reconciles with the ledger);
* an upload is marked COMPLETING before CompleteMultipartUpload is sent, and COMPLETED after: on
  resume a COMPLETING upload's key is looked at first (a HEAD), so a completed object is never
  completed again;
* a key is recorded (an *intent*) before CreateMultipartUpload is sent, write-ahead as the
  journal records a job before its Start: an upload S3 lists under a key with an intent left
  behind was begun by this ledger's run that died before recording its id;
* an upload superseded (its source changed, S3 forgot it) is marked ABORTED once aborted; which
  listed uploads are orphans is :meth:`Stager.abort_orphans`'s rule (this ledger's, or unknown
  and older than ``StagingLimits.orphan_age``).

The file is WAL with ``synchronous=FULL``, as the journal's: a record survives kill -9 and power
loss. One connection, used from worker threads one call at a time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import anyio

from async_refimport._models import without_userinfo

__all__ = ["LedgerPart", "LedgerUpload", "StagingLedger", "UploadState"]

_T = TypeVar("_T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS staging_uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        state TEXT NOT NULL,
        source TEXT NOT NULL,
        part_size INTEGER NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS staging_uploads_key ON staging_uploads (bucket, key, state)",
    """CREATE TABLE IF NOT EXISTS staging_parts (
        upload_id TEXT NOT NULL,
        part_number INTEGER NOT NULL,
        etag TEXT NOT NULL,
        checksum TEXT,
        size INTEGER NOT NULL,
        PRIMARY KEY (upload_id, part_number)
    )""",
    # Write-ahead: a key is recorded before CreateMultipartUpload, and forgotten once the
    # upload's id is recorded; one left behind is a crash in between (an upload only ours).
    """CREATE TABLE IF NOT EXISTS staging_intents (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (bucket, key)
    )""",
)


class UploadState(StrEnum):
    """Where a multipart upload stands in the ledger."""

    UPLOADING = "uploading"
    """Parts are being sent (resumable)."""
    COMPLETING = "completing"
    """CompleteMultipartUpload is (or was about to be) sent: HEAD the key before anything else."""
    COMPLETED = "completed"
    """The object exists, complete."""
    ABORTED = "aborted"
    """Given up and aborted at S3 (superseded, or its source failed)."""


ACTIVE = (UploadState.UPLOADING, UploadState.COMPLETING)


@dataclass(frozen=True, slots=True)
class LedgerPart:
    """One finished part of a multipart upload, as S3 acknowledged it.

    Attributes:
        number: The part number (1..10,000).
        etag: S3's ETag of the part.
        checksum: S3's SHA-256 checksum of the part (base64), when it gave one.
        size: The part's bytes.
    """

    number: int
    etag: str
    checksum: str | None
    size: int


@dataclass(frozen=True, slots=True)
class LedgerUpload:
    """A multipart upload the ledger knows.

    Attributes:
        upload_id: S3's upload id.
        bucket: The staging bucket.
        key: The object's key.
        state: Where it stands.
        source: The source it stages (its URL without user name and password).
        part_size: Bytes per part (every part but the last).
        created: When it was recorded (seconds since the epoch).
    """

    upload_id: str
    bucket: str
    key: str
    state: UploadState
    source: str
    part_size: int
    created: float


class StagingLedger:
    """The ledger of multipart uploads in a SQLite file (an async context manager).

    Args:
        path: The SQLite file (created 0600 when missing; its tables created if missing).
        timeout: Seconds to wait for another connection's lock on the file.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def __aenter__(self) -> StagingLedger:
        """Open the ledger (:meth:`open`).

        Returns:
            The ledger.
        """
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the ledger (:meth:`aclose`)."""
        await self.aclose()

    async def open(self) -> None:
        """Open the file and create the ledger's tables if missing (idempotent).

        Raises:
            sqlite3.Error: the file cannot be opened or written.
        """
        if self._conn is None:
            self._conn = await anyio.to_thread.run_sync(self._connect)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._timeout
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        for statement in _SCHEMA:
            conn.execute(statement)
        return conn

    async def aclose(self) -> None:
        """Close the file (the ledger may be opened again)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _run(self, call: Callable[[sqlite3.Connection], _T]) -> _T:
        await self.open()
        conn = self._conn
        assert conn is not None

        def locked() -> _T:
            with self._lock:
                return call(conn)

        return await anyio.to_thread.run_sync(locked)

    async def intend(self, bucket: str, key: str) -> None:
        """Record that an upload of ``key`` is about to be created (before CreateMultipartUpload).

        Args:
            bucket: The staging bucket.
            key: The object's key.
        """
        now = time.time()
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO staging_intents VALUES (?, ?, ?)", (bucket, key, now)
            )
        )

    async def forget_intent(self, bucket: str, key: str) -> None:
        """Forget ``key``'s intent (its upload was not created, or its orphans are aborted).

        Args:
            bucket: The staging bucket.
            key: The object's key.
        """
        await self._run(
            lambda c: c.execute(
                "DELETE FROM staging_intents WHERE bucket = ? AND key = ?", (bucket, key)
            )
        )

    async def intents(self, bucket: str, *, prefix: str = "") -> dict[str, float]:
        """The keys with an intent left (a crash between CreateMultipartUpload and its record).

        Args:
            bucket: The staging bucket.
            prefix: Only keys under this prefix.

        Returns:
            Key to when its intent was recorded (seconds since the epoch).
        """
        rows = await self._run(
            lambda c: c.execute(
                "SELECT key, created FROM staging_intents WHERE bucket = ? AND substr(key, 1, ?) = ?",
                (bucket, len(prefix), prefix),
            ).fetchall()
        )
        return {str(r[0]): float(r[1]) for r in rows}

    async def begin(
        self, bucket: str, key: str, upload_id: str, *, source: str, part_size: int
    ) -> LedgerUpload:
        """Record a new multipart upload (right after CreateMultipartUpload returned its id).

        The key's intent (:meth:`intend`) is forgotten in the same transaction.

        Args:
            bucket: The staging bucket.
            key: The object's key.
            upload_id: S3's upload id.
            source: The source (stored without its URL's user name and password).
            part_size: Bytes per part.

        Returns:
            The upload, UPLOADING.
        """
        now = time.time()
        upload = LedgerUpload(
            upload_id, bucket, key, UploadState.UPLOADING, without_userinfo(source), part_size, now
        )

        def record(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    "INSERT OR REPLACE INTO staging_uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        upload_id,
                        bucket,
                        key,
                        upload.state.value,
                        upload.source,
                        part_size,
                        now,
                        now,
                    ),
                )
                c.execute("DELETE FROM staging_intents WHERE bucket = ? AND key = ?", (bucket, key))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(record)
        return upload

    async def active(self, bucket: str, key: str) -> LedgerUpload | None:
        """The newest UPLOADING or COMPLETING upload of ``key``.

        Args:
            bucket: The staging bucket.
            key: The object's key.

        Returns:
            The upload, or ``None``.
        """
        found = await self.uploads(bucket, key=key, states=ACTIVE)
        return found[-1] if found else None

    async def uploads(
        self,
        bucket: str,
        *,
        key: str | None = None,
        prefix: str | None = None,
        states: Iterable[UploadState] | None = None,
    ) -> list[LedgerUpload]:
        """The uploads of a bucket, oldest first.

        Args:
            bucket: The staging bucket.
            key: Only this key's.
            prefix: Only keys under this prefix.
            states: Only these states (default: all).

        Returns:
            The uploads.
        """
        sql = "SELECT * FROM staging_uploads WHERE bucket = ?"
        args: list[object] = [bucket]
        if key is not None:
            sql += " AND key = ?"
            args.append(key)
        if prefix:
            sql += " AND substr(key, 1, ?) = ?"
            args += [len(prefix), prefix]
        chosen = [UploadState(s).value for s in states] if states is not None else None
        if chosen is not None:
            sql += f" AND state IN ({', '.join('?' * len(chosen))})"
            args += chosen
        rows = await self._run(lambda c: c.execute(sql + " ORDER BY created", args).fetchall())
        return [
            LedgerUpload(r[0], r[1], r[2], UploadState(r[3]), r[4], int(r[5]), float(r[6]))
            for r in rows
        ]

    async def record_part(self, upload_id: str, part: LedgerPart) -> None:
        """Record a part S3 acknowledged (replacing one of the same number).

        Args:
            upload_id: The upload.
            part: The part.
        """
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO staging_parts VALUES (?, ?, ?, ?, ?)",
                (upload_id, part.number, part.etag, part.checksum, part.size),
            )
        )

    async def forget_part(self, upload_id: str, number: int) -> None:
        """Forget a part (S3 does not have it, or it must be sent again).

        Args:
            upload_id: The upload.
            number: The part number.
        """
        await self._run(
            lambda c: c.execute(
                "DELETE FROM staging_parts WHERE upload_id = ? AND part_number = ?",
                (upload_id, number),
            )
        )

    async def parts(self, upload_id: str) -> dict[int, LedgerPart]:
        """The parts recorded for an upload.

        Args:
            upload_id: The upload.

        Returns:
            Part number to part.
        """
        rows = await self._run(
            lambda c: c.execute(
                "SELECT part_number, etag, checksum, size FROM staging_parts WHERE upload_id = ?",
                (upload_id,),
            ).fetchall()
        )
        return {int(r[0]): LedgerPart(int(r[0]), r[1], r[2], int(r[3])) for r in rows}

    async def mark(self, upload_id: str, state: UploadState) -> None:
        """Move an upload to ``state`` (its parts are dropped once COMPLETED or ABORTED).

        Args:
            upload_id: The upload.
            state: The new state.
        """

        def move(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    "UPDATE staging_uploads SET state = ?, updated = ? WHERE upload_id = ?",
                    (state.value, time.time(), upload_id),
                )
                if state not in ACTIVE:
                    c.execute("DELETE FROM staging_parts WHERE upload_id = ?", (upload_id,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(move)
