"""The DynamoDB journal's plumbing: its client, its calls, and the reads every role shares.

The client comes from a :class:`~async_refimport.aws.clients.ClientPool`: the journal's own, or one
it is given. Calls go through :func:`~async_refimport.journal.dynamo.calls.call_with_retries`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Self

import anyio
import botocore.exceptions

from async_refimport._errors import JournalError
from async_refimport._retry import RetryPolicy
from async_refimport.aws.clients import ClientPool
from async_refimport.journal.base import Settlement
from async_refimport.journal.dynamo.calls import (
    DEFAULT_RETRY,
    WRITERS,
    call_with_retries,
    client_config,
    explain_failure,
)
from async_refimport.journal.dynamo.items import (
    BATCH_GET,
    DEFAULT_RETENTION,
    INDEX,
    TTL_ATTRIBUTE,
    get_s,
    job_item_key,
    nv,
    row_item_key,
    store_item_key,
    sv,
)
from async_refimport.journal.dynamo.schema import layout_problem


class DynamoTable:
    """A DynamoDB journal's table, client and calls: the base every role of
    :class:`~async_refimport.DynamoJournal` builds on.

    Args:
        table: The table's name (create it with :func:`~async_refimport.journal.dynamo.create_table`).
        region: The table's Region (default: ``AWS_REGION``, then the AWS SDK's configuration).
        profile: An AWS profile (default: the standard credentials chain).
        retention: Seconds a final row, a done job or a sent result document is kept (TTL).
        retry: Backoff for throttling, transaction conflicts and lost connections.
        clock: Wall-clock seconds, injectable for tests.
        sleep: Async sleep used by backoff, injectable for tests.
        pool: The AWS client pool to take the client from (default: the journal's own, closed
            with it); a given pool is left open.

    The endpoint comes from botocore's configuration chain (``AWS_ENDPOINT_URL_DYNAMODB``,
    ``AWS_ENDPOINT_URL``, the profile): moto, DynamoDB Local.
    """

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        profile: str | None = None,
        retention: float = DEFAULT_RETENTION,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        pool: ClientPool | None = None,
    ) -> None:
        self.table = table
        self.region = region
        self.profile = profile
        self.retention = retention
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._given_pool = pool
        self._own_pool: ClientPool | None = None
        self._client: Any = None
        self._writers = anyio.CapacityLimiter(WRITERS)
        # Per unsent result document, its rows seen IMPORTED or ALREADY_PRESENT (they never change
        # again): each look at the outbox re-reads only the rest (see due_outbox).
        self._outbox_done: dict[str, set[int]] = {}

    def __repr__(self) -> str:
        return f"DynamoJournal({self.table!r}, region={self.region!r})"

    def __str__(self) -> str:
        return f"dynamodb://{self.table}"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Make the client and check that the table is laid out as a journal; idempotent.

        Raises:
            JournalError: the table is missing, unreachable, or not a refimport journal.
        """
        if self._client is not None:
            return
        pool = self._given_pool or ClientPool()
        try:
            try:
                self._client = await pool.client(
                    "dynamodb", region=self.region, profile=self.profile, config=client_config()
                )
            except botocore.exceptions.BotoCoreError as exc:  # no Region, an unknown profile
                raise self._fail("open", exc) from exc
            description = await self._call("describe_table", TableName=self.table)
        except BaseException:
            self._client = None
            if pool is not self._given_pool:
                with anyio.move_on_after(5, shield=True):
                    await pool.aclose()
            raise
        self._own_pool = None if pool is self._given_pool else pool
        if problem := layout_problem(description["Table"]):
            await self.close()
            raise JournalError(
                f"DynamoDB table {self.table} is not a refimport journal ({problem}); "
                f"create one with: refimport journal init dynamodb://<new table>"
            )

    async def aclose(self) -> None:
        """Drop the client, closing the journal's own pool (bounded, shielded); idempotent."""
        await self.close()

    async def close(self) -> None:
        """The same as :meth:`aclose` (kept for callers of earlier versions; subclasses that
        close differently override this one)."""
        pool, self._own_pool = self._own_pool, None
        self._client = None
        if pool is not None:
            await pool.aclose()

    def _fail(self, operation: str, error: BaseException) -> JournalError:
        """One clear line for what no retry can fix."""
        return explain_failure(self.table, self._region_name(), operation, error)

    def _region_name(self) -> str:
        client = self._client
        if client is not None:
            return str(client.meta.region_name)
        return self.region or "default"

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call, retried while the failure is transient (see
        :func:`call_with_retries`)."""
        client = self._client
        if client is None:
            raise JournalError(f"journal dynamodb://{self.table} is not open")
        return await call_with_retries(
            client, operation, kwargs, retry=self._retry, sleep=self._sleep, fail=self._fail
        )

    async def _get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        response = await self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return dict(item) if item is not None else None

    async def _batch_get(self, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Consistent reads of many items (any order; missing items are left out)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET):
            pending: list[Mapping[str, Any]] = list(keys[start : start + BATCH_GET])
            while pending:
                response = await self._call(
                    "batch_get_item",
                    RequestItems={self.table: {"Keys": pending, "ConsistentRead": True}},
                )
                found.extend(response.get("Responses", {}).get(self.table, []))
                pending = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if pending:
                    await self._sleep(0.05)
        return found

    async def _query(self, group: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Items of one group of the index, in order (eventually consistent)."""
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": INDEX,
                "KeyConditionExpression": "gpk = :g",
                "ExpressionAttributeValues": {":g": sv(group)},
            }
            if limit is not None:
                kwargs["Limit"] = max(limit - len(items), 1)
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            response = await self._call("query", **kwargs)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if start is None or (limit is not None and len(items) >= limit):
                return items

    async def _transact(self, items: list[dict[str, Any]]) -> None:
        """One TransactWriteItems of ``items`` (all or nothing)."""
        await self._call("transact_write_items", TransactItems=items)

    async def _active(self, store_key: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The store's item and its active job's item (consistent reads)."""
        store_item = await self._get(store_item_key(store_key))
        token = get_s(store_item, "active_job") if store_item else None
        job_item = await self._get(job_item_key(token)) if token else None
        return store_item, job_item

    def _settle_update(
        self,
        s: Settlement,
        *,
        job: str | None,
        job_id: str | None,
        attempts: int | None,
        now: float,
    ) -> dict[str, Any]:
        """The Update of one row to a final state."""
        sets = ["#state = :state", "updated_at = :now", "#ttl = :ttl"]
        removes: list[str] = []
        values: dict[str, Any] = {
            ":state": sv(s.state),
            ":now": nv(now),
            ":ttl": nv(int(now + self.retention)),
        }
        for name, value in (
            ("reference_id", s.reference_id),
            ("message", s.message),
            ("md5", s.md5),
        ):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = sv(value)
            else:
                removes.append(name)
        for name, value in (("job", job), ("job_id", job_id)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = sv(value)
        if attempts is not None:
            sets.append("attempts = :attempts")
            values[":attempts"] = nv(attempts)
        return {
            "TableName": self.table,
            "Key": row_item_key(s.row_id),
            "UpdateExpression": f"SET {', '.join(sets)}"
            + (f" REMOVE {', '.join(removes)}" if removes else ""),
            "ExpressionAttributeNames": {"#state": "state", "#ttl": TTL_ATTRIBUTE},
            "ExpressionAttributeValues": values,
        }
