"""The DynamoDB journal's calls: one retried call, its errors mapped, the client's configuration.

Throttling, transaction conflicts and lost connections are retried with the project's tenacity
policy (botocore's own retries are off, :func:`~async_refimport.aws.clients.no_retries`); a missing
table, denied access or missing credentials raise one clear :class:`~async_refimport.JournalError`.
Both the journal (:mod:`.table`) and the table's DDL (:mod:`.schema`) call through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import botocore.exceptions
from botocore.config import Config

from async_refimport._errors import JournalError, LeaseLostError, TransientServiceError
from async_refimport._retry import RetryPolicy, retrying
from async_refimport.aws.clients import no_retries

WRITERS = 16
"""Concurrent single-item writes of one journal (rows settled or queued in parallel)."""

DEFAULT_RETRY = RetryPolicy(attempts=8, max_elapsed=60.0, initial=0.05)
"""The backoff of a journal's calls when none is given."""

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
_PASSED_THROUGH = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})


def client_config() -> Config:
    """The DynamoDB client's configuration: botocore's retries off (tenacity owns retries, one
    retry layer), short connect and read timeouts, a connection per concurrent writer and more."""
    return no_retries(connect_timeout=5, read_timeout=20, max_pool_connections=WRITERS * 2)


class SettledElsewhere(Exception):
    """The job was closed by another lease holder: its verdict stands."""


def error_code(error: botocore.exceptions.ClientError) -> str:
    """The service's error code of ``error`` (``""`` if it has none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def transient_cancel(error: botocore.exceptions.ClientError) -> bool:
    """Whether a cancelled transaction is one another attempt can carry (a conflict, throttling)."""
    if error_code(error) != "TransactionCanceledException":
        return False
    reasons = cancellation_reasons(error)
    return any(r in _TRANSIENT_REASONS for r in reasons) and "ConditionalCheckFailed" not in reasons


def cancellation_reasons(error: botocore.exceptions.ClientError) -> list[str]:
    """The per-item codes of a cancelled transaction (``"None"`` for items that were fine); a
    single conditional write's refusal reads as one ``ConditionalCheckFailed``."""
    reasons = error.response.get("CancellationReasons")
    if reasons is None and error_code(error) == "ConditionalCheckFailedException":
        return ["ConditionalCheckFailed"]
    return [str(r.get("Code", "None")) for r in reasons or []]


def fenced_out(error: botocore.exceptions.ClientError) -> bool:
    """Whether a transaction was refused by its first item's condition (its fence)."""
    reasons = cancellation_reasons(error)
    return bool(reasons) and reasons[0] == "ConditionalCheckFailed"


def cancelled_items(error: botocore.exceptions.ClientError) -> list[dict[str, Any] | None]:
    """The items a cancelled transaction's conditions saw (``ReturnValuesOnConditionCheckFailure``)."""
    reasons: list[Any] = list(error.response.get("CancellationReasons") or [])
    return [dict(r["Item"]) if r.get("Item") else None for r in reasons] or [None]


def lease_lost(store_key: str, owner: str | None) -> LeaseLostError:
    """The refusal of a fenced write by ``owner`` for the store ``store_key``."""
    return LeaseLostError(
        f"store {store_key}: the lease is not held by {owner} (or its job is no longer active)",
        store_key=store_key,
        owner=owner,
    )


def explain_failure(table: str, region: str, operation: str, error: BaseException) -> JournalError:
    """One clear line for what no retry can fix.

    Args:
        table: The table's name.
        region: Its Region (for a missing table).
        operation: The DynamoDB operation that failed.
        error: What it raised.

    Returns:
        The error to raise (with the service's code, where there is one).
    """
    where = f"DynamoDB table {table}"
    if isinstance(error, botocore.exceptions.ClientError):
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        if code == "ResourceNotFoundException":
            return JournalError(
                f"{where} does not exist (Region {region}); create it with: "
                f"refimport journal init dynamodb://{table}"
            )
        if code in ("AccessDeniedException", "UnrecognizedClientException"):
            return JournalError(f"{where}: access denied ({code}): {message}", code=code)
        return JournalError(f"{where}: {operation}: {code}: {message}", code=code)
    if isinstance(error, _CREDENTIAL_ERRORS):
        return JournalError(f"{where}: no usable AWS credentials or Region: {error}")
    if isinstance(error, TransientServiceError):
        return JournalError(f"{where}: {operation} kept failing: {error.code}: {error}")
    return JournalError(f"{where}: {operation}: {error}")


async def call_with_retries(
    client: Any,
    operation: str,
    kwargs: Mapping[str, Any],
    *,
    retry: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    fail: Callable[[str, BaseException], JournalError],
) -> dict[str, Any]:
    """One DynamoDB call, retried while the failure is transient.

    Args:
        client: The aiobotocore DynamoDB client.
        operation: The client's method (``put_item``).
        kwargs: Its arguments.
        retry: The backoff.
        sleep: The async sleep the backoff uses.
        fail: What a failure no retry fixes becomes (see :func:`explain_failure`).

    Returns:
        The service's response.

    Raises:
        botocore.exceptions.ClientError: ``ConditionalCheckFailedException`` or a non-transient
            ``TransactionCanceledException``, for the caller to interpret.
        JournalError: anything else no retry can fix, or retries exhausted.
    """
    try:
        async for attempt in retrying(retry, sleep=sleep):
            with attempt:
                try:
                    response: dict[str, Any] = await getattr(client, operation)(**kwargs)
                    return response
                except botocore.exceptions.ClientError as exc:
                    code = error_code(exc)
                    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                    if code in _TRANSIENT_CODES or status >= 500 or transient_cancel(exc):
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
        if error_code(exc) in _PASSED_THROUGH:
            raise
        raise fail(operation, exc) from exc
    except (TransientServiceError, botocore.exceptions.BotoCoreError) as exc:
        raise fail(operation, exc) from exc
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
