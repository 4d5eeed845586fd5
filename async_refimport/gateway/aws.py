"""The AWS side of the HealthOmics seam: :class:`AwsGateway`, over the process's client pool.

This module is the one place that maps botocore's ``ClientError`` codes (by code, never by
message) and connection errors onto the :mod:`async_refimport` error tree, paces every call
(:mod:`async_refimport._pacing`) and retries the safe ones (:mod:`async_refimport._retry`).
StartReferenceImportJob is sent exactly once per call here: its retries belong to the lane, which
knows whether an ambiguous failure needs a lookup before sending again. The interface and its
values are in :mod:`async_refimport.gateway.base` (re-exported here for older imports).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import aiohttp
import anyio
import botocore.exceptions

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
from async_refimport.aws.clients import ClientPool, endpoint_configured, no_retries
from async_refimport.gateway.base import (
    FINAL_JOB_STATUSES,
    GET,
    LIST_JOBS,
    LIST_REFS,
    PAGE_SIZE,
    REF_METADATA,
    START,
    ExistingReference,
    JobSnapshot,
    JobSummary,
    OmicsGateway,
    ReferencePage,
    SourceSpec,
    SourceStatus,
)

__all__ = [
    "FINAL_JOB_STATUSES",
    "GET",
    "LIST_JOBS",
    "LIST_REFS",
    "START",
    "AwsGateway",
    "ExistingReference",
    "JobSnapshot",
    "JobSummary",
    "OmicsGateway",
    "ReferencePage",
    "SourceSpec",
    "SourceStatus",
    "is_throttle",
    "map_error",
]

log = get_logger(__name__)

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
    """Whether ``error`` is the service throttling us (the pacer slows down on it).

    Args:
        error: An exception, mapped or not.

    Returns:
        True for a :class:`ServiceError` with a throttling code.
    """
    return isinstance(error, ServiceError) and error.code in _THROTTLE_CODES


def map_error(error: BaseException, operation: str, store: StoreRef) -> ServiceError | None:
    """Map a botocore/aiohttp exception onto the error tree, by error code.

    Ambiguity (the request may have taken effect) is set for 408, 5xx and broken connections:
    a 500 can come back after the service created the job.

    Args:
        error: What the call raised.
        operation: The API operation (:data:`START` ...).
        store: The store called.

    Returns:
        The mapped error (``error`` itself if it is one of ours already), or ``None`` if it is
        not a service error.
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


class AwsGateway:
    """:class:`OmicsGateway` over aioboto3: a client per (profile, Region, endpoint), made lazily
    by a :class:`~async_refimport.aws.clients.ClientPool`.

    Args:
        pacer: The shared rate limiters.
        retry: Retry policy for the calls that are safe to repeat (Get and List).
        sleep: Async sleep used by backoff (injectable).
        on_retry: Told about every retry (for events and metrics).
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for a response.
        pool: The clients' pool, shared with other AWS callers (default: a pool of its own,
            closed with the gateway; a given pool is its owner's to close).
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
        pool: ClientPool | None = None,
    ) -> None:
        self._pacer = pacer
        self._retry = retry
        self._sleep = sleep
        self._on_retry = on_retry
        self._own_pool = pool is None
        self._pool = pool or ClientPool()
        # By whether the endpoint is a custom one: made once, not per call.
        self._configs = {
            custom: no_retries(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # botocore prefixes the host with "control-storage-" even for a custom
                # endpoint_url (given, or configured as AWS_ENDPOINT_URL_OMICS); an emulator
                # or VPC endpoint has no such host.
                inject_host_prefix=not custom,
                max_pool_connections=50,
            )
            for custom in (False, True)
        }

    async def __aenter__(self) -> AwsGateway:
        """Enter the gateway (clients are made on first use).

        Returns:
            The gateway.
        """
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the gateway (:meth:`aclose`)."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the gateway's clients, bounded (a stuck connection never hangs a shutdown);
        a pool given by the caller is left open."""
        if self._own_pool:
            await self._pool.aclose()

    async def release(self, store: StoreRef) -> None:
        """Close the clients of ``store``'s profile and Region: its account is done.

        A later call on that store makes a new client.

        Args:
            store: A store whose account and Region need no more calls.
        """
        await self._pool.release(profile=store.profile, region=store.region)

    async def _client(self, store: StoreRef) -> Any:
        return await self._pool.client(
            "omics",
            region=store.region,
            profile=store.profile,
            endpoint_url=store.endpoint_url,
            config=self._configs[endpoint_configured("omics", store.endpoint_url)],
        )

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
        """See :meth:`OmicsGateway.start_import`: sent once, paced, never retried here.

        Args:
            store: The store.
            role_arn: The role the service reads the sources with.
            sources: The sources, one reference each.
            client_token: The idempotency token of this job.

        Returns:
            The job's id.

        Raises:
            StoreBusyError: the store runs a job already.
            ServiceError: any other refusal or failure.
        """
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
        """See :meth:`OmicsGateway.get_import`: paced, retried on transient failures.

        Args:
            store: The job's store.
            job_id: The job's id.

        Returns:
            The job as the service reports it now.

        Raises:
            ServiceError: the job or store does not exist, or retries ran out.
        """

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

    async def _page(
        self,
        store: StoreRef,
        operation: str,
        method: str,
        flt: dict[str, Any],
        token: str | None,
    ) -> dict[str, Any]:
        """One page of a paginated List call: paced and retried on its own."""
        kwargs: dict[str, Any] = {"referenceStoreId": store.store_id, "maxResults": PAGE_SIZE}
        if flt:
            kwargs["filter"] = flt
        if token:
            kwargs["nextToken"] = token

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await getattr(client, method)(**kwargs)
            return response

        return await self._retried(store, operation, call)

    async def _list_all(
        self, store: StoreRef, operation: str, method: str, items_key: str, flt: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Every item of a paginated List call (each page paced and retried on its own)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._page(store, operation, method, flt, token)
            items.extend(page.get(items_key, []))
            token = page.get("nextToken")
            if not token:
                return items

    async def list_imports(
        self, store: StoreRef, created_after: datetime | None = None, status: str | None = None
    ) -> list[JobSummary]:
        """See :meth:`OmicsGateway.list_imports`: every page, each paced and retried.

        Args:
            store: The store.
            created_after: Only jobs created after this time.
            status: Only jobs in this status.

        Returns:
            The jobs.

        Raises:
            ServiceError: a page failed for good.
        """
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
        """See :meth:`OmicsGateway.list_references`: every page, each paced and retried.

        Args:
            store: The store.
            name: Only references of this name.

        Returns:
            The references.

        Raises:
            CredentialsError: the caller's credentials are refused or missing.
            ServiceError: another refusal, or a page failed for good.
        """
        flt = {"name": name} if name is not None else {}
        refs = await self._list_all(store, LIST_REFS, "list_references", "references", flt)
        return [_reference(r) for r in refs]

    async def list_references_page(
        self, store: StoreRef, next_token: str | None = None
    ) -> ReferencePage:
        """See :meth:`OmicsGateway.list_references_page`: one page, paced and retried.

        Args:
            store: The store.
            next_token: Where to start (``None``: the first page).

        Returns:
            The page.

        Raises:
            CredentialsError: the caller's credentials are refused or missing.
            ServiceError: another refusal, or the page failed for good.
        """
        page = await self._page(store, LIST_REFS, "list_references", {}, next_token)
        refs = tuple(_reference(r) for r in page.get("references", []))
        return ReferencePage(refs, page.get("nextToken") or None)

    async def reference_creation_job(self, store: StoreRef, reference_id: str) -> str | None:
        """See :meth:`OmicsGateway.reference_creation_job`: paced, retried.

        Args:
            store: The reference's store.
            reference_id: The reference's id.

        Returns:
            GetReferenceMetadata's ``creationJobId``, or ``None`` when it names none.

        Raises:
            ServiceError: no such reference, or retries ran out.
        """

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.get_reference_metadata(
                referenceStoreId=store.store_id, id=reference_id
            )
            return response

        answer = await self._retried(store, REF_METADATA, call)
        job = answer.get("creationJobId")
        return str(job) if job else None

    async def reference_checksums(
        self, store: StoreRef, created_after: datetime | None
    ) -> dict[str, str]:
        """See :meth:`OmicsGateway.reference_checksums`: every page, each paced and retried.

        Args:
            store: The store.
            created_after: Only references created after this time (``None``: all).

        Returns:
            The checksums by reference id.

        Raises:
            ServiceError: a page failed for good.
        """
        flt = {"createdAfter": created_after} if created_after is not None else {}
        refs = await self._list_all(store, LIST_REFS, "list_references", "references", flt)
        return {str(r["id"]): str(r["md5"]) for r in refs if r.get("md5")}


def _reference(item: dict[str, Any]) -> ExistingReference:
    """A ListReferences item as the engine sees it."""
    return ExistingReference(
        str(item["id"]), str(item.get("name", "")), item.get("status"), item.get("md5")
    )
