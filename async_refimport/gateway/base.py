"""The HealthOmics seam, interface only: :class:`OmicsGateway` and the values it speaks.

The engine (lanes, set-up checks, the completion watchers) talks to HealthOmics through this
Protocol and nothing else. :class:`~async_refimport.gateway.aws.AwsGateway` implements it over
the real service; :class:`~async_refimport.testing.MemoryGateway` in memory, for tests. Another
implementation (a proxy, a recorder) needs only this module.

Every method raises only the :mod:`async_refimport` error tree for what the service says
(:class:`~async_refimport.ServiceError` and its kinds); what each one guarantees (idempotent,
paced, retried) is in its docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from async_refimport._models import StoreRef

__all__ = [
    "FINAL_JOB_STATUSES",
    "GET",
    "LIST_JOBS",
    "LIST_REFS",
    "PAGE_SIZE",
    "REF_METADATA",
    "START",
    "ExistingReference",
    "JobSnapshot",
    "JobSummary",
    "OmicsGateway",
    "ReferencePage",
    "SourceSpec",
    "SourceStatus",
]

START = "StartReferenceImportJob"
"""The operation that starts an import job (paced on its own: the service allows few a second)."""
GET = "GetReferenceImportJob"
"""The operation that reads one job."""
LIST_JOBS = "ListReferenceImportJobs"
"""The operation that lists a store's jobs."""
LIST_REFS = "ListReferences"
"""The operation that lists a store's references."""
REF_METADATA = "GetReferenceMetadata"
"""The operation that reads one reference (its ``creationJobId``: which job made it)."""
PAGE_SIZE = 100
"""The most items one List call returns (``maxResults``: the service allows no more)."""

FINAL_JOB_STATUSES = frozenset({"COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"})
"""The statuses a job never leaves."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One source of a StartReferenceImportJob call.

    Attributes:
        source_file: The ``s3://`` URI of the FASTA file.
        name: The reference's name in the store.
        description: The reference's description, if any.
        tags: The reference's tags.
    """

    source_file: str
    name: str
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source of a job as GetReferenceImportJob reports it.

    Attributes:
        name: The reference's name.
        source_file: The source's URI.
        status: The source's status (``IN_PROGRESS``, ``FINISHED``, ``FAILED`` ...).
        reference_id: The reference made from it, once it is.
        message: Why it failed, if it did.
    """

    name: str | None
    source_file: str | None
    status: str
    reference_id: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job as GetReferenceImportJob reports it.

    Attributes:
        job_id: The job's id.
        status: The job's status (see :data:`FINAL_JOB_STATUSES`).
        message: The service's status message, if any.
        created: When the job was created.
        completed: When it ended, once it has.
        sources: Each source's status.
    """

    job_id: str
    status: str
    message: str | None
    created: datetime | None
    completed: datetime | None
    sources: tuple[SourceStatus, ...]

    @property
    def done(self) -> bool:
        """Whether the job has ended (its status is final)."""
        return self.status in FINAL_JOB_STATUSES


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job as ListReferenceImportJobs reports it.

    Attributes:
        job_id: The job's id.
        status: The job's status.
        created: When the job was created.
        completed: When it ended, once it has.
    """

    job_id: str
    status: str
    created: datetime | None
    completed: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExistingReference:
    """A reference already in a store.

    Attributes:
        reference_id: The reference's id.
        name: The reference's name.
        status: The reference's status (``ACTIVE`` ...), if reported.
        md5: The reference's checksum as the service reports it.
    """

    reference_id: str
    name: str
    status: str | None
    md5: str | None = None


@dataclass(frozen=True, slots=True)
class ReferencePage:
    """One page of a store's ListReferences.

    Attributes:
        references: The page's references (up to :data:`PAGE_SIZE`).
        next_token: Where the next page starts; ``None`` on the last page.
    """

    references: tuple[ExistingReference, ...]
    next_token: str | None = None

    @property
    def last(self) -> bool:
        """Whether no page follows this one."""
        return self.next_token is None


class OmicsGateway(Protocol):
    """The HealthOmics operations the engine uses, one store at a time.

    Implementations raise :class:`~async_refimport.ServiceError` kinds for what the service
    answers: :class:`~async_refimport.TransientServiceError` (throttling, 5xx, a broken
    connection; ``ambiguous`` when the request may have taken effect),
    :class:`~async_refimport.StoreBusyError` (Start only: the store runs a job already),
    :class:`~async_refimport.CredentialsError` and
    :class:`~async_refimport.PermanentServiceError`.
    """

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        """Send StartReferenceImportJob once: paced, never retried here.

        Idempotent through ``client_token`` only: the service answers the same job for a
        token it has seen. Retrying an ambiguous failure belongs to the caller (the lane),
        which looks for the job before sending again.

        Args:
            store: The store.
            role_arn: The role the service reads the sources with.
            sources: The sources, one reference each.
            client_token: The idempotency token of this job.

        Returns:
            The job's id.

        Raises:
            StoreBusyError: the store runs a job already (its quota).
            ServiceError: any other refusal or failure (see the class).
        """
        ...

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot:
        """Read one job: paced, retried on transient failures (it changes nothing).

        Args:
            store: The job's store.
            job_id: The job's id.

        Returns:
            The job as the service reports it now.

        Raises:
            ServiceError: the job or store does not exist, or retries ran out.
        """
        ...

    async def list_imports(
        self, store: StoreRef, created_after: datetime | None = None, status: str | None = None
    ) -> list[JobSummary]:
        """The store's import jobs: every page, each paced and retried on its own.

        Args:
            store: The store.
            created_after: Only jobs created after this time.
            status: Only jobs in this status.

        Returns:
            The jobs, in the service's order.

        Raises:
            ServiceError: a page failed for good.
        """
        ...

    async def list_references(
        self, store: StoreRef, name: str | None = None
    ) -> list[ExistingReference]:
        """The store's references: every page, each paced and retried on its own.

        Also the store's set-up check: its first call says whether the store can be used.

        Args:
            store: The store.
            name: Only references of this name.

        Returns:
            The references.

        Raises:
            CredentialsError: the caller's credentials are refused or missing.
            ServiceError: the store does not exist, access is denied, or a page failed for good.
        """
        ...

    async def list_references_page(
        self, store: StoreRef, next_token: str | None = None
    ) -> ReferencePage:
        """One page of the store's references (unfiltered): paced, retried on its own.

        A big store is read a page at a time, so that its first page can answer the set-up
        check alone and the rest can be read while the store works.

        Args:
            store: The store.
            next_token: Where to start: the previous page's ``next_token`` (``None``: the first).

        Returns:
            The page, with the token of the next one.

        Raises:
            CredentialsError: the caller's credentials are refused or missing.
            ServiceError: the store does not exist, access is denied, or the page failed for good.
        """
        ...

    async def reference_creation_job(self, store: StoreRef, reference_id: str) -> str | None:
        """Which import job made a reference (GetReferenceMetadata's ``creationJobId``): paced
        on its own operation, retried on transient failures (it changes nothing).

        Args:
            store: The reference's store.
            reference_id: The reference's id.

        Returns:
            The job's id; ``None`` when the service names none (not made by an import job).

        Raises:
            ServiceError: no such reference, or retries ran out.
        """
        ...

    async def reference_checksums(
        self, store: StoreRef, created_after: datetime | None
    ) -> dict[str, str]:
        """The md5 of the store's references created after ``created_after``: paced, retried.

        One listing per import job, so every imported row can carry the checksum the service
        reports.

        Args:
            store: The store.
            created_after: Only references created after this time (``None``: all).

        Returns:
            The checksums by reference id (references without one are left out).

        Raises:
            ServiceError: a page failed for good.
        """
        ...
