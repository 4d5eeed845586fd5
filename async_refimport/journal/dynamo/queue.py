"""The DynamoDB journal's row queue: journaling requests, reading and settling a store's queue.

A row is written once when queued and once when settled; while its job runs it stays ``QUEUED`` in
the table and is reported ``SUBMITTED`` because the store's active job lists it. Rows are in no
index: the queue is read from the store's own partition (strongly consistent), rows by key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import botocore.exceptions

from async_refimport._errors import FieldError, JournalError, RequestValidationError
from async_refimport._models import ImportRequest, RowState, StoreRef
from async_refimport.journal._common import (
    other_spellings,
    source_conflict,
    store_of,
    warn_other_spelling,
)
from async_refimport.journal.base import QueuedRow, Settlement
from async_refimport.journal.dynamo.calls import cancellation_reasons, lease_lost
from async_refimport.journal.dynamo.items import (
    CHUNK_GRACE,
    CHUNK_ROWS,
    TTL_ATTRIBUTE,
    TXN_ROWS,
    chunk_created,
    counter_update,
    fenced_store_update,
    get_n,
    get_s,
    item_key,
    item_name,
    nv,
    ordered,
    queued_row,
    row_id_for,
    row_ids_of,
    row_item_key,
    row_keys,
    store_item_key,
    sv,
)
from async_refimport.journal.dynamo.table import DynamoTable


class RowQueueRole(DynamoTable):
    """The :class:`~async_refimport.journal.base.RowQueue` role on a DynamoDB table."""

    async def _existing(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> tuple[list[int], dict[int, dict[str, Any]], list[FieldError]]:
        """The requests' row ids, the rows journaled under them, and the requests refused for a
        name journaled with another source file."""
        ids = [row_id_for(store, req.name) for store, req in requests]
        existing = {
            int(get_n(item, "id") or 0): item
            for item in await self._batch_get([row_item_key(i) for i in dict.fromkeys(ids)])
        }
        conflicts: list[FieldError] = []
        for row_id, (store, req) in zip(ids, requests, strict=True):
            item = existing.get(row_id)
            if item is None:
                continue
            if (get_s(item, "store"), get_s(item, "name")) != (store.key, req.name):
                raise JournalError(
                    f"row id collision between {req.name!r} and {get_s(item, 'name')!r}"
                )
            state = get_s(item, "state") or RowState.QUEUED
            # A queued row may be in a job already: this journal tells that from the job only.
            shown = RowState.SUBMITTED if state == RowState.QUEUED else state
            # A staged row (none on this journal yet) is matched by its manifest source.
            journaled = get_s(item, "original_source") or get_s(item, "source_file")
            conflict = source_conflict(store, req, shown, journaled)
            if conflict is not None:
                conflicts.append(conflict)
        return ids, existing, conflicts

    async def _warn_other_spellings(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> None:
        """Warn of each new name journaled for its store in another Unicode normalization."""
        others = {
            row_id_for(store, other): (store, req.name, other)
            for store, req in requests
            for other in other_spellings(req.name)
        }
        if not others:
            return  # ASCII names: the common case, no read
        for item in await self._batch_get([row_item_key(i) for i in others]):
            store, name, other = others[int(get_n(item, "id") or 0)]
            if get_s(item, "name") == other:
                warn_other_spelling(store, name, other)

    async def conflicts(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> list[FieldError]:
        """Read-only: what :meth:`add_rows` would refuse (a name journaled for its store with
        another source file).

        Raises:
            JournalError: the table cannot be read.
        """
        return (await self._existing(requests))[2]

    async def add_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]:
        """Journal requests as QUEUED rows; idempotent per name, not fenced.

        The same rules as the SQLite journal: a final IMPORTED/ALREADY_PRESENT row is returned as
        is, a FAILED row is queued again with the new fields, a queued or running row is left alone,
        and a name journaled with another source file is refused before anything is written. Not
        one transaction: queue entries are written first, then each row once (a conditional
        write), so a crash midway leaves entries naming missing rows, never a lost queued row.

        Returns:
            One row id per request, in order.

        Raises:
            RequestValidationError: a name is journaled for its store with another source file.
            JournalError: the table cannot be written.
        """
        now = self._clock()
        ids, existing, conflicts = await self._existing(requests)
        if conflicts:
            raise RequestValidationError(conflicts)
        await self._warn_other_spellings(
            [(s, r) for i, (s, r) in zip(ids, requests, strict=True) if i not in existing]
        )

        stores = {store.key: store for store, _ in requests}
        fresh: dict[str, list[int]] = {}
        requeued: dict[str, list[int]] = {}
        plan: list[tuple[int, StoreRef, ImportRequest, bool]] = []
        planned: set[int] = set()
        for row_id, (store, req) in zip(ids, requests, strict=True):
            if row_id in planned:
                continue
            planned.add(row_id)
            item = existing.get(row_id)
            if item is None:
                fresh.setdefault(store.key, []).append(row_id)
                plan.append((row_id, store, req, True))
            elif get_s(item, "state") == RowState.FAILED:
                requeued.setdefault(store.key, []).append(row_id)
                plan.append((row_id, store, req, False))
        # The queue entries first, the rows second: a crash in between leaves entries that name
        # missing rows (skipped, then dropped), never a queued row that no entry names.
        for key in stores:
            queued = fresh.get(key, []) + requeued.get(key, [])
            for start in range(0, len(queued), CHUNK_ROWS):
                await self._put_chunk(key, queued[start : start + CHUNK_ROWS], now)
        async with anyio.create_task_group() as tg:
            for row_id, store, req, new in plan:
                if new:
                    tg.start_soon(self._put_row, row_id, store, req, submission, now)
                else:
                    tg.start_soon(self._requeue_failed, row_id, store, req, submission, now)
        for key in stores:
            # Counters for status (cosmetic: a crash before this line leaves them short).
            await self._count_queued(key, len(fresh.get(key, [])), len(requeued.get(key, [])))
        return ids

    async def _count_queued(self, key: str, n_fresh: int, n_requeued: int) -> None:
        """Add newly queued rows to the store's counters (and list the store in the index)."""
        await self._call(
            "update_item",
            TableName=self.table,
            Key=store_item_key(key),
            UpdateExpression="SET #store = :k, gpk = :g, gsk = :k ADD n_QUEUED :q, n_FAILED :f",
            ExpressionAttributeNames={"#store": "store"},
            ExpressionAttributeValues={
                ":k": sv(key),
                ":g": sv("STORES"),
                ":q": nv(n_fresh + n_requeued),
                ":f": nv(-n_requeued),
            },
        )

    async def _put_chunk(self, store_key: str, row_ids: list[int], now: float) -> None:
        """One queue entry: up to a job's worth of row ids, in the store's queue order."""
        await self._call(
            "put_item",
            TableName=self.table,
            Item={
                **item_key(f"QUEUE#{store_key}", ordered(now, uuid.uuid4().hex)),
                "store": sv(store_key),
                "row_ids": sv(json.dumps(row_ids)),
            },
        )

    def _row_fields(
        self, store: StoreRef, req: ImportRequest, submission: str | None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "store": sv(store.key),
            "name": sv(req.name),
            "source_file": sv(req.source_file),
            "role_arn": sv(req.role_arn),
            "tags": sv(json.dumps(dict(req.tags), sort_keys=True)),
        }
        if req.description is not None:
            fields["description"] = sv(req.description)
        if req.source_md5 is not None:
            fields["source_md5"] = sv(req.source_md5)
        if submission is not None:
            fields["submission"] = sv(submission)
        return fields

    async def _put_row(
        self,
        row_id: int,
        store: StoreRef,
        req: ImportRequest,
        submission: str | None,
        now: float,
    ) -> None:
        item = {
            **row_item_key(row_id),
            **self._row_fields(store, req, submission),
            "id": nv(row_id),
            "state": sv(RowState.QUEUED),
            "attempts": nv(0),
            "created_at": nv(now),
            "updated_at": nv(now),
        }
        async with self._writers:
            try:
                await self._call(
                    "put_item",
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except botocore.exceptions.ClientError:
                # Added meanwhile by another intake (a redelivered message on another worker):
                # that row stands, exactly as a re-run finds it.
                pass

    async def _requeue_failed(
        self,
        row_id: int,
        store: StoreRef,
        req: ImportRequest,
        submission: str | None,
        now: float,
    ) -> None:
        fields = self._row_fields(store, req, submission)
        names = {f"#{k}": k for k in fields}
        values = {f":{k}": v for k, v in fields.items()}
        sets = ", ".join(f"#{k} = :{k}" for k in fields)
        async with self._writers:
            try:
                await self._call(
                    "update_item",
                    TableName=self.table,
                    Key=row_item_key(row_id),
                    UpdateExpression=f"SET {sets}, #state = :queued, attempts = :zero,"
                    " updated_at = :now"
                    " REMOVE reference_id, message, md5, job, job_id, #ttl, original_source"
                    + ("" if req.description is not None else ", description")
                    + ("" if req.source_md5 is not None else ", source_md5")
                    + ("" if submission is not None else ", submission"),
                    ConditionExpression="#state = :failed",
                    ExpressionAttributeNames={**names, "#state": "state", "#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        **values,
                        ":queued": sv(RowState.QUEUED),
                        ":failed": sv(RowState.FAILED),
                        ":zero": nv(0),
                        ":now": nv(now),
                    },
                )
            except botocore.exceptions.ClientError:
                pass  # requeued meanwhile by another intake

    async def stores_with_work(self) -> list[StoreRef]:
        """Stores with an active job or a queued row; reads, and may drop queue entries that
        name only settled rows (see :meth:`queued_rows`).

        Raises:
            JournalError: the table cannot be read.
        """
        stores: list[StoreRef] = []
        for item in await self._query("STORES"):
            key = get_s(item, "store")
            if key is None:
                continue
            store = store_of(key, item_name(item))
            if "active_job" in item or await self.queued_rows(store, 1):
                stores.append(store)
        return stores

    async def _chunks(self, store_key: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The store's queue entries, oldest first (a strongly consistent query of one partition)."""
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :q",
                "ExpressionAttributeValues": {":q": sv(f"QUEUE#{store_key}")},
                "ConsistentRead": True,
                "Limit": 25 if limit is None else limit,
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            response = await self._call("query", **kwargs)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if start is None or (limit is not None and len(items) >= limit):
                return items

    async def queued_rows(self, store: StoreRef, limit: int) -> list[QueuedRow]:
        """The oldest queued rows of a store that share one role ARN (one job has one role).

        Reads: walks the store's queue entries in order (strongly consistent) and reads their rows
        by key; the one write, idempotent, drops an entry whose rows are all final (or missing).

        Raises:
            JournalError: the table cannot be read.
        """
        _, job_item = await self._active(store.key)
        running = set(row_ids_of(job_item)) if job_item else set()
        wanted: list[QueuedRow] = []
        seen: set[int] = set()
        role: str | None = None
        for chunk in await self._chunks(store.key):
            ids = [i for i in row_ids_of(chunk) if i not in seen]
            seen.update(ids)
            items: dict[int, dict[str, Any]] = {}
            step = max(limit, 10)
            # Read the entry's rows a slice at a time: a caller that wants one row (is there
            # work?) reads ten, not a hundred.
            for start in range(0, len(ids), step):
                part = ids[start : start + step]
                items.update(
                    {int(get_n(i, "id") or 0): i for i in await self._batch_get(row_keys(part))}
                )
                for row_id in part:
                    item = items.get(row_id)
                    if item is None or row_id in running or get_s(item, "state") != RowState.QUEUED:
                        continue
                    row = queued_row(item)
                    role = role or row.role_arn
                    if row.role_arn == role:
                        wanted.append(row)
                        if len(wanted) >= limit:
                            return wanted
            if not any(get_s(i, "state") == RowState.QUEUED for i in items.values()):
                # Every row of the entry is settled. Drop the entry once no intake can still be
                # writing a row it names (entries are written first): every row was settled
                # after the entry was written, or the entry is old.
                created = chunk_created(chunk)
                settled_since = len(items) == len(ids) and all(
                    (get_n(i, "updated_at") or 0.0) >= created for i in items.values()
                )
                if settled_since or self._clock() - created > CHUNK_GRACE:
                    await self._call(
                        "delete_item",
                        TableName=self.table,
                        Key={"pk": chunk["pk"], "sk": chunk["sk"]},
                    )
        return wanted

    async def queued_count(self, store: StoreRef) -> int:
        """Read-only: queued rows not in the active job (from the store's counters).

        Raises:
            JournalError: the table cannot be read.
        """
        store_item, job_item = await self._active(store.key)
        running = len(row_ids_of(job_item)) if job_item else 0
        queued = int(get_n(store_item, "n_QUEUED") or 0) if store_item else 0
        return max(0, queued - running)

    async def settle_queued(
        self,
        settlements: Sequence[Settlement],
        *,
        store: StoreRef | None = None,
        owner: str | None = None,
    ) -> None:
        """Settle queued rows without a job (name already present, or the store is unusable).

        Atomic per 99 rows with the fence (one transaction with the store's item), fenced by
        ``store``'s lease when ``owner`` is given; idempotent (a row no longer queued, settled by
        its job meanwhile, keeps its state).

        Raises:
            ValueError: ``owner`` given without ``store``.
            LeaseLostError: ``owner`` does not hold ``store``'s lease.
            JournalError: the table cannot be written.
        """
        if not settlements:
            return
        if owner is not None and store is None:
            raise ValueError("fencing by owner needs the store")
        now = self._clock()
        by_store: dict[str, list[Settlement]] = {}
        if store is not None:
            by_store[store.key] = list(settlements)
        else:
            items = await self._batch_get([row_item_key(s.row_id) for s in settlements])
            where = {int(get_n(i, "id") or 0): get_s(i, "store") or "" for i in items}
            for s in settlements:
                if s.row_id in where:
                    by_store.setdefault(where[s.row_id], []).append(s)
        for store_key, group in by_store.items():
            pending = list(group)
            while pending:
                chunk, pending = pending[:TXN_ROWS], pending[TXN_ROWS:]
                await self._settle_chunk(store_key, chunk, owner, now)

    async def _settle_chunk(
        self, store_key: str, chunk: list[Settlement], owner: str | None, now: float
    ) -> None:
        while chunk:
            counters = counter_update([s.state for s in chunk])
            store_update = fenced_store_update(
                self.table, store_key, owner, counters, active_token=None
            )
            rows = [
                {
                    "Update": {
                        **self._settle_update(s, job=None, job_id=None, attempts=None, now=now),
                        "ConditionExpression": "#state = :queued",
                    }
                }
                for s in chunk
            ]
            for row in rows:
                row["Update"]["ExpressionAttributeValues"][":queued"] = sv(RowState.QUEUED)
            try:
                await self._transact([store_update, *rows])
                return
            except botocore.exceptions.ClientError as exc:
                reasons = cancellation_reasons(exc)
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    raise lease_lost(store_key, owner) from exc
                # Rows no longer queued (settled by their job meanwhile) keep their state.
                failed = {i - 1 for i, r in enumerate(reasons) if r == "ConditionalCheckFailed"}
                if not failed:
                    raise self._fail("TransactWriteItems", exc) from exc
                chunk = [s for i, s in enumerate(chunk) if i not in failed]
