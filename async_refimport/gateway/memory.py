"""An in-memory HealthOmics at the gateway seam: fast, deterministic tests of code that uses an
:class:`~async_refimport.Importer` (like httpx's ``MockTransport``). Import it from
:mod:`async_refimport.testing`::

    from async_refimport.testing import MemoryGateway

    gateway = MemoryGateway(polls_to_finish=2, fail_names={"broken"})
    async with Importer(tmp_path / "j.sqlite", gateway=gateway, region="us-east-1") as imp:
        results = await imp.wait(await imp.submit(requests))
    assert gateway.calls["start"] == 1

It keeps the service's rules that the engine relies on: one running job per store (a second
Start answers :class:`StoreBusyError`), clientToken idempotency, references by name. It speaks no
HTTP and checks no FASTA; for those, test against the emulator (:mod:`async_refimport.emulator`).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from async_refimport._errors import StoreBusyError
from async_refimport._models import StoreRef
from async_refimport.gateway.base import (
    ExistingReference,
    JobSnapshot,
    JobSummary,
    ReferencePage,
    SourceSpec,
    SourceStatus,
)


@dataclass
class MemoryJob:
    """One import job the gateway was asked to start."""

    job_id: str
    store: StoreRef
    token: str
    sources: list[SourceSpec]
    created: datetime
    polls_left: int
    status: str = "IN_PROGRESS"


@dataclass
class MemoryGateway:
    """An :class:`~async_refimport.OmicsGateway` that keeps everything in memory.

    Every call is answered at once: nothing is paced or retried, and faults are raised exactly
    as queued in ``start_faults``, ``get_faults`` and ``list_faults``.

    Attributes:
        polls_to_finish: GetReferenceImportJob calls a job takes to complete.
        existing: Names already in the store(s), with their reference ids.
        fail_names: Sources with these names fail (as a bad FASTA file would).
        start_faults: Exceptions the next Start calls raise, in order (e.g. a
            ``TransientServiceError``); with ``create_before_fault`` the job is created first,
            as after an ambiguous timeout.
        get_faults: Exceptions the next GetReferenceImportJob calls raise, in order.
        list_faults: Exceptions the next ListReferences calls raise, in order (a set-up
            mistake at a store's first call: ``CredentialsError``, a 403, a 404 ...).
        create_before_fault: See ``start_faults``.
        checksums: The md5 of each reference imported, by reference id (the md5 of its source
            URI: there is no file to read).
        created: When each reference was imported, by reference id.
        creators: The job that made each reference it imported, by reference id (what
            GetReferenceMetadata's ``creationJobId`` says; ``existing`` names have none).
        page_size: References per ListReferences page (the service's ``maxResults``, 100).
        jobs: Every job started, by id.
        tokens: The job started for each client token (Start is idempotent by token).
        calls: Calls made, by operation (``start``, ``get``, ``list_imports``, ``list_references``,
            ``checksums``, ``metadata``); every page of a listing counts once.
        max_active: The most jobs that ever ran at once in one store (1 when the engine behaves).
    """

    polls_to_finish: int = 1
    existing: dict[str, str] = field(default_factory=dict)
    fail_names: set[str] = field(default_factory=set)
    start_faults: list[BaseException] = field(default_factory=list)
    get_faults: list[BaseException] = field(default_factory=list)
    list_faults: list[BaseException] = field(default_factory=list)
    create_before_fault: bool = False
    checksums: dict[str, str] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)
    creators: dict[str, str] = field(default_factory=dict)
    page_size: int = 100
    jobs: dict[str, MemoryJob] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    max_active: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000000001))

    def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1

    def active(self, store: StoreRef | None = None) -> list[MemoryJob]:
        """Jobs still running.

        Args:
            store: Only this store's (``None``: every store's).

        Returns:
            The running jobs.
        """
        return [
            j
            for j in self.jobs.values()
            if j.status == "IN_PROGRESS" and (store is None or j.store.key == store.key)
        ]

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        """Start a job (idempotent by ``client_token``; one running job per store).

        Args:
            store: The store.
            role_arn: Ignored.
            sources: The sources.
            client_token: The idempotency token.

        Returns:
            The job's id (the same one for a token seen before).

        Raises:
            StoreBusyError: the store runs a job already.
            BaseException: the next of ``start_faults``, if any.
        """
        self._count("start")
        if client_token in self.tokens:
            return self.tokens[client_token]
        if self.start_faults and not self.create_before_fault:
            raise self.start_faults.pop(0)
        if self.active(store):
            raise StoreBusyError(
                "busy", code="ServiceQuotaExceededException", operation="Start", status=402
            )
        job = MemoryJob(
            str(next(self._ids)),
            store,
            client_token,
            list(sources),
            datetime.now(UTC),
            self.polls_to_finish,
        )
        self.jobs[job.job_id] = job
        self.tokens[client_token] = job.job_id
        self.max_active = max(self.max_active, len(self.active(store)))
        if self.start_faults:
            raise self.start_faults.pop(0)
        return job.job_id

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot:
        """The job, one poll nearer completion (it completes after ``polls_to_finish`` polls).

        Args:
            store: The job's store.
            job_id: The job's id.

        Returns:
            The job now.

        Raises:
            KeyError: no such job.
            BaseException: the next of ``get_faults``, if any.
        """
        self._count("get")
        if self.get_faults:
            raise self.get_faults.pop(0)
        job = self.jobs[job_id]
        job.polls_left -= 1
        if job.polls_left <= 0 and job.status == "IN_PROGRESS":
            job.status = "COMPLETED"
            for s in job.sources:
                if s.name not in self.fail_names and s.name not in self.existing:
                    ref = self.existing[s.name] = str(next(self._ids))
                    self.checksums[ref] = hashlib.md5(s.source_file.encode()).hexdigest()
                    self.created[ref] = datetime.now(UTC)
                    self.creators[ref] = job.job_id
        sources = []
        for s in job.sources:
            if job.status == "IN_PROGRESS":
                sources.append(SourceStatus(s.name, s.source_file, "IN_PROGRESS"))
            elif s.name in self.fail_names:
                sources.append(SourceStatus(s.name, s.source_file, "FAILED", None, "not FASTA"))
            else:
                sources.append(
                    SourceStatus(s.name, s.source_file, "FINISHED", self.existing[s.name])
                )
        return JobSnapshot(job_id, job.status, None, job.created, None, tuple(sources))

    async def list_imports(
        self, store: StoreRef, created_after: datetime | None = None, status: str | None = None
    ) -> list[JobSummary]:
        """The store's jobs, filtered as the service does.

        Args:
            store: The store.
            created_after: Only jobs created at or after this time.
            status: Only jobs in this status.

        Returns:
            The jobs.
        """
        self._count("list_imports")
        return [
            JobSummary(j.job_id, j.status, j.created)
            for j in self.jobs.values()
            if j.store.key == store.key
            and (created_after is None or j.created >= created_after)
            and (status is None or j.status == status)
        ]

    async def list_references(
        self, store: StoreRef, name: str | None = None
    ) -> list[ExistingReference]:
        """The references (of every store: names are shared), filtered by ``name``.

        Args:
            store: The store.
            name: Only references of this name.

        Returns:
            The references.

        Raises:
            BaseException: the next of ``list_faults``, if any.
        """
        self._count("list_references")
        if self.list_faults:
            raise self.list_faults.pop(0)
        return [
            ExistingReference(ref, n, "ACTIVE", self.checksums.get(ref))
            for n, ref in self.existing.items()
            if name is None or n == name
        ]

    async def list_references_page(
        self, store: StoreRef, next_token: str | None = None
    ) -> ReferencePage:
        """One page of :meth:`list_references` (``page_size`` references; the token an offset).

        Args:
            store: The store.
            next_token: Where to start (``None``: the first page).

        Returns:
            The page.

        Raises:
            BaseException: the next of ``list_faults``, if any.
        """
        self._count("list_references")
        if self.list_faults:
            raise self.list_faults.pop(0)
        start = int(next_token) if next_token else 0
        names = list(self.existing.items())[start : start + self.page_size]
        refs = tuple(ExistingReference(r, n, "ACTIVE", self.checksums.get(r)) for n, r in names)
        more = start + self.page_size < len(self.existing)
        return ReferencePage(refs, str(start + self.page_size) if more else None)

    async def reference_creation_job(self, store: StoreRef, reference_id: str) -> str | None:
        """The job that made a reference (``creators``), as GetReferenceMetadata says.

        Args:
            store: The reference's store.
            reference_id: The reference's id.

        Returns:
            The job's id, or ``None`` for a reference no job of this gateway made.
        """
        self._count("metadata")
        return self.creators.get(reference_id)

    async def reference_checksums(
        self, store: StoreRef, created_after: datetime | None
    ) -> dict[str, str]:
        """The md5 of references created at or after ``created_after``.

        Args:
            store: The store.
            created_after: Only references created at or after this time (``None``: all).

        Returns:
            The checksums by reference id.
        """
        self._count("checksums")
        return {
            ref: md5
            for ref, md5 in self.checksums.items()
            if created_after is None or self.created[ref] >= created_after
        }
