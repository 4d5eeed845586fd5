"""The seam between the engine and HealthOmics: typed calls in, typed results or our errors out.

:class:`OmicsGateway` is what lanes and the completion watcher use; :class:`AwsGateway` implements it
with aioboto3. This module is the one place that maps botocore's ``ClientError`` codes and connection
errors onto the :mod:`async_refimport` error tree, paces every call (:mod:`._pacing`) and retries the
safe ones (:mod:`._retry`). StartReferenceImportJob is sent exactly once per call here: its retries
belong to the lane, which knows whether an ambiguous failure needs a lookup before sending again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiohttp
import anyio
import botocore.exceptions
from botocore.config import Config

from async_refimport._errors import (
    CredentialsError,
    PermanentServiceError,
    ServiceError,
    StoreBusyError,
    TransientServiceError,
)
from async_refimport._log import get_logger
from async_refimport._models import StoreRef
from async_refimport._pacing import Pacer
from async_refimport._retry import OnRetry, RetryPolicy, retrying

log = get_logger(__name__)

START = "StartReferenceImportJob"
GET = "GetReferenceImportJob"
LIST_JOBS = "ListReferenceImportJobs"
LIST_REFS = "ListReferences"

FINAL_JOB_STATUSES = frozenset({"COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"})


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One source of a StartReferenceImportJob call."""

    source_file: str
    name: str
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source of a job as GetReferenceImportJob reports it."""

    name: str | None
    source_file: str | None
    status: str
    reference_id: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job as GetReferenceImportJob reports it."""

    job_id: str
    status: str
    message: str | None
    created: datetime | None
    completed: datetime | None
    sources: tuple[SourceStatus, ...]

    @property
    def done(self) -> bool:
        return self.status in FINAL_JOB_STATUSES


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job as ListReferenceImportJobs reports it."""

    job_id: str
    status: str
    created: datetime | None
    completed: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExistingReference:
    """A reference already in a store."""

    reference_id: str
    name: str
    status: str | None
    md5: str | None = None
    """The reference's checksum as the service reports it."""


class OmicsGateway(Protocol):
    """The HealthOmics operations the engine uses."""

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        """Send StartReferenceImportJob once (paced, not retried); returns the job id."""
        ...

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot: ...

    async def list_imports(
        self, store: StoreRef, created_after: datetime | None = None, status: str | None = None
    ) -> list[JobSummary]:
        """The store's import jobs, created after ``created_after`` and in ``status`` if given."""
        ...

    async def list_references(
        self, store: StoreRef, name: str | None = None
    ) -> list[ExistingReference]: ...

    async def reference_checksums(
        self, store: StoreRef, created_after: datetime | None
    ) -> dict[str, str]:
        """The md5 of references created after ``created_after``, by reference id: one listing
        per import job, so every imported row can carry the checksum the service reports."""
        ...


_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestTimeoutException",
        "RequestTimeout",
        "InternalServerException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredTokenException",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "MissingAuthenticationTokenException",
    }
)
_CREDENTIAL_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
    botocore.exceptions.ProfileNotFound,
    botocore.exceptions.TokenRetrievalError,
    botocore.exceptions.SSOError,
    botocore.exceptions.NoRegionError,
)
_THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
_AMBIGUOUS_CODES = frozenset({"RequestTimeoutException", "RequestTimeout"})
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


def is_throttle(error: BaseException) -> bool:
    return isinstance(error, ServiceError) and error.code in _THROTTLE_CODES


def map_error(error: BaseException, operation: str, store: StoreRef) -> ServiceError | None:
    """Map a botocore/aiohttp exception onto the error tree; None if it is not a service error.

    Ambiguity (the request may have taken effect) is set for 408, 5xx and broken connections:
    a 500 can come back after the service created the job.
    """
    if isinstance(error, ServiceError):
        return error
    context: dict[str, Any] = {"operation": operation, "store_id": store.store_id}
    if isinstance(error, botocore.exceptions.ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = str(err.get("Message", "") or error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) or None
        context.update(code=code, status=status)
        if code == "ServiceQuotaExceededException" and operation == START:
            return StoreBusyError(message, **context)
        if code in _TRANSIENT_CODES or (status is not None and status >= 500):
            ambiguous = code in _AMBIGUOUS_CODES or status is None or status >= 500
            return TransientServiceError(message, ambiguous=ambiguous, **context)
        if code in _CREDENTIAL_CODES:
            return CredentialsError(message, **context)
        return PermanentServiceError(message, **context)
    if isinstance(error, _CONNECTION_ERRORS):
        # The request may have reached the service before the connection broke.
        return TransientServiceError(
            str(error) or type(error).__name__,
            code=type(error).__name__,
            ambiguous=True,
            **context,
        )
    if isinstance(error, _CREDENTIAL_ERRORS):
        return CredentialsError(str(error), code=type(error).__name__, **context)
    if isinstance(error, botocore.exceptions.BotoCoreError):
        # Configuration and parameter errors: nothing a retry can fix.
        return PermanentServiceError(str(error), code=type(error).__name__, **context)
    return None


def _custom_endpoint(store: StoreRef) -> bool:
    """Whether ``store`` is reached at another endpoint than AWS's own (the row's, or one the
    environment configures, which botocore reads by itself)."""
    return bool(
        store.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_OMICS")
        or os.environ.get("AWS_ENDPOINT_URL")
    )


class AwsGateway:
    """:class:`OmicsGateway` over aioboto3: one client per (profile, Region, endpoint), created lazily.

    Args:
        pacer: The shared rate limiters.
        retry: Retry policy for the calls that are safe to repeat (Get and List).
        sleep: Async sleep used by backoff (injectable).
        on_retry: Told about every retry (for events and metrics).
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for a response.
    """

    def __init__(
        self,
        *,
        pacer: Pacer,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        on_retry: Callable[[str, StoreRef, int, BaseException, float], None] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self._pacer = pacer
        self._retry = retry
        self._sleep = sleep
        self._on_retry = on_retry
        self._timeouts = (connect_timeout, read_timeout)
        self._stack = AsyncExitStack()
        self._clients: dict[tuple[str | None, str, str | None], Any] = {}
        self._sessions: dict[str | None, Any] = {}
        self._lock = anyio.Lock()

    async def __aenter__(self) -> AwsGateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        # Bounded: closing must not hang a shutdown on a stuck connection.
        with anyio.move_on_after(10.0, shield=True):
            await self._stack.aclose()
        self._clients.clear()

    async def _client(self, store: StoreRef) -> Any:
        key = (store.profile, store.region, store.endpoint_url)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                import aioboto3  # imported lazily: it is slow to import and not needed by readers

                session = self._sessions.get(store.profile)
                if session is None:
                    session = aioboto3.Session(profile_name=store.profile)
                    self._sessions[store.profile] = session
                config = Config(
                    # tenacity owns retries: botocore must not multiply attempts.
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=self._timeouts[0],
                    read_timeout=self._timeouts[1],
                    # botocore prefixes the host with "control-storage-" even for a custom
                    # endpoint_url (given, or configured as AWS_ENDPOINT_URL_OMICS); an
                    # emulator or VPC endpoint has no such host.
                    inject_host_prefix=not _custom_endpoint(store),
                    max_pool_connections=50,
                )
                client = await self._stack.enter_async_context(
                    session.client(
                        "omics",
                        region_name=store.region,
                        endpoint_url=store.endpoint_url,
                        config=config,
                    )
                )
                self._clients[key] = client
        return client

    def _credentials_key(self, store: StoreRef) -> str:
        return f"{store.profile or ''}@{store.endpoint_url or 'aws'}"

    async def _once(
        self, store: StoreRef, operation: str, call: Callable[[Any], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """One paced attempt, its failure mapped onto the error tree."""
        try:
            client = await self._client(store)
        except Exception as exc:  # an unknown profile, a broken config file ...
            mapped = map_error(exc, operation, store)
            if mapped is None:
                raise
            raise mapped from exc
        limiter = self._pacer.limiter(self._credentials_key(store), store.region, operation)
        await limiter.acquire()
        try:
            response = await call(client)
        except Exception as exc:
            mapped = map_error(exc, operation, store)
            if mapped is None:
                raise
            if is_throttle(mapped):
                limiter.on_throttle()
            raise mapped from exc
        limiter.on_success()
        return response

    async def _retried(
        self, store: StoreRef, operation: str, call: Callable[[Any], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        on_retry: OnRetry | None = None
        if self._on_retry is not None:
            hook = self._on_retry

            def on_retry(attempt: int, error: BaseException, delay: float) -> None:
                hook(operation, store, attempt, error, delay)

        async for attempt in retrying(self._retry, sleep=self._sleep, on_retry=on_retry):
            with attempt:
                return await self._once(store, operation, call)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        items: list[dict[str, Any]] = []
        for s in sources:
            item: dict[str, Any] = {"sourceFile": s.source_file, "name": s.name}
            if s.description is not None:
                item["description"] = s.description
            if s.tags:
                item["tags"] = dict(s.tags)
            items.append(item)

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.start_reference_import_job(
                referenceStoreId=store.store_id,
                roleArn=role_arn,
                clientToken=client_token,
                sources=items,
            )
            return response

        response = await self._once(store, START, call)
        return str(response["id"])

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot:
        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.get_reference_import_job(
                referenceStoreId=store.store_id, id=job_id
            )
            return response

        r = await self._retried(store, GET, call)
        return JobSnapshot(
            job_id=str(r["id"]),
            status=str(r["status"]),
            message=r.get("statusMessage"),
            created=r.get("creationTime"),
            completed=r.get("completionTime"),
            sources=tuple(
                SourceStatus(
                    name=s.get("name"),
                    source_file=s.get("sourceFile"),
                    status=str(s["status"]),
                    reference_id=s.get("referenceId"),
                    message=s.get("statusMessage"),
                )
                for s in r.get("sources", [])
            ),
        )

    async def _list_all(
        self, store: StoreRef, operation: str, method: str, items_key: str, flt: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Every item of a paginated List call (each page paced and retried on its own)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"referenceStoreId": store.store_id, "maxResults": 100}
            if flt:
                kwargs["filter"] = flt
            if token:
                kwargs["nextToken"] = token

            async def call(client: Any, kwargs: dict[str, Any] = kwargs) -> dict[str, Any]:
                response: dict[str, Any] = await getattr(client, method)(**kwargs)
                return response

            page = await self._retried(store, operation, call)
            items.extend(page.get(items_key, []))
            token = page.get("nextToken")
            if not token:
                return items

    async def list_imports(
        self, store: StoreRef, created_after: datetime | None = None, status: str | None = None
    ) -> list[JobSummary]:
        flt: dict[str, Any] = {}
        if created_after is not None:
            flt["createdAfter"] = created_after
        if status is not None:
            flt["status"] = status
        jobs = await self._list_all(
            store, LIST_JOBS, "list_reference_import_jobs", "importJobs", flt
        )
        return [
            JobSummary(
                str(j["id"]), str(j["status"]), j.get("creationTime"), j.get("completionTime")
            )
            for j in jobs
        ]

    async def list_references(
        self, store: StoreRef, name: str | None = None
    ) -> list[ExistingReference]:
        flt = {"name": name} if name is not None else {}
        refs = await self._list_all(store, LIST_REFS, "list_references", "references", flt)
        return [
            ExistingReference(str(r["id"]), str(r.get("name", "")), r.get("status"), r.get("md5"))
            for r in refs
        ]

    async def reference_checksums(
        self, store: StoreRef, created_after: datetime | None
    ) -> dict[str, str]:
        flt = {"createdAfter": created_after} if created_after is not None else {}
        refs = await self._list_all(store, LIST_REFS, "list_references", "references", flt)
        return {str(r["id"]): str(r["md5"]) for r in refs if r.get("md5")}
