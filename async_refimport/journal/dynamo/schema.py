"""The DynamoDB journal's table: its DDL (:func:`create_table`), its check (:func:`layout_problem`),
and its TTL.

A journal's table has string keys ``pk`` (hash) and ``sk`` (range), the ``by_group`` index on
string keys ``gpk`` and ``gsk``, on-demand billing, and DynamoDB's TTL on the ``ttl`` attribute
(final rows, done jobs and sent result documents expire ``retention`` seconds after they settled).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio

from async_refimport._errors import JournalError
from async_refimport.aws.clients import ClientPool
from async_refimport.journal.dynamo.calls import (
    DEFAULT_RETRY,
    call_with_retries,
    client_config,
    explain_failure,
)
from async_refimport.journal.dynamo.items import INDEX, TTL_ATTRIBUTE

_Call = Callable[..., Awaitable[dict[str, Any]]]
_TTL_ON = ("ENABLED", "ENABLING")

_TABLE_DEFINITION: dict[str, Any] = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gpk", "gsk")
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": INDEX,
            "KeySchema": [
                {"AttributeName": "gpk", "KeyType": "HASH"},
                {"AttributeName": "gsk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "Tags": [{"Key": "created-by", "Value": "async-refimport"}],
}


def layout_problem(table: Mapping[str, Any]) -> str | None:
    """What makes a described table unlike a journal's.

    A journal's table has string keys ``pk`` (hash) and ``sk`` (range) and the ``by_group`` index
    on string keys ``gpk`` and ``gsk``; anything else is another application's table.

    Args:
        table: DescribeTable's ``Table``.

    Returns:
        The difference, in words, or ``None`` if it is laid out as a journal.
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
    the table is ACTIVE. The client comes from a :class:`~async_refimport.aws.clients.ClientPool`
    of its own, closed on return.

    Args:
        table: The table's name.
        region: Its Region (default: ``AWS_REGION``, then the AWS SDK's configuration).
        profile: An AWS profile (default: the standard credentials chain).
        wait: Seconds to wait for the table to become ACTIVE.
        sleep: Async sleep between looks (and of the calls' backoff), injectable for tests.

    Returns:
        True if the table was created, False if it existed already.

    Raises:
        JournalError: the table cannot be created (access denied, no credentials, a table of that
            name with another layout).
        TimeoutError: the table did not become ACTIVE within ``wait`` seconds.
    """
    async with ClientPool() as pool:
        client = await pool.client(
            "dynamodb", region=region, profile=profile, config=client_config()
        )

        def fail(operation: str, error: BaseException) -> JournalError:
            return explain_failure(table, str(client.meta.region_name), operation, error)

        async def call(operation: str, **kwargs: Any) -> dict[str, Any]:
            return await call_with_retries(
                client, operation, kwargs, retry=DEFAULT_RETRY, sleep=sleep, fail=fail
            )

        created = await _create(call, table)
        with anyio.fail_after(wait):
            await _until_active(call, table, sleep)
        await _enable_ttl(call, table)
    return created


async def _create(call: _Call, table: str) -> bool:
    """Create the table; False if it exists already (DynamoDB's ResourceInUseException)."""
    try:
        await call("create_table", TableName=table, **_TABLE_DEFINITION)
    except JournalError as exc:
        if exc.code != "ResourceInUseException":
            raise
        return False
    return True


async def _until_active(call: _Call, table: str, sleep: Callable[[float], Awaitable[None]]) -> None:
    """Wait for the table to be ACTIVE, refusing one that is not laid out as a journal."""
    while True:
        described = await call("describe_table", TableName=table)
        # A table of that name that is not a journal is someone else's: refuse it before
        # anything is changed (enabling TTL would expire its items).
        if problem := layout_problem(described["Table"]):
            raise JournalError(
                f"DynamoDB table {table} is not a refimport journal ({problem}); "
                "it was left unchanged: choose another table name"
            )
        if described["Table"].get("TableStatus") == "ACTIVE":
            return
        await sleep(1.0)


async def _enable_ttl(call: _Call, table: str) -> None:
    """Enable TTL on :data:`TTL_ATTRIBUTE` unless on already; refuse a TTL on another attribute."""
    ttl = await call("describe_time_to_live", TableName=table)
    description = ttl.get("TimeToLiveDescription", {})
    status = description.get("TimeToLiveStatus")
    attribute = description.get("AttributeName")
    if attribute not in (None, TTL_ATTRIBUTE) and status in _TTL_ON:
        raise JournalError(
            f"DynamoDB table {table} expires items by {attribute!r}, not "
            f"{TTL_ATTRIBUTE!r}: not a refimport journal's TTL; it was left unchanged"
        )
    if status not in _TTL_ON:
        await call(
            "update_time_to_live",
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
