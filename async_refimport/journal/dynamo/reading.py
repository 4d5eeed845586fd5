"""The DynamoDB journal's reader: results, jobs and status counts (it never writes).

Only ``results()`` of every row (``refimport report``) scans; everything else reads by key or from
one partition of the index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport.journal._common import store_of
from async_refimport.journal.base import JobRecord
from async_refimport.journal.dynamo.items import (
    get_n,
    get_s,
    item_name,
    job_record,
    replace_result,
    row_ids_of,
    row_keys,
    row_result,
    sv,
)
from async_refimport.journal.dynamo.table import DynamoTable


class JournalReaderRole(DynamoTable):
    """The :class:`~async_refimport.journal.base.JournalReader` role on a DynamoDB table."""

    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]:
        """Read-only: rows' current results, the given ids in order (consistent reads by key),
        or every row (a table scan: reports), oldest first.

        Raises:
            JournalError: the table cannot be read.
        """
        if row_ids is None:
            items = await self._scan_rows()
            items.sort(key=lambda i: (get_n(i, "created_at") or 0.0, get_n(i, "id") or 0.0))
        else:
            found = {int(get_n(i, "id") or 0): i for i in await self._batch_get(row_keys(row_ids))}
            items = [found[i] for i in row_ids if i in found]
        running: dict[str, tuple[set[int], str | None]] = {}
        results = []
        for item in items:
            result = row_result(item)
            if result.state is RowState.QUEUED:
                store_key = get_s(item, "store") or ""
                if store_key not in running:
                    _, job_item = await self._active(store_key)
                    running[store_key] = (
                        (set(row_ids_of(job_item)), get_s(job_item, "job_id"))
                        if job_item
                        else (set(), None)
                    )
                ids, job_id = running[store_key]
                if result.row_id in ids:
                    result = replace_result(result, RowState.SUBMITTED, job_id)
            results.append(result)
        return results

    async def iter_results(self, page: int = 1000) -> AsyncIterator[list[RowResult]]:
        """Read-only: every row in the order of ``results()``, ``page`` at a time. DynamoDB keeps
        no order across partitions: the table is scanned and sorted whole first, then handed out.

        Raises:
            JournalError: the table cannot be read.
        """
        results = await self.results()
        for start in range(0, len(results), page):
            yield results[start : start + page]

    async def _scan_rows(self) -> list[dict[str, Any]]:
        """Every row's item (a scan of the whole table)."""
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "FilterExpression": "sk = :row",
                "ExpressionAttributeValues": {":row": sv("ROW")},
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            response = await self._call("scan", **kwargs)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if start is None:
                return items

    async def jobs(self, store: StoreRef | None = None) -> list[JobRecord]:
        """Read-only: every job (without its rows), oldest first (from the index: eventually
        consistent).

        Raises:
            JournalError: the table cannot be read.
        """
        if store is not None:
            keys = [store.key]
        else:
            keys = [k for i in await self._query("STORES") if (k := get_s(i, "store"))]
        jobs = [job_record(item, ()) for key in keys for item in await self._query(f"J#{key}")]
        jobs.sort(key=lambda j: j.written_at)
        return jobs

    async def counts(self) -> dict[StoreRef, dict[RowState, int]]:
        """Read-only: rows per store and state, from counters kept with every change of state
        (final counts include rows since expired by TTL).

        Raises:
            JournalError: the table cannot be read.
        """
        out: dict[StoreRef, dict[RowState, int]] = {}
        for item in await self._query("STORES"):
            key = get_s(item, "store")
            if key is None:
                continue
            store_item, job_item = await self._active(key)
            fresh = store_item or item
            states: dict[RowState, int] = {}
            for state in (RowState.IMPORTED, RowState.ALREADY_PRESENT, RowState.FAILED):
                n = int(get_n(fresh, f"n_{state}") or 0)
                if n > 0:
                    states[state] = n
            running = len(row_ids_of(job_item)) if job_item else 0
            queued = max(0, int(get_n(fresh, "n_QUEUED") or 0) - running)
            if queued:
                states[RowState.QUEUED] = queued
            if running:
                states[RowState.SUBMITTED] = running
            if states:
                out[store_of(key, item_name(item))] = states
        return out
