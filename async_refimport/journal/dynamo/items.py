"""The DynamoDB journal's items: attribute values, keys, and the codec of rows, jobs and settlements.

Table layout (one table, on-demand billing; created by ``refimport journal init dynamodb://TABLE``)::

    item          pk                  sk                  gpk (index by_group)  gsk
    store         STORE#<store key>   STORE               STORES                <store key>
    queue entry   QUEUE#<store key>   <created>#<uuid>    -                     -
    row           ROW#<row id>        ROW                 -                     -
    job           JOB#<token>         JOB                 J#<store key>         <written>#<token>
    owed result   OUTBOX#<sub id>     OUTBOX              OUTBOX (until sent)   <created>#<sub id>

The store's item holds the lease (owner, expiry), ``active_job`` and per-state counters; a queue
entry lists up to 100 row ids in arrival order (written before its rows, dropped once they are all
settled); a job's item lists its row ids and, once decided, its settlement.

Row ids are the first 53 bits of a hash of (store, name): the same row gets the same id on every
host without a counter item, and they stay exact in JavaScript clients.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from async_refimport._errors import JournalError
from async_refimport._models import (
    RowResult,
    RowState,
    StoreRef,
    is_region_name,
    quoted,
)
from async_refimport.journal._common import enum_of, invalid_item, store_of
from async_refimport.journal.base import JobRecord, JobState, QueuedRow, Settlement

SCHEME = "dynamodb"
"""The scheme of a DynamoDB journal's URL (``dynamodb://TABLE``)."""
INDEX = "by_group"
"""The table's one global secondary index (``gpk``, ``gsk``)."""
TTL_ATTRIBUTE = "ttl"
"""The attribute DynamoDB's TTL expires items by."""
DEFAULT_RETENTION = 30 * 86_400.0
"""Seconds a final row, a done job or a sent result document is kept by default."""

_ID_BITS = (1 << 53) - 1
# DynamoDB's attribute types, as errors name them.
_TYPES = {
    "S": "a string (S)",
    "N": "a number (N)",
    "B": "binary (B)",
    "BOOL": "a boolean (BOOL)",
    "NULL": "null (NULL)",
    "M": "a map (M)",
    "L": "a list (L)",
    "SS": "a string set (SS)",
    "NS": "a number set (NS)",
    "BS": "a binary set (BS)",
}
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
BATCH_GET = 100
"""Keys per BatchGetItem (DynamoDB's limit)."""
TXN_ROWS = 99
"""Rows per transaction beside the store's item (DynamoDB's limit is 100 items)."""
CHUNK_ROWS = 100
"""Row ids per queue entry: a job's worth."""
CHUNK_GRACE = 600.0
"""Seconds after which a queue entry naming only settled rows is dropped whatever its rows say."""


def sv(value: str) -> dict[str, str]:
    """A string attribute value."""
    return {"S": value}


def nv(value: float) -> dict[str, str]:
    """A number attribute value (a float keeps its full precision)."""
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def item_name(item: Mapping[str, Any]) -> str:
    """An item as an error names it: ``item ROW#123/ROW`` (its key)."""
    key = [
        str(part["S"]) if isinstance(part, Mapping) and isinstance(part.get("S"), str) else "?"
        for part in (item.get("pk"), item.get("sk"))
    ]
    return f"DynamoDB journal item {quoted('/'.join(key))}"


def get_s(item: Mapping[str, Any], name: str) -> str | None:
    """An item's string attribute, or ``None`` if it has none.

    Raises:
        JournalError: the attribute is not a string (code ``INVALID_ITEM``, naming the item).
    """
    value = item.get(name)
    if value is None:
        return None
    text = value.get("S") if isinstance(value, Mapping) else None
    if not isinstance(text, str):
        raise invalid_item(item_name(item), f"{name} is {_kind(value)}, not a string (S)")
    return text


def get_n(item: Mapping[str, Any], name: str) -> float | None:
    """An item's number attribute, or ``None`` if it has none.

    Raises:
        JournalError: the attribute is not a number (code ``INVALID_ITEM``, naming the item).
    """
    value = item.get(name)
    if value is None:
        return None
    number = value.get("N") if isinstance(value, Mapping) else None
    if isinstance(number, str):
        try:
            return float(number)
        except ValueError:
            pass
    raise invalid_item(item_name(item), f"{name} is {_kind(value)}, not a number (N)")


def _kind(value: object) -> str:
    """What a DynamoDB attribute value is, for an error: ``a string (S) 'x'``, ``a map (M)``."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((tag, inner),) = value.items()
        return f"{_TYPES.get(tag, repr(tag))} {quoted(str(inner))}"
    return quoted(str(value))


def item_key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    """The primary key of an item."""
    return {"pk": sv(pk), "sk": sv(sk)}


def row_id_for(store: StoreRef, name: str) -> int:
    """The row id of ``name`` in ``store``: the same on every host, never 0."""
    digest = hashlib.blake2b(f"{store.key}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _ID_BITS or 1


def job_number(token: str) -> int:
    """A job's number (``JobRecord.id``) from its client token: the same on every host."""
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _ID_BITS or 1


def row_item_key(row_id: int) -> dict[str, dict[str, str]]:
    """The key of a row's item."""
    return item_key(f"ROW#{row_id}", "ROW")


def store_item_key(store_key: str) -> dict[str, dict[str, str]]:
    """The key of a store's item (its lease, active job and counters)."""
    return item_key(f"STORE#{store_key}", "STORE")


def job_item_key(token: str) -> dict[str, dict[str, str]]:
    """The key of a job's item."""
    return item_key(f"JOB#{token}", "JOB")


def ordered(at: float, tail: str | int) -> str:
    """A sort key in the order of time, then of ``tail`` (index sort keys compare as strings)."""
    return f"{at:020.6f}#{tail}"


def parse_url(url: str) -> tuple[str, str | None]:
    """``dynamodb://TABLE[?region=REGION]`` → (table, region); the scheme in any case.

    Raises:
        JournalError: ``url`` is not such a URL, names no valid table, or a Region that is
            not a Region name.
    """
    shown = quoted(url)
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as exc:  # an unbalanced "[" in the host
        raise JournalError(f"{shown} is not a DynamoDB journal URL (dynamodb://TABLE)") from exc
    if parsed.scheme != SCHEME or not parsed.netloc or parsed.path not in ("", "/"):
        raise JournalError(f"{shown} is not a DynamoDB journal URL (dynamodb://TABLE)")
    if not _TABLE_NAME.fullmatch(parsed.netloc):
        raise JournalError(
            f"{shown}: {quoted(parsed.netloc)} is not a DynamoDB table name "
            "(3..255 of A-Z a-z 0-9 _ . -)"
        )
    query = urllib.parse.parse_qs(parsed.query)
    region = query.get("region", [None])[0]
    if region is not None and not is_region_name(region):
        raise JournalError(
            f"{shown}: region {quoted(region)} is not an AWS Region name (such as us-east-1)"
        )
    return parsed.netloc, region


class Outcome(NamedTuple):
    """One row's outcome in a recorded settlement (stored on the job's item as a JSON list)."""

    row_id: int
    state: str
    reference_id: str | None
    message: str | None
    attempts: int
    # Last, with a default: settlements recorded before rows had an md5 still read back.
    md5: str | None = None


def settlement_plan(
    job: JobRecord,
    settlements: Sequence[Settlement],
    requeue: Sequence[int],
    max_attempts: int,
    note: str,
) -> list[Outcome]:
    """Every row's outcome: the settlements as given, requeued rows failed past their attempts."""
    attempts = {r.row_id: r.attempts + 1 for r in job.rows}
    plan = [
        Outcome(s.row_id, s.state, s.reference_id, s.message, attempts.get(s.row_id, 1), s.md5)
        for s in settlements
    ]
    for row_id in requeue:
        tries = attempts.get(row_id, max_attempts)
        state = RowState.FAILED if tries >= max_attempts else RowState.QUEUED
        plan.append(Outcome(row_id, state, None, note, tries))
    return plan


def counter_update(states: Iterable[RowState]) -> dict[str, int]:
    """Counter changes for rows leaving the queue for these states (status counts)."""
    counters: dict[str, int] = {}
    for state in states:
        if state.is_final:
            counters[f"n_{state}"] = counters.get(f"n_{state}", 0) + 1
            counters["n_QUEUED"] = counters.get("n_QUEUED", 0) - 1
    return counters


def fenced_store_update(
    table: str,
    store_key: str,
    owner: str | None,
    counters: Mapping[str, int],
    *,
    active_token: str | None,
    release: bool = False,
) -> dict[str, Any]:
    """An Update of the store's item that is also the transaction's fence."""
    conditions = ["attribute_exists(pk)"]
    values: dict[str, Any] = {}
    if owner is not None:
        conditions.append("lease_owner = :o")
        values[":o"] = sv(owner)
    if active_token is not None:
        conditions.append("active_job = :t")
        values[":t"] = sv(active_token)
    adds = []
    for i, (name, n) in enumerate(sorted(counters.items())):
        adds.append(f"{name} :c{i}")
        values[f":c{i}"] = nv(n)
    parts = []
    if adds:
        parts.append("ADD " + ", ".join(adds))
    if release:
        parts.append("REMOVE active_job")
    if not parts:
        parts.append("SET #store = #store")
    update: dict[str, Any] = {
        "TableName": table,
        "Key": store_item_key(store_key),
        "UpdateExpression": " ".join(parts),
        "ConditionExpression": " AND ".join(conditions),
    }
    if values:
        update["ExpressionAttributeValues"] = values
    if not adds and not release:
        update["ExpressionAttributeNames"] = {"#store": "store"}
    return {"Update": update}


def chunk_created(chunk: Mapping[str, Any]) -> float:
    """When a queue entry was written (its sort key begins with the time)."""
    return float((get_s(chunk, "sk") or "0#").split("#", 1)[0])


def row_ids_of(item: Mapping[str, Any] | None) -> list[int]:
    """The row ids a queue entry, a job or an outbox entry lists, in order."""
    raw = get_s(item, "row_ids") if item else None
    return [int(i) for i in json.loads(raw)] if raw else []


def row_keys(row_ids: Iterable[int]) -> list[dict[str, dict[str, str]]]:
    """The keys of these rows' items, each once."""
    return [row_item_key(i) for i in dict.fromkeys(row_ids)]


def queued_row(item: Mapping[str, Any]) -> QueuedRow:
    """A row's item as a lane needs it."""
    return QueuedRow(
        row_id=int(get_n(item, "id") or 0),
        name=get_s(item, "name") or "",
        source_file=get_s(item, "source_file") or "",
        role_arn=get_s(item, "role_arn") or "",
        description=get_s(item, "description"),
        tags=_tags(item),
        attempts=int(get_n(item, "attempts") or 0),
    )


def _tags(item: Mapping[str, Any]) -> dict[str, str]:
    """A row item's tags (a JSON object of strings), or the error naming the item."""
    raw = get_s(item, "tags") or "{}"
    try:
        tags = json.loads(raw)
    except ValueError:
        tags = None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise invalid_item(item_name(item), f"tags {quoted(raw)} are not a JSON object of strings")
    return tags


def row_result(item: Mapping[str, Any]) -> RowResult:
    """A row's item as its result (a queued row in an active job is reported by the caller)."""
    store = store_of(get_s(item, "store") or "", item_name(item))
    return RowResult(
        row_id=int(get_n(item, "id") or 0),
        store_id=store.store_id,
        region=store.region,
        name=get_s(item, "name") or "",
        source_file=get_s(item, "source_file") or "",
        state=enum_of(RowState, get_s(item, "state") or "QUEUED", item_name(item), "state"),
        reference_id=get_s(item, "reference_id"),
        job_id=get_s(item, "job_id"),
        message=get_s(item, "message"),
        attempts=int(get_n(item, "attempts") or 0),
        md5=get_s(item, "md5"),
        original_source=get_s(item, "original_source"),
        role_arn=get_s(item, "role_arn"),
        source_md5=get_s(item, "source_md5"),
    )


def replace_result(result: RowResult, state: RowState, job_id: str | None) -> RowResult:
    """``result`` as a row of a running job reports it (one attempt more: the running one)."""
    return RowResult(
        row_id=result.row_id,
        store_id=result.store_id,
        region=result.region,
        name=result.name,
        source_file=result.source_file,
        state=state,
        reference_id=result.reference_id,
        job_id=job_id,
        message=result.message,
        attempts=result.attempts + 1,
        md5=result.md5,
        original_source=result.original_source,
        role_arn=result.role_arn,
        source_md5=result.source_md5,
    )


def job_record(item: Mapping[str, Any], rows: tuple[QueuedRow, ...]) -> JobRecord:
    """A job's item as its record, with ``rows``."""
    token = get_s(item, "client_token") or ""
    return JobRecord(
        id=job_number(token),
        store=store_of(get_s(item, "store") or "", item_name(item)),
        client_token=token,
        role_arn=get_s(item, "role_arn") or "",
        state=enum_of(JobState, get_s(item, "state") or "PENDING", item_name(item), "state"),
        written_at=get_n(item, "written_at") or 0.0,
        job_id=get_s(item, "job_id"),
        started_at=get_n(item, "started_at"),
        finished_at=get_n(item, "finished_at"),
        status=get_s(item, "status"),
        message=get_s(item, "message"),
        rows=rows,
    )
