"""The seam between the engine and HealthOmics: typed calls in, typed results or our errors out.

:class:`OmicsGateway` is what lanes and the completion watcher use; :class:`AwsGateway` implements it
with aioboto3. This module is the one place that maps botocore's ``ClientError`` codes and connection
errors onto the :mod:`async_refimport` error tree, paces every call (:mod:`._pacing`) and retries the
safe ones (:mod:`._retry`). StartReferenceImportJob is sent exactly once per call here: its retries
belong to the lane, which knows whether an ambiguous failure needs a lookup before sending again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiohttp
import anyio
import botocore.exceptions
import structlog
from botocore.config import Config

from ._errors import (
    CredentialsError,
    PermanentServiceError,
    ServiceError,
    StoreBusyError,
    TransientServiceError,
)
from ._models import StoreRef
from ._pacing import Pacer
from ._retry import OnRetry, RetryPolicy, retrying

log = structlog.get_logger(__name__)

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


@dataclass(frozen=True, slots=True)
class ExistingReference:
    """A reference already in a store."""

    reference_id: str
    name: str
    status: str | None


class OmicsGateway(Protocol):
    """The HealthOmics operations the engine uses."""

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        """Send StartReferenceImportJob once (paced, not retried); returns the job id."""
        ...

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot: ...

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
        self, store: StoreRef, created_after: datetime | None = None
    ) -> list[JobSummary]:
        flt = {"createdAfter": created_after} if created_after is not None else {}
        jobs = await self._list_all(
            store, LIST_JOBS, "list_reference_import_jobs", "importJobs", flt
        )
        return [JobSummary(str(j["id"]), str(j["status"]), j.get("creationTime")) for j in jobs]

    async def list_references(
        self, store: StoreRef, name: str | None = None
    ) -> list[ExistingReference]:
        flt = {"name": name} if name is not None else {}
        refs = await self._list_all(store, LIST_REFS, "list_references", "references", flt)
        return [
            ExistingReference(str(r["id"]), str(r.get("name", "")), r.get("status")) for r in refs
        ]
