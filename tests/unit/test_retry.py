from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from async_refimport import (
    CredentialsError,
    PermanentServiceError,
    RetryPolicy,
    StoreBusyError,
    StoreRef,
    TransientServiceError,
)
from async_refimport._retry import retrying
from async_refimport.gateway.aws import START, map_error

STORE = StoreRef("1234567890", "us-east-1")


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} says no"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "StartReferenceImportJob",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind", "ambiguous"),
    [
        ("ThrottlingException", 429, TransientServiceError, False),
        ("RequestTimeoutException", 408, TransientServiceError, True),
        # A 500 may come back after the job was created: as ambiguous as a timeout.
        ("InternalServerException", 500, TransientServiceError, True),
        ("ExpiredTokenException", 403, CredentialsError, False),
        ("ServiceQuotaExceededException", 402, StoreBusyError, False),
        ("ValidationException", 400, PermanentServiceError, False),
        ("AccessDeniedException", 403, PermanentServiceError, False),
        ("ResourceNotFoundException", 404, PermanentServiceError, False),
    ],
)
def test_client_errors_map_onto_the_tree(
    code: str, status: int, kind: type[Exception], ambiguous: bool
) -> None:
    mapped = map_error(client_error(code, status), START, STORE)
    assert type(mapped) is kind
    assert mapped is not None
    assert mapped.code == code and mapped.status == status and mapped.ambiguous == ambiguous
    assert mapped.store_id == STORE.store_id
    assert f"{code} says no" in str(mapped)


def test_quota_exceeded_outside_start_is_permanent() -> None:
    mapped = map_error(
        client_error("ServiceQuotaExceededException", 402), "CreateReferenceStore", STORE
    )
    assert type(mapped) is PermanentServiceError


def test_connection_errors_are_transient_and_ambiguous() -> None:
    mapped = map_error(EndpointConnectionError(endpoint_url="http://x"), START, STORE)
    assert isinstance(mapped, TransientServiceError) and mapped.ambiguous


@pytest.mark.parametrize(
    "error",
    [NoCredentialsError(), ProfileNotFound(profile="nope"), NoRegionError()],
)
def test_local_credential_and_config_errors_are_credentials_errors(error: Exception) -> None:
    mapped = map_error(error, START, STORE)
    assert isinstance(mapped, CredentialsError)
    assert mapped.code == type(error).__name__


def test_unrelated_errors_are_not_mapped() -> None:
    assert map_error(KeyError("x"), START, STORE) is None


async def test_transient_errors_are_retried_until_attempts_run_out() -> None:
    slept: list[float] = []
    seen: list[int] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    attempts = 0
    with pytest.raises(TransientServiceError):
        async for attempt in retrying(
            RetryPolicy(attempts=4, initial=1.0, max_backoff=5.0),
            sleep=sleep,
            on_retry=lambda n, e, d: seen.append(n),
        ):
            with attempt:
                attempts += 1
                raise TransientServiceError("slow", code="ThrottlingException", operation="X")
    assert attempts == 4
    assert seen == [1, 2, 3]
    # Full jitter: each wait is within [0, min(max, initial * 2**n)].
    assert all(0 <= s <= 5.0 for s in slept) and len(slept) == 3


async def test_permanent_errors_are_not_retried() -> None:
    attempts = 0

    async def sleep(s: float) -> None:
        raise AssertionError("must not sleep")

    with pytest.raises(PermanentServiceError):
        async for attempt in retrying(RetryPolicy(), sleep=sleep):
            with attempt:
                attempts += 1
                raise PermanentServiceError("no", code="ValidationException", operation="X")
    assert attempts == 1
