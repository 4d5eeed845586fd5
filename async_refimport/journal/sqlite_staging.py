"""The SQLite journal's intake and its staging rows: :class:`SQLiteIntake`, the base of
:class:`~async_refimport.SQLiteJournal`.

Rows are journaled QUEUED (their source is an ``s3://`` object the store can import from) or
STAGING (their source is copied into a bucket of the store's own Region first); a STAGING row
becomes QUEUED, with the staged object as its ``source_file``, in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from async_refimport._errors import FieldError, RequestValidationError
from async_refimport._models import ImportRequest, RowState, StoreRef
from async_refimport.journal import sqlite_queries as q
from async_refimport.journal._common import (
    other_spellings,
    source_conflict,
    store_of,
    warn_other_spelling,
)
from async_refimport.journal.base import StagingRow
from async_refimport.journal.sqlite_schema import SQLiteFile

# The source a name was journaled from: a staged row's manifest source, not its staged copy.
_JOURNALED_SOURCE = "coalesce(original_source, source_file)"


class SQLiteIntake(SQLiteFile):
    """Journaling requests (QUEUED or STAGING) and the staging rows' role
    (:class:`~async_refimport.journal.base.StagingQueue`) on one SQLite file."""

    async def _add(
        self,
        requests: Sequence[tuple[StoreRef, ImportRequest]],
        submission: str | None,
        *,
        staging: bool,
    ) -> list[int]:
        """Journal requests in one transaction, QUEUED or STAGING; idempotent per name (see
        :meth:`~async_refimport.SQLiteJournal.add_rows`)."""
        now = self._clock()

        def add(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            conflicts: list[FieldError] = []
            for store, req in requests:
                found = conn.execute(
                    f"SELECT id, state, {_JOURNALED_SOURCE} FROM rows"
                    " WHERE store_key = ? AND name = ?",
                    (store.key, req.name),
                ).fetchone()
                if found is None:
                    for other in other_spellings(req.name):
                        if conn.execute(
                            "SELECT 1 FROM rows WHERE store_key = ? AND name = ?",
                            (store.key, other),
                        ).fetchone():
                            warn_other_spelling(store, req.name, other)
                    ids.append(q.insert_row(conn, store, req, submission, now, staging=staging))
                    continue
                row_id, state, source_file = found
                if (conflict := source_conflict(store, req, state, source_file)) is not None:
                    conflicts.append(conflict)
                elif state == RowState.FAILED:
                    q.requeue_row(conn, row_id, req, submission, now, staging=staging)
                ids.append(row_id)
            if conflicts:
                raise RequestValidationError(conflicts)
            return ids

        return await self._transaction(add)

    async def _conflicts(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> list[FieldError]:
        """What :meth:`_add` would refuse; reads only."""

        def query(conn: sqlite3.Connection) -> list[FieldError]:
            out = []
            for store, req in requests:
                found = conn.execute(
                    f"SELECT state, {_JOURNALED_SOURCE} FROM rows WHERE store_key = ? AND name = ?",
                    (store.key, req.name),
                ).fetchone()
                if found and (conflict := source_conflict(store, req, *found)) is not None:
                    out.append(conflict)
            return out

        return await self._run(query)

    # -- staging ----------------------------------------------------------------------------------

    async def add_staging_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]:
        """Journal requests as STAGING rows, atomically (one transaction); idempotent per name
        as ``add_rows`` is (a name journaled from the same manifest source keeps its row, a
        FAILED one is made STAGING again). Not fenced.

        Returns:
            One row id per request, in order.

        Raises:
            RequestValidationError: a name is already journaled for its store with another
                source (nothing is added then).
            JournalError: the journal cannot be written.
        """
        return await self._add(requests, submission, staging=True)

    async def staging_rows(self, limit: int, store: StoreRef | None = None) -> list[StagingRow]:
        """Read-only: up to ``limit`` of the oldest STAGING rows of ``store`` (by the index of
        a store's rows by state), or of every store.

        Raises:
            JournalError: the journal cannot be read.
        """
        where = "state = 'STAGING'" + (" AND store_key = ?" if store is not None else "")
        args: tuple[object, ...] = (store.key, limit) if store is not None else (limit,)

        def query(conn: sqlite3.Connection) -> list[StagingRow]:
            return [
                StagingRow(r[0], store_of(r[1], f"row {r[0]}"), r[2], r[3], r[4])
                for r in conn.execute(
                    "SELECT id, store_key, name, coalesce(original_source, source_file),"
                    f" source_md5 FROM rows WHERE {where} ORDER BY id LIMIT ?",
                    args,
                )
            ]

        return await self._run(query)

    async def mark_staged(self, row_id: int, staged_uri: str) -> bool:
        """A STAGING row staged: QUEUED with ``staged_uri`` as its source, its original source
        kept, atomically (one transaction); idempotent (a row no longer STAGING is left alone).

        Returns:
            True if this call made the row QUEUED.

        Raises:
            JournalError: the journal cannot be written.
        """
        now = self._clock()

        def mark(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "UPDATE rows SET state = 'QUEUED', original_source = "
                    f"{_JOURNALED_SOURCE}, source_file = ?, updated_at = ?"
                    " WHERE id = ? AND state = 'STAGING'",
                    (staged_uri, now, row_id),
                ).rowcount
            )

        return await self._transaction(mark)

    async def fail_staging(self, row_id: int, message: str) -> bool:
        """A STAGING row that cannot be staged is FAILED with ``message``, atomically (one
        transaction); idempotent (a row no longer STAGING is left alone).

        Returns:
            True if this call failed the row.

        Raises:
            JournalError: the journal cannot be written.
        """
        now = self._clock()

        def fail(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "UPDATE rows SET state = 'FAILED', message = ?, updated_at = ?"
                    " WHERE id = ? AND state = 'STAGING'",
                    (message, now, row_id),
                ).rowcount
            )

        return await self._transaction(fail)
