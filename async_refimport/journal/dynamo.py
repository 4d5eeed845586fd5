"""The journal in one DynamoDB table, shared by every worker of a fleet.

:class:`DynamoJournal` implements the :class:`~async_refimport.journal.sqlite.Journal` protocol with the
same invariants as the SQLite journal, enforced by DynamoDB itself rather than by one file's locks:

* **Write ahead.** ``begin_job`` commits the job (its clientToken and row ids) and books the store in
  one transaction before StartReferenceImportJob is sent.
* **One active job per store.** The store's item holds ``active_job``; booking is a conditional write
  (``attribute_not_exists(active_job)``), never a read then a write.
* **Leases with fencing.** The store's item also holds the lease (owner, expiry). Every write that
  changes a store's rows or jobs is a transaction that includes a condition on that lease, so a
  worker that lost it (a paused process, a partition) has every such write refused
  (:class:`~async_refimport.LeaseLostError`).

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
host without a counter item, and they stay exact in JavaScript clients. A row is written once when
queued and once when settled; while its job runs it stays ``QUEUED`` in the table and is reported
``SUBMITTED`` because the store's active job lists it. Rows are in no index: the queue is read from
the store's own partition (strongly consistent), rows by key. Final rows, done jobs and sent outbox
entries carry a ``ttl`` attribute (settlement time plus the retention): DynamoDB's TTL compacts the
table, so :meth:`DynamoJournal.compact` has nothing to do. Only ``results()`` of every row
(``refimport report``) scans.

A job's settlement is recorded on its item under the lease (one transaction), then applied to its
rows with plain conditional writes (see :meth:`DynamoJournal.finish_job`), then the job is closed
and the store freed under the lease: the 100-item transaction limit never bounds a job, and a row
costs one write to queue and one to settle.

Throttling, transaction conflicts and lost connections are retried with the project's tenacity
policy; a missing table, denied access or missing credentials raise one clear
:class:`~async_refimport.JournalError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, NamedTuple

import anyio
import botocore.exceptions
from botocore.config import Config

from async_refimport._errors import (
    FieldError,
    JournalError,
    LeaseLostError,
    RequestValidationError,
    StoreBookedError,
    TransientServiceError,
)
from async_refimport._models import ImportRequest, RowResult, RowState, StoreRef
from async_refimport._retry import RetryPolicy, retrying
from async_refimport.journal.sqlite import (
    JobRecord,
    JobState,
    OutboxEntry,
    QueuedRow,
    Settlement,
    holder_is_gone,
    source_conflict,
)

SCHEME = "dynamodb"
INDEX = "by_group"
TTL_ATTRIBUTE = "ttl"
DEFAULT_RETENTION = 30 * 86_400.0

_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflictException",
        "LimitExceededException",
    }
)
_TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    ConnectionError,
    TimeoutError,
)
_CREDENTIAL_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
    botocore.exceptions.ProfileNotFound,
    botocore.exceptions.NoRegionError,
)
_ID_BITS = (1 << 53) - 1
_BATCH_GET = 100
_TXN_ROWS = 99
_CHUNK = 100
_CHUNK_GRACE = 600.0
_WRITERS = 16


# -- low-level attribute values --------------------------------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _get_s(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _get_n(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    return None if value is None else float(value["N"])


def _key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": _s(pk), "sk": _s(sk)}


def row_id_for(store: StoreRef, name: str) -> int:
    """The row id of ``name`` in ``store``: the same on every host, never 0."""
    digest = hashlib.blake2b(f"{store.key}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _ID_BITS or 1


def _job_number(token: str) -> int:
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _ID_BITS or 1


def _row_key(row_id: int) -> dict[str, dict[str, str]]:
    return _key(f"ROW#{row_id}", "ROW")


def _store_key(store_key: str) -> dict[str, dict[str, str]]:
    return _key(f"STORE#{store_key}", "STORE")


def _job_key(token: str) -> dict[str, dict[str, str]]:
    return _key(f"JOB#{token}", "JOB")


def _order(at: float, tail: str | int) -> str:
    # Lexicographic order of the index's sort key is the order of time, then of the tail.
    return f"{at:020.6f}#{tail}"


def parse_url(url: str) -> tuple[str, str | None]:
    """``dynamodb://TABLE[?region=REGION]`` → (table, region)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != SCHEME or not parsed.netloc or parsed.path not in ("", "/"):
        raise JournalError(f"{url!r} is not a DynamoDB journal URL (dynamodb://TABLE)")
    query = urllib.parse.parse_qs(parsed.query)
    region = query.get("region", [None])[0]
    return parsed.netloc, region


def _client_config() -> Config:
    # tenacity owns retries (one retry layer): botocore must not multiply attempts.
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=20,
        max_pool_connections=_WRITERS * 2,
    )


class DynamoJournal:
    """The journal in a DynamoDB table (see the module docstring for the layout).

    Args:
        table: The table's name (create it with :func:`create_table`).
        region: The table's Region (default: the AWS SDK's configuration).
        profile: An AWS profile (default: the standard credentials chain).
        retention: Seconds a final row, a done job or a sent result document is kept (TTL).
        retry: Backoff for throttling, transaction conflicts and lost connections.
        clock: Wall-clock seconds, injectable for tests.
        sleep: Async sleep used by backoff, injectable for tests.

    The endpoint comes from the standard ``AWS_ENDPOINT_URL_DYNAMODB`` variable (moto, DynamoDB Local).
    """

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        profile: str | None = None,
        retention: float = DEFAULT_RETENTION,
        retry: RetryPolicy = RetryPolicy(attempts=8, max_elapsed=60.0, initial=0.05),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.table = table
        self.region = region
        self.profile = profile
        self.retention = retention
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._writers = anyio.CapacityLimiter(_WRITERS)
        # Per unsent result document, its rows seen IMPORTED or ALREADY_PRESENT (they never change
        # again): each look at the outbox re-reads only the rest (see due_outbox).
        self._outbox_done: dict[str, set[int]] = {}

    @classmethod
    def from_url(cls, url: str, *, region: str | None = None) -> DynamoJournal:
        """A journal for ``dynamodb://TABLE[?region=R]``; ``region`` is the fallback Region."""
        table, url_region = parse_url(url)
        return cls(table, region=url_region or region)

    def __repr__(self) -> str:
        return f"DynamoJournal({self.table!r}, region={self.region!r})"

    def __str__(self) -> str:
        return f"dynamodb://{self.table}"

    # -- plumbing -------------------------------------------------------------------------------

    async def __aenter__(self) -> DynamoJournal:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._client is not None:
            return
        import aioboto3  # imported lazily: slow to import, and SQLite users never need it

        # AWS_REGION is what the AWS CLI and the other SDKs read; botocore reads only
        # AWS_DEFAULT_REGION and the profile, so honour it here as the rest of refimport does.
        region = self.region or os.environ.get("AWS_REGION") or None
        stack = AsyncExitStack()
        try:
            session = aioboto3.Session(profile_name=self.profile)
            self._client = await stack.enter_async_context(
                session.client("dynamodb", region_name=region, config=_client_config())
            )
            self._stack = stack
            description = await self._call("describe_table", TableName=self.table)
        except BaseException:
            self._client = None
            self._stack = None
            with anyio.move_on_after(5, shield=True):
                await stack.aclose()
            raise
        if problem := layout_problem(description["Table"]):
            await self.close()
            raise JournalError(
                f"DynamoDB table {self.table} is not a refimport journal ({problem}); "
                f"create one with: refimport journal init dynamodb://<new table>"
            )

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            with anyio.move_on_after(10, shield=True):
                await stack.aclose()

    def _fail(self, operation: str, error: BaseException) -> JournalError:
        """One clear line for what no retry can fix."""
        where = f"DynamoDB table {self.table}"
        if isinstance(error, botocore.exceptions.ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", "") or str(error)
            if code == "ResourceNotFoundException":
                return JournalError(
                    f"{where} does not exist (Region {self._region_name()}); create it with: "
                    f"refimport journal init dynamodb://{self.table}"
                )
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                return JournalError(f"{where}: access denied ({code}): {message}", code=code)
            return JournalError(f"{where}: {operation}: {code}: {message}", code=code)
        if isinstance(error, _CREDENTIAL_ERRORS):
            return JournalError(f"{where}: no usable AWS credentials or Region: {error}")
        if isinstance(error, TransientServiceError):
            return JournalError(f"{where}: {operation} kept failing: {error.code}: {error}")
        return JournalError(f"{where}: {operation}: {error}")

    def _region_name(self) -> str:
        client = self._client
        if client is not None:
            return str(client.meta.region_name)
        return self.region or "default"

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call, retried while the failure is transient.

        ``ConditionalCheckFailedException`` and non-transient ``TransactionCanceledException``
        propagate as botocore's ``ClientError`` for the caller to interpret; everything else that
        no retry can fix becomes a :class:`JournalError`.
        """
        client = self._client
        if client is None:
            raise JournalError(f"journal dynamodb://{self.table} is not open")
        try:
            async for attempt in retrying(self._retry, sleep=self._sleep):
                with attempt:
                    try:
                        response: dict[str, Any] = await getattr(client, operation)(**kwargs)
                        return response
                    except botocore.exceptions.ClientError as exc:
                        code = str(exc.response.get("Error", {}).get("Code", ""))
                        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                        if code in _TRANSIENT_CODES or status >= 500 or _transient_cancel(exc):
                            raise TransientServiceError(
                                str(exc), code=code, operation=operation
                            ) from exc
                        raise
                    except _CONNECTION_ERRORS as exc:
                        raise TransientServiceError(
                            str(exc) or type(exc).__name__,
                            code=type(exc).__name__,
                            operation=operation,
                            ambiguous=True,
                        ) from exc
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            raise self._fail(operation, exc) from exc
        except TransientServiceError as exc:
            raise self._fail(operation, exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(operation, exc) from exc
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        response = await self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return dict(item) if item is not None else None

    async def _batch_get(self, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Consistent reads of many items (any order; missing items are left out)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), _BATCH_GET):
            pending: list[Mapping[str, Any]] = list(keys[start : start + _BATCH_GET])
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
                "ExpressionAttributeValues": {":g": _s(group)},
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
        await self._call("transact_write_items", TransactItems=items)

    # -- intake ---------------------------------------------------------------------------------

    async def _existing(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> tuple[list[int], dict[int, dict[str, Any]], list[FieldError]]:
        """The requests' row ids, the rows journaled under them, and the requests refused for a
        name journaled with another source file."""
        ids = [row_id_for(store, req.name) for store, req in requests]
        existing = {
            int(_get_n(item, "id") or 0): item
            for item in await self._batch_get([_row_key(i) for i in dict.fromkeys(ids)])
        }
        conflicts: list[FieldError] = []
        for row_id, (store, req) in zip(ids, requests, strict=True):
            item = existing.get(row_id)
            if item is None:
                continue
            if (_get_s(item, "store"), _get_s(item, "name")) != (store.key, req.name):
                raise JournalError(
                    f"row id collision between {req.name!r} and {_get_s(item, 'name')!r}"
                )
            state = _get_s(item, "state") or RowState.QUEUED
            # A queued row may be in a job already: this journal tells that from the job only.
            shown = RowState.SUBMITTED if state == RowState.QUEUED else state
            conflict = source_conflict(store, req, shown, _get_s(item, "source_file"))
            if conflict is not None:
                conflicts.append(conflict)
        return ids, existing, conflicts

    async def conflicts(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> list[FieldError]:
        """What :meth:`add_rows` would refuse, writing nothing (see SQLiteJournal.conflicts)."""
        return (await self._existing(requests))[2]

    async def add_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]:
        """Journal requests as QUEUED rows; returns one row id per request, in order.

        The same rules as the SQLite journal: a final IMPORTED/ALREADY_PRESENT row is returned as
        is, a FAILED row is queued again with the new fields, a queued or running row is left alone,
        and a name journaled with another source file is refused before anything is written.
        """
        now = self._clock()
        ids, existing, conflicts = await self._existing(requests)
        if conflicts:
            raise RequestValidationError(conflicts)

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
            elif _get_s(item, "state") == RowState.FAILED:
                requeued.setdefault(store.key, []).append(row_id)
                plan.append((row_id, store, req, False))
        # The queue entries first, the rows second: a crash in between leaves entries that name
        # missing rows (skipped, then dropped), never a queued row that no entry names.
        for key in stores:
            queued = fresh.get(key, []) + requeued.get(key, [])
            for start in range(0, len(queued), _CHUNK):
                await self._put_chunk(key, queued[start : start + _CHUNK], now)
        async with anyio.create_task_group() as tg:
            for row_id, store, req, new in plan:
                if new:
                    tg.start_soon(self._put_row, row_id, store, req, submission, now)
                else:
                    tg.start_soon(self._requeue_failed, row_id, store, req, submission, now)
        for key in stores:
            # Counters for status (cosmetic: a crash before this line leaves them short).
            n_fresh, n_requeued = len(fresh.get(key, [])), len(requeued.get(key, []))
            await self._call(
                "update_item",
                TableName=self.table,
                Key=_store_key(key),
                UpdateExpression="SET #store = :k, gpk = :g, gsk = :k ADD n_QUEUED :q, n_FAILED :f",
                ExpressionAttributeNames={"#store": "store"},
                ExpressionAttributeValues={
                    ":k": _s(key),
                    ":g": _s("STORES"),
                    ":q": _n(n_fresh + n_requeued),
                    ":f": _n(-n_requeued),
                },
            )
        return ids

    async def _put_chunk(self, store_key: str, row_ids: list[int], now: float) -> None:
        """One queue entry: up to a job's worth of row ids, in the store's queue order."""
        await self._call(
            "put_item",
            TableName=self.table,
            Item={
                **_key(f"QUEUE#{store_key}", _order(now, uuid.uuid4().hex)),
                "store": _s(store_key),
                "row_ids": _s(json.dumps(row_ids)),
            },
        )

    def _row_fields(
        self, store: StoreRef, req: ImportRequest, submission: str | None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "store": _s(store.key),
            "name": _s(req.name),
            "source_file": _s(req.source_file),
            "role_arn": _s(req.role_arn),
            "tags": _s(json.dumps(dict(req.tags), sort_keys=True)),
        }
        if req.description is not None:
            fields["description"] = _s(req.description)
        if submission is not None:
            fields["submission"] = _s(submission)
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
            **_row_key(row_id),
            **self._row_fields(store, req, submission),
            "id": _n(row_id),
            "state": _s(RowState.QUEUED),
            "attempts": _n(0),
            "created_at": _n(now),
            "updated_at": _n(now),
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
                    Key=_row_key(row_id),
                    UpdateExpression=f"SET {sets}, #state = :queued, attempts = :zero,"
                    " updated_at = :now"
                    " REMOVE reference_id, message, md5, job, job_id, #ttl"
                    + ("" if req.description is not None else ", description")
                    + ("" if submission is not None else ", submission"),
                    ConditionExpression="#state = :failed",
                    ExpressionAttributeNames={**names, "#state": "state", "#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        **values,
                        ":queued": _s(RowState.QUEUED),
                        ":failed": _s(RowState.FAILED),
                        ":zero": _n(0),
                        ":now": _n(now),
                    },
                )
            except botocore.exceptions.ClientError:
                pass  # requeued meanwhile by another intake

    async def stores_with_work(self) -> list[StoreRef]:
        """Stores with an active job or a queued row."""
        stores: list[StoreRef] = []
        for item in await self._query("STORES"):
            key = _get_s(item, "store")
            if key is None:
                continue
            store = StoreRef.from_key(key)
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
                "ExpressionAttributeValues": {":q": _s(f"QUEUE#{store_key}")},
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

    async def _active(self, store_key: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The store's item and its active job's item (consistent reads)."""
        store_item = await self._get(_store_key(store_key))
        token = _get_s(store_item, "active_job") if store_item else None
        job_item = await self._get(_job_key(token)) if token else None
        return store_item, job_item

    async def queued_rows(self, store: StoreRef, limit: int) -> list[QueuedRow]:
        """The oldest queued rows of a store that share one role ARN (one job has one role).

        Walks the store's queue entries in order and reads their rows by key; an entry whose rows
        are all final (or missing) is dropped on the way.
        """
        _, job_item = await self._active(store.key)
        running = set(_row_ids(job_item)) if job_item else set()
        wanted: list[QueuedRow] = []
        seen: set[int] = set()
        role: str | None = None
        for chunk in await self._chunks(store.key):
            ids = [i for i in _row_ids(chunk) if i not in seen]
            seen.update(ids)
            items: dict[int, dict[str, Any]] = {}
            step = max(limit, 10)
            # Read the entry's rows a slice at a time: a caller that wants one row (is there
            # work?) reads ten, not a hundred.
            for start in range(0, len(ids), step):
                part = ids[start : start + step]
                items.update(
                    {int(_get_n(i, "id") or 0): i for i in await self._batch_get(_keys(part))}
                )
                for row_id in part:
                    item = items.get(row_id)
                    if (
                        item is None
                        or row_id in running
                        or _get_s(item, "state") != RowState.QUEUED
                    ):
                        continue
                    row = _queued_row(item)
                    role = role or row.role_arn
                    if row.role_arn == role:
                        wanted.append(row)
                        if len(wanted) >= limit:
                            return wanted
            if not any(_get_s(i, "state") == RowState.QUEUED for i in items.values()):
                # Every row of the entry is settled. Drop the entry once no intake can still be
                # writing a row it names (entries are written first): every row was settled
                # after the entry was written, or the entry is old.
                created = _chunk_created(chunk)
                settled_since = len(items) == len(ids) and all(
                    (_get_n(i, "updated_at") or 0.0) >= created for i in items.values()
                )
                if settled_since or self._clock() - created > _CHUNK_GRACE:
                    await self._call(
                        "delete_item",
                        TableName=self.table,
                        Key={"pk": chunk["pk"], "sk": chunk["sk"]},
                    )
        return wanted

    async def queued_count(self, store: StoreRef) -> int:
        """Queued rows not in the active job (from the store's counters)."""
        store_item, job_item = await self._active(store.key)
        running = len(_row_ids(job_item)) if job_item else 0
        queued = int(_get_n(store_item, "n_QUEUED") or 0) if store_item else 0
        return max(0, queued - running)

    async def settle_queued(
        self,
        settlements: Sequence[Settlement],
        *,
        store: StoreRef | None = None,
        owner: str | None = None,
    ) -> None:
        """Settle queued rows without a job (name already present, or the store is unusable)."""
        if not settlements:
            return
        if owner is not None and store is None:
            raise ValueError("fencing by owner needs the store")
        now = self._clock()
        by_store: dict[str, list[Settlement]] = {}
        if store is not None:
            by_store[store.key] = list(settlements)
        else:
            items = await self._batch_get([_row_key(s.row_id) for s in settlements])
            where = {int(_get_n(i, "id") or 0): _get_s(i, "store") or "" for i in items}
            for s in settlements:
                if s.row_id in where:
                    by_store.setdefault(where[s.row_id], []).append(s)
        for store_key, group in by_store.items():
            pending = list(group)
            while pending:
                chunk, pending = pending[:_TXN_ROWS], pending[_TXN_ROWS:]
                await self._settle_chunk(store_key, chunk, owner, now)

    async def _settle_chunk(
        self, store_key: str, chunk: list[Settlement], owner: str | None, now: float
    ) -> None:
        while chunk:
            counters = _counter_update([s.state for s in chunk])
            store_update = _fenced_store_update(
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
                row["Update"]["ExpressionAttributeValues"][":queued"] = _s(RowState.QUEUED)
            try:
                await self._transact([store_update, *rows])
                return
            except botocore.exceptions.ClientError as exc:
                reasons = _reasons(exc)
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    raise _lease_lost(store_key, owner) from exc
                # Rows no longer queued (settled by their job meanwhile) keep their state.
                failed = {i - 1 for i, r in enumerate(reasons) if r == "ConditionalCheckFailed"}
                if not failed:
                    raise self._fail("TransactWriteItems", exc) from exc
                chunk = [s for i, s in enumerate(chunk) if i not in failed]

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
            ":state": _s(s.state),
            ":now": _n(now),
            ":ttl": _n(int(now + self.retention)),
        }
        for name, value in (
            ("reference_id", s.reference_id),
            ("message", s.message),
            ("md5", s.md5),
        ):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = _s(value)
            else:
                removes.append(name)
        for name, value in (("job", job), ("job_id", job_id)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = _s(value)
        if attempts is not None:
            sets.append("attempts = :attempts")
            values[":attempts"] = _n(attempts)
        return {
            "TableName": self.table,
            "Key": _row_key(s.row_id),
            "UpdateExpression": f"SET {', '.join(sets)}"
            + (f" REMOVE {', '.join(removes)}" if removes else ""),
            "ExpressionAttributeNames": {"#state": "state", "#ttl": TTL_ATTRIBUTE},
            "ExpressionAttributeValues": values,
        }

    # -- jobs -----------------------------------------------------------------------------------

    async def begin_job(
        self,
        store: StoreRef,
        rows: Sequence[QueuedRow],
        client_token: str,
        owner: str | None = None,
    ) -> JobRecord:
        """Write a job ahead of its Start call and book the store, in one transaction.

        Raises:
            StoreBookedError: the store already has an active job (possibly another worker's).
            LeaseLostError: another owner holds the store's lease.
        """
        if not rows:
            raise ValueError("a job needs at least one row")
        now = self._clock()
        role_arn = rows[0].role_arn
        condition = "attribute_not_exists(active_job)"
        values: dict[str, Any] = {":t": _s(client_token), ":k": _s(store.key), ":g": _s("STORES")}
        if owner is not None:
            condition += (
                " AND (attribute_not_exists(lease_owner) OR lease_owner = :o"
                " OR lease_expires < :now)"
            )
            values.update({":o": _s(owner), ":now": _n(now)})
        job_item = {
            **_job_key(client_token),
            "store": _s(store.key),
            "client_token": _s(client_token),
            "role_arn": _s(role_arn),
            "state": _s(JobState.PENDING),
            "written_at": _n(now),
            "row_ids": _s(json.dumps([r.row_id for r in rows])),
            "gpk": _s(f"J#{store.key}"),
            "gsk": _s(_order(now, client_token)),
        }
        try:
            await self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _store_key(store.key),
                            "UpdateExpression": "SET active_job = :t, #store = :k, gpk = :g,"
                            " gsk = :k",
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": {"#store": "store"},
                            "ExpressionAttributeValues": values,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": job_item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except botocore.exceptions.ClientError as exc:
            reasons = _reasons(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                # The store's item as the condition saw it (a fresh read may already differ).
                seen = _cancelled_items(exc)[0] or await self._get(_store_key(store.key)) or {}
                holder = _get_s(seen, "lease_owner")
                if (
                    owner is not None
                    and holder not in (None, owner)
                    and (_get_n(seen, "lease_expires") or 0.0) >= now
                ):
                    raise _lease_lost(store.key, owner) from exc
                raise StoreBookedError(
                    f"store {store} already has an active job", store_key=store.key
                ) from exc
            raise self._fail("TransactWriteItems", exc) from exc
        return JobRecord(
            id=_job_number(client_token),
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
        now = self._clock()
        update = {
            "Update": {
                "TableName": self.table,
                "Key": _job_key(job.client_token),
                "UpdateExpression": "SET job_id = :j, #state = :running, started_at = :now",
                "ConditionExpression": "#state = :pending",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":j": _s(job_id),
                    ":running": _s(JobState.RUNNING),
                    ":pending": _s(JobState.PENDING),
                    ":now": _n(now),
                },
            }
        }
        try:
            await self._transact(
                [self._lease_check(job.store.key, owner, job.client_token), update]
            )
        except botocore.exceptions.ClientError as exc:
            reasons = _reasons(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise _lease_lost(job.store.key, owner) from exc
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise JournalError(
                    f"job {job.client_token} is no longer pending (taken over?)"
                ) from exc
            raise self._fail("TransactWriteItems", exc) from exc
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

    def _lease_check(self, store_key: str, owner: str | None, token: str) -> dict[str, Any]:
        """A ConditionCheck that the job is the store's active one (and ``owner`` holds the lease)."""
        condition = "active_job = :t"
        values: dict[str, Any] = {":t": _s(token)}
        if owner is not None:
            condition += " AND lease_owner = :o"
            values[":o"] = _s(owner)
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": _store_key(store_key),
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            }
        }

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
        """Settle a job's rows, close the job and free the store.

        Rows in ``requeue`` go back to QUEUED unless they have now taken part in ``max_attempts``
        jobs, in which case they fail with ``message``. Returns the rows' results after the change.

        Three steps, so that a job of 100 rows costs one write per row, not two:

        1. the settlement (every row's outcome) is recorded on the job's item, in a transaction
           fenced by the lease: this is the decision, and only the lease holder makes it;
        2. each row is updated from it, conditioned on the row still being queued with fewer
           attempts: a write repeated after a crash, or one delayed in a worker that lost its
           lease meanwhile, finds the row already settled (or further on) and changes nothing;
        3. the job is closed and the store freed, fenced again.

        A crash before step 3 leaves the job active: the next lease holder finds the recorded
        settlement and applies that one, whatever a new look at the service would say.
        """
        now = self._clock()
        current = await self._get(_job_key(job.client_token))
        if current is not None and _get_s(current, "state") == JobState.DONE:
            # Settled already (by another worker that took the store over): keep its verdict.
            return await self.results(_row_ids(current))
        row_ids = [r.row_id for r in job.rows] or (_row_ids(current) if current else [])
        recorded = _get_s(current, "settlement") if current else None
        if recorded is not None:
            plan = [_Outcome(*entry) for entry in json.loads(recorded)]
        else:
            plan = _plan(job, settlements, requeue, max_attempts, message or f"job ended {status}")
            fence = self._lease_check(job.store.key, owner, job.client_token)
            record = {
                "Update": {
                    "TableName": self.table,
                    "Key": _job_key(job.client_token),
                    "UpdateExpression": "SET settlement = :plan",
                    "ExpressionAttributeValues": {":plan": _s(json.dumps([list(o) for o in plan]))},
                }
            }
            try:
                await self._transact([fence, record])
            except botocore.exceptions.ClientError as exc:
                refusal = await self._refused(job, owner, exc)
                if isinstance(refusal, _SettledElsewhere):
                    return await self.results(row_ids)
                raise refusal from exc
        job_id = job.job_id or (_get_s(current, "job_id") if current else None)
        async with anyio.create_task_group() as tg:
            for outcome in plan:
                tg.start_soon(self._apply, outcome, job.client_token, job_id, now)
        close_job: dict[str, Any] = {
            "Update": {
                "TableName": self.table,
                "Key": _job_key(job.client_token),
                "UpdateExpression": "SET #state = :done, #status = :status, finished_at = :now,"
                " #ttl = :ttl" + (", message = :m" if message is not None else ""),
                "ExpressionAttributeNames": {"#state": "state", "#status": "status", "#ttl": "ttl"},
                "ExpressionAttributeValues": {
                    ":done": _s(JobState.DONE),
                    ":status": _s(status),
                    ":now": _n(now),
                    ":ttl": _n(int(now + self.retention)),
                    **({":m": _s(message)} if message is not None else {}),
                },
            }
        }
        free_store = _fenced_store_update(
            self.table,
            job.store.key,
            owner,
            _counter_update([RowState(o.state) for o in plan]),
            active_token=job.client_token,
            release=True,
        )
        try:
            await self._transact([free_store, close_job])
        except botocore.exceptions.ClientError as exc:
            refusal = await self._refused(job, owner, exc)
            if not isinstance(refusal, _SettledElsewhere):
                raise refusal from exc
        return await self.results(row_ids)

    async def _refused(
        self, job: JobRecord, owner: str | None, exc: botocore.exceptions.ClientError
    ) -> Exception:
        """What a refused settlement transaction means: fenced out, or settled elsewhere."""
        reasons = _reasons(exc)
        if not reasons or reasons[0] != "ConditionalCheckFailed":
            return self._fail("TransactWriteItems", exc)
        settled = await self._get(_job_key(job.client_token))
        if settled is not None and _get_s(settled, "state") == JobState.DONE:
            return _SettledElsewhere()
        return _lease_lost(job.store.key, owner)

    async def _apply(self, outcome: _Outcome, token: str, job_id: str | None, now: float) -> None:
        """Step 2 of :meth:`finish_job` for one row (idempotent, never moves a row back)."""
        state = RowState(outcome.state)
        if state is RowState.QUEUED:
            update: dict[str, Any] = {
                "TableName": self.table,
                "Key": _row_key(outcome.row_id),
                "UpdateExpression": "SET message = :m, attempts = :a, updated_at = :now,"
                " job = :job",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":m": _s(outcome.message or ""),
                    ":a": _n(outcome.attempts),
                    ":now": _n(now),
                    ":job": _s(token),
                },
            }
        else:
            settlement = Settlement(
                outcome.row_id, state, outcome.reference_id, outcome.message, outcome.md5
            )
            update = self._settle_update(
                settlement, job=token, job_id=job_id, attempts=outcome.attempts, now=now
            )
        update["ConditionExpression"] = "#state = :queued AND attempts < :a"
        update["ExpressionAttributeValues"].update(
            {":queued": _s(RowState.QUEUED), ":a": _n(outcome.attempts)}
        )
        async with self._writers:
            try:
                await self._call("update_item", **update)
            except botocore.exceptions.ClientError:
                pass  # applied already, or the row has moved on (a later job of the new holder)

    async def unfinished_jobs(self, store: StoreRef) -> list[JobRecord]:
        _, job_item = await self._active(store.key)
        if job_item is None:
            return []
        ids = _row_ids(job_item)
        items = {int(_get_n(i, "id") or 0): i for i in await self._batch_get(_keys(ids))}
        rows = tuple(_queued_row(items[i]) for i in ids if i in items)
        return [_job_record(job_item, rows)]

    async def known_job_ids(self, store: StoreRef) -> set[str]:
        """Job ids the journal holds for a store (the index may lag a just-recorded id by moments)."""
        return {
            job_id
            for item in await self._query(f"J#{store.key}")
            if (job_id := _get_s(item, "job_id")) is not None
        }

    # -- reading --------------------------------------------------------------------------------

    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]:
        """Rows' current results: the given ids in order, or every row (a table scan: reports)."""
        if row_ids is None:
            items = await self._scan_rows()
            items.sort(key=lambda i: (_get_n(i, "created_at") or 0.0, _get_n(i, "id") or 0.0))
        else:
            found = {int(_get_n(i, "id") or 0): i for i in await self._batch_get(_keys(row_ids))}
            items = [found[i] for i in row_ids if i in found]
        running: dict[str, tuple[set[int], str | None]] = {}
        results = []
        for item in items:
            result = _row_result(item)
            if result.state is RowState.QUEUED:
                store_key = _get_s(item, "store") or ""
                if store_key not in running:
                    _, job_item = await self._active(store_key)
                    running[store_key] = (
                        (set(_row_ids(job_item)), _get_s(job_item, "job_id"))
                        if job_item
                        else (set(), None)
                    )
                ids, job_id = running[store_key]
                if result.row_id in ids:
                    result = _replace_result(result, RowState.SUBMITTED, job_id)
            results.append(result)
        return results

    async def iter_results(self, page: int = 1000) -> AsyncIterator[list[RowResult]]:
        """Every row in the order of ``results()``, ``page`` at a time. DynamoDB keeps no order
        across partitions: the table is scanned and sorted whole first, then handed out."""
        results = await self.results()
        for start in range(0, len(results), page):
            yield results[start : start + page]

    async def _scan_rows(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "FilterExpression": "sk = :row",
                "ExpressionAttributeValues": {":row": _s("ROW")},
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            response = await self._call("scan", **kwargs)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if start is None:
                return items

    async def jobs(self, store: StoreRef | None = None) -> list[JobRecord]:
        """Every job (without its rows), oldest first."""
        if store is not None:
            keys = [store.key]
        else:
            keys = [k for i in await self._query("STORES") if (k := _get_s(i, "store"))]
        jobs = [_job_record(item, ()) for key in keys for item in await self._query(f"J#{key}")]
        jobs.sort(key=lambda j: j.written_at)
        return jobs

    async def counts(self) -> dict[StoreRef, dict[RowState, int]]:
        """Rows per store and state, from counters kept with every change of state (final
        counts include rows since expired by TTL)."""
        out: dict[StoreRef, dict[RowState, int]] = {}
        for item in await self._query("STORES"):
            key = _get_s(item, "store")
            if key is None:
                continue
            store_item, job_item = await self._active(key)
            fresh = store_item or item
            states: dict[RowState, int] = {}
            for state in (RowState.IMPORTED, RowState.ALREADY_PRESENT, RowState.FAILED):
                n = int(_get_n(fresh, f"n_{state}") or 0)
                if n > 0:
                    states[state] = n
            running = len(_row_ids(job_item)) if job_item else 0
            queued = max(0, int(_get_n(fresh, "n_QUEUED") or 0) - running)
            if queued:
                states[RowState.QUEUED] = queued
            if running:
                states[RowState.SUBMITTED] = running
            if states:
                out[StoreRef.from_key(key)] = states
        return out

    # -- several workers, long runs -------------------------------------------------------------

    async def acquire_lease(self, store: StoreRef, owner: str, ttl: float) -> bool:
        """Take or renew the right to drive ``store`` for ``ttl`` seconds; False if another owner
        holds a live lease. Expiry is judged by this host's clock: keep hosts NTP-synchronised
        and ``ttl`` well above their skew."""
        now = self._clock()
        try:
            await self._call(
                "update_item",
                TableName=self.table,
                Key=_store_key(store.key),
                UpdateExpression="SET lease_owner = :o, lease_expires = :exp, #store = :k,"
                " gpk = :g, gsk = :k",
                ConditionExpression="attribute_not_exists(lease_owner) OR lease_owner = :o"
                " OR lease_expires < :now",
                ExpressionAttributeNames={"#store": "store"},
                ExpressionAttributeValues={
                    ":o": _s(owner),
                    ":exp": _n(now + ttl),
                    ":now": _n(now),
                    ":k": _s(store.key),
                    ":g": _s("STORES"),
                },
            )
        except botocore.exceptions.ClientError:
            held = await self.lease_holder(store)
            if held is None or not holder_is_gone(held[0]):
                return False
            # The holder was a process on this host that no longer exists (kill -9): take over
            # from exactly that holder rather than idle the store until its lease lapses.
            try:
                await self._call(
                    "update_item",
                    TableName=self.table,
                    Key=_store_key(store.key),
                    UpdateExpression="SET lease_owner = :o, lease_expires = :exp",
                    ConditionExpression="lease_owner = :dead",
                    ExpressionAttributeValues={
                        ":o": _s(owner),
                        ":exp": _n(now + ttl),
                        ":dead": _s(held[0]),
                    },
                )
            except botocore.exceptions.ClientError:
                return False
        return True

    async def release_lease(self, store: StoreRef, owner: str) -> None:
        try:
            await self._call(
                "update_item",
                TableName=self.table,
                Key=_store_key(store.key),
                UpdateExpression="REMOVE lease_owner, lease_expires",
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeValues={":o": _s(owner)},
            )
        except botocore.exceptions.ClientError:
            pass  # not ours any more

    async def lease_holder(self, store: StoreRef) -> tuple[str, float] | None:
        """Who holds the store's lease and until when (epoch seconds), if anyone."""
        item = await self._get(_store_key(store.key))
        owner = _get_s(item, "lease_owner") if item else None
        if item is None or owner is None:
            return None
        return owner, _get_n(item, "lease_expires") or 0.0

    async def compact(self, older_than: float) -> int:
        """Nothing to do: DynamoDB's TTL deletes final rows, done jobs and sent result documents
        ``retention`` seconds after they settled."""
        return 0

    # -- result documents owed to submitters ------------------------------------------------------

    async def add_outbox(self, submission: str, reply_to: str, row_ids: Sequence[int]) -> None:
        now = self._clock()
        try:
            await self._call(
                "put_item",
                TableName=self.table,
                Item={
                    **_key(f"OUTBOX#{submission}", "OUTBOX"),
                    "submission": _s(submission),
                    "reply_to": _s(reply_to),
                    "row_ids": _s(json.dumps(list(row_ids))),
                    "created_at": _n(now),
                    "gpk": _s("OUTBOX"),
                    "gsk": _s(_order(now, submission)),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except botocore.exceptions.ClientError:
            pass  # owed already (a redelivered message): the first entry stands

    async def due_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """Unsent result documents whose rows are all final (or forgotten by the TTL).

        Every worker looks often, so a look must not read every row of every open document: one
        pending row decides that a document is not due. Rows are read in order, one per document
        in the first round and four times more in each next one, and those seen IMPORTED or
        ALREADY_PRESENT are remembered (they never change again); a FAILED row may be queued
        again by a re-run, so it is read every time.
        """
        entries = {
            _get_s(item, "submission") or "": (_get_s(item, "reply_to") or "", _row_ids(item))
            for item in await self._query("OUTBOX")
        }
        self._outbox_done = {k: v for k, v in self._outbox_done.items() if k in entries}
        final_now: set[int] = set()  # FAILED (or compacted) in this look
        undecided = list(entries)
        due: list[OutboxEntry] = []
        probe = 1
        while undecided and len(due) < limit:
            wanted: dict[str, list[int]] = {}
            for submission in undecided:
                done = self._outbox_done.setdefault(submission, set())
                rest = [i for i in entries[submission][1] if i not in done and i not in final_now]
                if rest:
                    wanted[submission] = rest[:probe]
                else:
                    reply_to, ids = entries[submission]
                    due.append(OutboxEntry(submission, reply_to, tuple(ids)))
            read = await self._batch_get(_keys(i for ids in wanted.values() for i in ids))
            states = {
                int(_get_n(r, "id") or 0): RowState(_get_s(r, "state") or RowState.QUEUED)
                for r in read
            }
            undecided = []
            probe = min(probe * 4, _BATCH_GET)
            for submission, ids in wanted.items():
                for row_id in ids:
                    state = states.get(row_id)
                    if state in (RowState.IMPORTED, RowState.ALREADY_PRESENT):
                        self._outbox_done[submission].add(row_id)
                    elif state is None or state is RowState.FAILED:
                        final_now.add(row_id)
                    else:
                        break  # pending: not due
                else:
                    undecided.append(submission)
        return due[:limit]

    async def close_outbox(self, submission: str) -> bool:
        now = self._clock()
        try:
            await self._call(
                "update_item",
                TableName=self.table,
                Key=_key(f"OUTBOX#{submission}", "OUTBOX"),
                UpdateExpression="SET sent_at = :now, #ttl = :ttl REMOVE gpk, gsk",
                ConditionExpression="attribute_exists(gpk)",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":now": _n(now),
                    ":ttl": _n(int(now + self.retention)),
                },
            )
        except botocore.exceptions.ClientError:
            return False
        return True


# -- item helpers ----------------------------------------------------------------------------------


class _Outcome(NamedTuple):
    """One row's outcome in a recorded settlement (stored on the job's item as a JSON list)."""

    row_id: int
    state: str
    reference_id: str | None
    message: str | None
    attempts: int
    # Last, with a default: settlements recorded before rows had an md5 still read back.
    md5: str | None = None


class _SettledElsewhere(Exception):
    """The job was closed by another lease holder: its verdict stands."""


def _plan(
    job: JobRecord,
    settlements: Sequence[Settlement],
    requeue: Sequence[int],
    max_attempts: int,
    note: str,
) -> list[_Outcome]:
    """Every row's outcome: the settlements as given, requeued rows failed past their attempts."""
    attempts = {r.row_id: r.attempts + 1 for r in job.rows}
    plan = [
        _Outcome(s.row_id, s.state, s.reference_id, s.message, attempts.get(s.row_id, 1), s.md5)
        for s in settlements
    ]
    for row_id in requeue:
        tries = attempts.get(row_id, max_attempts)
        state = RowState.FAILED if tries >= max_attempts else RowState.QUEUED
        plan.append(_Outcome(row_id, state, None, note, tries))
    return plan


def _transient_cancel(error: botocore.exceptions.ClientError) -> bool:
    """A cancelled transaction that another attempt can carry (a conflict, throttling)."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = _reasons(error)
    return any(r in _TRANSIENT_REASONS for r in reasons) and "ConditionalCheckFailed" not in reasons


def _reasons(error: botocore.exceptions.ClientError) -> list[str]:
    """The per-item codes of a cancelled transaction (``None`` for items that were fine)."""
    reasons = error.response.get("CancellationReasons")
    if reasons is None and error.response.get("Error", {}).get("Code") == (
        "ConditionalCheckFailedException"
    ):
        return ["ConditionalCheckFailed"]
    return [str(r.get("Code", "None")) for r in reasons or []]


def _cancelled_items(error: botocore.exceptions.ClientError) -> list[dict[str, Any] | None]:
    """The items a cancelled transaction's conditions saw (``ReturnValuesOnConditionCheckFailure``)."""
    reasons: list[Any] = list(error.response.get("CancellationReasons") or [])
    return [dict(r["Item"]) if r.get("Item") else None for r in reasons] or [None]


def _lease_lost(store_key: str, owner: str | None) -> LeaseLostError:
    return LeaseLostError(
        f"store {store_key}: the lease is not held by {owner} (or its job is no longer active)",
        store_key=store_key,
        owner=owner,
    )


def _counter_update(states: Iterable[RowState]) -> dict[str, int]:
    """Counter changes for rows leaving the queue for these states (status counts)."""
    counters: dict[str, int] = {}
    for state in states:
        if state.is_final:
            counters[f"n_{state}"] = counters.get(f"n_{state}", 0) + 1
            counters["n_QUEUED"] = counters.get("n_QUEUED", 0) - 1
    return counters


def _fenced_store_update(
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
        values[":o"] = _s(owner)
    if active_token is not None:
        conditions.append("active_job = :t")
        values[":t"] = _s(active_token)
    adds = []
    for i, (name, n) in enumerate(sorted(counters.items())):
        adds.append(f"{name} :c{i}")
        values[f":c{i}"] = _n(n)
    parts = []
    if adds:
        parts.append("ADD " + ", ".join(adds))
    if release:
        parts.append("REMOVE active_job")
    if not parts:
        parts.append("SET #store = #store")
    update: dict[str, Any] = {
        "TableName": table,
        "Key": _store_key(store_key),
        "UpdateExpression": " ".join(parts),
        "ConditionExpression": " AND ".join(conditions),
    }
    if values:
        update["ExpressionAttributeValues"] = values
    if not adds and not release:
        update["ExpressionAttributeNames"] = {"#store": "store"}
    return {"Update": update}


def _chunk_created(chunk: Mapping[str, Any]) -> float:
    return float((_get_s(chunk, "sk") or "0#").split("#", 1)[0])


def _row_ids(item: Mapping[str, Any] | None) -> list[int]:
    raw = _get_s(item, "row_ids") if item else None
    return [int(i) for i in json.loads(raw)] if raw else []


def _keys(row_ids: Iterable[int]) -> list[dict[str, dict[str, str]]]:
    return [_row_key(i) for i in dict.fromkeys(row_ids)]


def _queued_row(item: Mapping[str, Any]) -> QueuedRow:
    return QueuedRow(
        row_id=int(_get_n(item, "id") or 0),
        name=_get_s(item, "name") or "",
        source_file=_get_s(item, "source_file") or "",
        role_arn=_get_s(item, "role_arn") or "",
        description=_get_s(item, "description"),
        tags=json.loads(_get_s(item, "tags") or "{}"),
        attempts=int(_get_n(item, "attempts") or 0),
    )


def _row_result(item: Mapping[str, Any]) -> RowResult:
    store = StoreRef.from_key(_get_s(item, "store") or "")
    return RowResult(
        row_id=int(_get_n(item, "id") or 0),
        store_id=store.store_id,
        region=store.region,
        name=_get_s(item, "name") or "",
        source_file=_get_s(item, "source_file") or "",
        state=RowState(_get_s(item, "state") or RowState.QUEUED),
        reference_id=_get_s(item, "reference_id"),
        job_id=_get_s(item, "job_id"),
        message=_get_s(item, "message"),
        attempts=int(_get_n(item, "attempts") or 0),
        md5=_get_s(item, "md5"),
    )


def _replace_result(result: RowResult, state: RowState, job_id: str | None) -> RowResult:
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
    )


def _job_record(item: Mapping[str, Any], rows: tuple[QueuedRow, ...]) -> JobRecord:
    token = _get_s(item, "client_token") or ""
    return JobRecord(
        id=_job_number(token),
        store=StoreRef.from_key(_get_s(item, "store") or ""),
        client_token=token,
        role_arn=_get_s(item, "role_arn") or "",
        state=JobState(_get_s(item, "state") or JobState.PENDING),
        written_at=_get_n(item, "written_at") or 0.0,
        job_id=_get_s(item, "job_id"),
        started_at=_get_n(item, "started_at"),
        finished_at=_get_n(item, "finished_at"),
        status=_get_s(item, "status"),
        message=_get_s(item, "message"),
        rows=rows,
    )


# -- table management -------------------------------------------------------------------------------


def layout_problem(table: Mapping[str, Any]) -> str | None:
    """What makes a described table unlike a journal's (``None``: it is laid out as one).

    A journal's table has string keys ``pk`` (hash) and ``sk`` (range) and the ``by_group`` index
    on string keys ``gpk`` and ``gsk``; anything else is another application's table.
    """
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}

    def keys(schema: Sequence[Mapping[str, str]]) -> list[tuple[str, str, str | None]]:
        return [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"])) for k in schema]

    if keys(table.get("KeySchema", [])) != [("pk", "HASH", "S"), ("sk", "RANGE", "S")]:
        return "its key is not pk (string, hash) + sk (string, range)"
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    index = indexes.get(INDEX)
    if index is None:
        return f"it has no {INDEX} index"
    if keys(index.get("KeySchema", [])) != [("gpk", "HASH", "S"), ("gsk", "RANGE", "S")]:
        return f"its {INDEX} index is not keyed gpk (string, hash) + gsk (string, range)"
    return None


async def create_table(
    table: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    wait: float = 300.0,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> bool:
    """Create the journal's table (on-demand billing, the ``by_group`` index) and enable its TTL.

    Idempotent: an existing table is left as it is (its TTL is enabled if it was not). Waits until
    the table is ACTIVE.

    Returns:
        True if the table was created, False if it existed already.

    Raises:
        JournalError: the table cannot be created (access denied, no credentials, a table of that
            name with another layout).
    """
    import aioboto3

    journal = DynamoJournal(table, region=region, profile=profile, sleep=sleep)
    session = aioboto3.Session(profile_name=profile)
    created = False
    region = region or os.environ.get("AWS_REGION") or None
    async with session.client("dynamodb", region_name=region, config=_client_config()) as client:
        journal._client = client
        try:
            try:
                await journal._call(
                    "create_table",
                    TableName=table,
                    BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[
                        {"AttributeName": name, "AttributeType": "S"}
                        for name in ("pk", "sk", "gpk", "gsk")
                    ],
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    GlobalSecondaryIndexes=[
                        {
                            "IndexName": INDEX,
                            "KeySchema": [
                                {"AttributeName": "gpk", "KeyType": "HASH"},
                                {"AttributeName": "gsk", "KeyType": "RANGE"},
                            ],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                    ],
                    Tags=[{"Key": "created-by", "Value": "async-refimport"}],
                )
                created = True
            except JournalError as exc:
                if exc.code != "ResourceInUseException":
                    raise
            with anyio.fail_after(wait):
                while True:
                    described = await journal._call("describe_table", TableName=table)
                    # A table of that name that is not a journal is someone else's: refuse it
                    # before anything is changed (enabling TTL would expire its items).
                    if problem := layout_problem(described["Table"]):
                        raise JournalError(
                            f"DynamoDB table {table} is not a refimport journal ({problem}); "
                            "it was left unchanged: choose another table name"
                        )
                    if described["Table"].get("TableStatus") == "ACTIVE":
                        break
                    await sleep(1.0)
            ttl = await journal._call("describe_time_to_live", TableName=table)
            description = ttl.get("TimeToLiveDescription", {})
            status = description.get("TimeToLiveStatus")
            attribute = description.get("AttributeName")
            if attribute not in (None, TTL_ATTRIBUTE) and status in ("ENABLED", "ENABLING"):
                raise JournalError(
                    f"DynamoDB table {table} expires items by {attribute!r}, not "
                    f"{TTL_ATTRIBUTE!r}: not a refimport journal's TTL; it was left unchanged"
                )
            if status not in ("ENABLED", "ENABLING"):
                await journal._call(
                    "update_time_to_live",
                    TableName=table,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
                )
        finally:
            journal._client = None
    return created
