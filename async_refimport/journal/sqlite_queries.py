"""The SQLite journal's statements that need more than one line: row codecs, reads, intake.

Every function here takes an open connection and runs on the journal's worker thread, inside
whatever transaction :class:`~async_refimport.SQLiteJournal` opened; none commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from async_refimport._models import ImportRequest, RowResult, RowState, StoreRef, quoted
from async_refimport.journal._common import enum_of, invalid_item, store_of
from async_refimport.journal.base import JobRecord, JobState, OutboxEntry, QueuedRow

ROW_COLUMNS = (
    "rows.id, rows.store_key, rows.name, rows.source_file, rows.state, rows.reference_id, "
    "jobs.job_id, rows.message, rows.attempts, rows.md5, rows.original_source, rows.role_arn, "
    "rows.source_md5"
)
"""The columns :func:`row_result` reads, from ``rows LEFT JOIN jobs``."""

RESULTS = f"SELECT {ROW_COLUMNS} FROM rows LEFT JOIN jobs ON rows.job = jobs.id"
"""Every row's result (add a WHERE and an ORDER BY)."""

_QUEUED_COLUMNS = "id, name, source_file, role_arn, description, tags, attempts"
_CHUNK = 500  # ids per IN (...): well under SQLite's limit on bound parameters


def row_result(r: sqlite3.Row) -> RowResult:
    """A row's result from the columns of :data:`ROW_COLUMNS`.

    Args:
        r: One row of a :data:`RESULTS` query.

    Returns:
        The row's result.
    """
    store = store_of(r[1], f"row {r[0]}")
    return RowResult(
        row_id=r[0],
        store_id=store.store_id,
        region=store.region,
        name=r[2],
        source_file=r[3],
        state=enum_of(RowState, r[4], f"row {r[0]} ({quoted(str(r[2]))})", "state"),
        reference_id=r[5],
        job_id=r[6],
        message=r[7],
        attempts=r[8],
        md5=r[9],
        original_source=r[10],
        role_arn=r[11],
        source_md5=r[12],
    )


def _tags(raw: object, where: str) -> dict[str, str]:
    """A row's tags (a JSON object of strings), or the error naming the row."""
    try:
        tags = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        tags = None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise invalid_item(where, f"tags {quoted(str(raw))} are not a JSON object of strings")
    return tags


def queued_rows_of(conn: sqlite3.Connection, where: str, args: Sequence[object]) -> list[QueuedRow]:
    """Rows as a lane needs them, selected by ``where`` (a SQL condition on ``rows``).

    Args:
        conn: The journal's connection.
        where: The condition, and its ORDER BY / LIMIT.
        args: Its parameters.

    Returns:
        The rows, in the query's order.
    """
    return [
        QueuedRow(r[0], r[1], r[2], r[3], r[4], _tags(r[5], f"row {r[0]}"), r[6])
        for r in conn.execute(f"SELECT {_QUEUED_COLUMNS} FROM rows WHERE {where}", args)
    ]


def job_record(conn: sqlite3.Connection, job: int, with_rows: bool = True) -> JobRecord:
    """One job as its record, with its rows or without.

    Args:
        conn: The journal's connection.
        job: The job's number.
        with_rows: Read its rows too.

    Returns:
        The job's record.
    """
    j = conn.execute(
        "SELECT id, store_key, client_token, role_arn, state, written_at, job_id, started_at,"
        " finished_at, status, message FROM jobs WHERE id = ?",
        (job,),
    ).fetchone()
    rows = tuple(queued_rows_of(conn, "job = ? ORDER BY id", (job,))) if with_rows else ()
    return JobRecord(
        id=j[0],
        store=store_of(j[1], f"job {j[0]}"),
        client_token=j[2],
        role_arn=j[3],
        state=enum_of(JobState, j[4], f"job {j[0]}", "state"),
        written_at=j[5],
        job_id=j[6],
        started_at=j[7],
        finished_at=j[8],
        status=j[9],
        message=j[10],
        rows=rows,
    )


def results_of(conn: sqlite3.Connection, row_ids: Sequence[int] | None) -> list[RowResult]:
    """Rows' current results: the given ids in order (unknown ones left out), or every row.

    Args:
        conn: The journal's connection.
        row_ids: The rows, or ``None`` for every row, oldest first.

    Returns:
        Their results.
    """
    if row_ids is None:
        return [row_result(r) for r in conn.execute(RESULTS + " ORDER BY rows.id")]
    found: dict[int, RowResult] = {}
    ids = list(row_ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(RESULTS + f" WHERE rows.id IN ({marks})", chunk):
            found[r[0]] = row_result(r)
    return [found[i] for i in ids if i in found]


def due_entries(conn: sqlite3.Connection, limit: int) -> list[OutboxEntry]:
    """Unsent result documents whose rows are all final (or forgotten by compaction).

    Args:
        conn: The journal's connection.
        limit: At most this many.

    Returns:
        The due entries, oldest first.
    """
    due: list[OutboxEntry] = []
    for submission, reply_to, ids_json in conn.execute(
        "SELECT submission, reply_to, row_ids FROM outbox WHERE sent_at IS NULL ORDER BY created_at"
    ).fetchall():
        ids = tuple(int(i) for i in json.loads(ids_json))
        pending = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            pending += conn.execute(
                f"SELECT count(*) FROM rows WHERE id IN ({marks})"
                " AND state IN ('STAGING', 'QUEUED', 'SUBMITTED')",
                chunk,
            ).fetchone()[0]
        if not pending:
            due.append(OutboxEntry(submission, reply_to, ids))
            if len(due) >= limit:
                break
    return due


def insert_row(
    conn: sqlite3.Connection,
    store: StoreRef,
    req: ImportRequest,
    submission: str | None,
    now: float,
    *,
    staging: bool = False,
) -> int:
    """Journal one new request as a QUEUED row (STAGING: its source is staged first).

    Args:
        conn: The journal's connection, in a write transaction.
        store: The request's store.
        req: The request.
        submission: Its submission, if any.
        now: The time of the write.
        staging: Journal it STAGING, its source kept as ``original_source`` too.

    Returns:
        The new row's id.
    """
    cur = conn.execute(
        "INSERT INTO rows (store_key, name, source_file, role_arn, description, tags,"
        " state, submission, created_at, updated_at, original_source, source_md5)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            store.key,
            req.name,
            req.source_file,
            req.role_arn,
            req.description,
            json.dumps(dict(req.tags), sort_keys=True),
            (RowState.STAGING if staging else RowState.QUEUED).value,
            submission,
            now,
            now,
            req.source_file if staging else None,
            req.source_md5,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def requeue_row(
    conn: sqlite3.Connection,
    row_id: int,
    req: ImportRequest,
    submission: str | None,
    now: float,
    *,
    staging: bool = False,
) -> None:
    """Queue a FAILED row again with the fields of a new request (a re-run retries failures).

    Args:
        conn: The journal's connection, in a write transaction.
        row_id: The failed row.
        req: The new request for its name.
        submission: Its submission, if any.
        now: The time of the write.
        staging: Make it STAGING (its source is staged first) rather than QUEUED.
    """
    conn.execute(
        "UPDATE rows SET source_file = ?, role_arn = ?, description = ?, tags = ?,"
        " state = ?, job = NULL, message = NULL, reference_id = NULL, md5 = NULL,"
        " original_source = ?, source_md5 = ?, attempts = 0, submission = ?, updated_at = ?"
        " WHERE id = ?",
        (
            req.source_file,
            req.role_arn,
            req.description,
            json.dumps(dict(req.tags), sort_keys=True),
            (RowState.STAGING if staging else RowState.QUEUED).value,
            req.source_file if staging else None,
            req.source_md5,
            submission,
            now,
            row_id,
        ),
    )
