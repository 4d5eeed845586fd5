"""A small in-memory HealthOmics at the gateway seam, for unit tests of the engine's logic.

Integration tests use the real emulator over HTTP; this fake only exists to test lane decisions
(packing, recovery, settling) quickly and deterministically.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from async_refimport._errors import StoreBusyError, TransientServiceError
from async_refimport._gateway import (
    ExistingReference,
    JobSnapshot,
    JobSummary,
    SourceSpec,
    SourceStatus,
)
from async_refimport._models import StoreRef


@dataclass
class FakeJob:
    job_id: str
    token: str
    sources: list[SourceSpec]
    created: datetime
    polls_left: int
    status: str = "IN_PROGRESS"


@dataclass
class FakeOmics:
    """Jobs finish after ``polls_to_finish`` polls; names in ``fail_names`` fail their source."""

    polls_to_finish: int = 1
    existing: dict[str, str] = field(default_factory=dict)
    fail_names: set[str] = field(default_factory=set)
    start_faults: list[BaseException] = field(default_factory=list)
    create_before_fault: bool = False
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    max_active: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000000001))

    def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1

    def active(self) -> list[FakeJob]:
        return [j for j in self.jobs.values() if j.status == "IN_PROGRESS"]

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        self._count("start")
        if client_token in self.tokens:
            return self.tokens[client_token]
        if self.start_faults and not self.create_before_fault:
            raise self.start_faults.pop(0)
        if self.active():
            raise StoreBusyError(
                "busy", code="ServiceQuotaExceededException", operation="Start", status=402
            )
        job = FakeJob(
            str(next(self._ids)),
            client_token,
            list(sources),
            datetime.now(UTC),
            self.polls_to_finish,
        )
        self.jobs[job.job_id] = job
        self.tokens[client_token] = job.job_id
        self.max_active = max(self.max_active, len(self.active()))
        if self.start_faults:
            raise self.start_faults.pop(0)
        return job.job_id

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot:
        self._count("get")
        job = self.jobs[job_id]
        job.polls_left -= 1
        if job.polls_left <= 0 and job.status == "IN_PROGRESS":
            job.status = "COMPLETED"
            for s in job.sources:
                if s.name not in self.fail_names and s.name not in self.existing:
                    self.existing[s.name] = str(next(self._ids))
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
        self, store: StoreRef, created_after: datetime | None = None
    ) -> list[JobSummary]:
        self._count("list_imports")
        return [
            JobSummary(j.job_id, j.status, j.created)
            for j in self.jobs.values()
            if created_after is None or j.created >= created_after
        ]

    async def list_references(
        self, store: StoreRef, name: str | None = None
    ) -> list[ExistingReference]:
        self._count("list_references")
        return [
            ExistingReference(ref, n, "ACTIVE")
            for n, ref in self.existing.items()
            if name is None or n == name
        ]


def transient(
    code: str = "RequestTimeoutException", ambiguous: bool = True
) -> TransientServiceError:
    return TransientServiceError("boom", code=code, operation="Start", ambiguous=ambiguous)
