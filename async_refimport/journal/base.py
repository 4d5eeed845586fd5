"""The Journal seam, interface only: the record types and the role Protocols a journal implements.

A journal is the single, durable source of truth about every row and every import job. The engine
writes through the roles below; :class:`~async_refimport.SQLiteJournal` (one local file) and
:class:`~async_refimport.DynamoJournal` (one DynamoDB table a fleet shares) implement them, and
the contract suite in ``tests/journal`` runs on both. A user's journal implements :class:`Journal`
(every role the engine needs); :class:`Outbox` is optional, needed only by the worker's SQS intake.

The guarantees every implementation gives (the "write ahead" principle of ``docs/architecture.md``):

* **Write ahead.** A job's rows and clientToken are durable (:meth:`JobLog.begin_job`) *before*
  StartReferenceImportJob is sent, and its job id (:meth:`JobLog.record_job_id`) right after.
* **One active job per store**, whichever process asks: a second ``begin_job`` for a store with a
  PENDING or RUNNING job raises :class:`~async_refimport.StoreBookedError`.
* **Fencing.** The writes that change a store's rows or jobs (``settle_queued``, ``begin_job``,
  ``record_job_id``, ``finish_job``) take the caller's lease ``owner``; given one, the journal
  refuses the write with :class:`~async_refimport.LeaseLostError` unless that owner still holds
  the store's lease (:class:`StoreLeases`). ``owner=None`` writes unfenced (a single process).
* **Closing** is :meth:`JournalLifecycle.aclose` (the two journals also keep ``close()``, the
  same, for callers of earlier versions).
* **Errors.** Storage that cannot be read or written raises :class:`~async_refimport.JournalError`
  (never a driver's own exception); a method that raises has changed nothing unless its
  docstring says otherwise.

Nothing here is an implementation: this module imports neither of the two journals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from async_refimport._errors import FieldError
from async_refimport._models import ImportRequest, RowResult, RowState, StoreRef

__all__ = [
    "FinalJobStatus",
    "JobLog",
    "JobRecord",
    "JobState",
    "Journal",
    "JournalLifecycle",
    "JournalReader",
    "Outbox",
    "OutboxEntry",
    "QueuedRow",
    "RowQueue",
    "Settlement",
    "StagingQueue",
    "StagingRow",
    "StoreLeases",
]


class JobState(StrEnum):
    """A job as the journal sees it.

    Attributes:
        PENDING: Written ahead, no job id known yet (Start not sent, in flight, or lost in a crash).
        RUNNING: The service gave a job id; the job may still be running.
        DONE: Settled; every row of it is final or requeued.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"


class FinalJobStatus(StrEnum):
    """How a job ended, as :meth:`JobLog.finish_job` records it (``JobRecord.status``).

    The service's terminal statuses, plus two of the engine's own. The journal stores the value's
    string, so a status the service adds later (passed as a plain ``str``) is stored as is.

    Attributes:
        COMPLETED: Every source imported.
        COMPLETED_WITH_FAILURES: Some sources imported, some failed.
        FAILED: The job failed as a whole.
        CANCELLED: The job was cancelled.
        LOST: The service no longer knows the job (it expired, or was never started).
        REJECTED: StartReferenceImportJob was refused; no job ran.
    """

    COMPLETED = "COMPLETED"
    COMPLETED_WITH_FAILURES = "COMPLETED_WITH_FAILURES"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    LOST = "LOST"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class QueuedRow:
    """A journaled row as a lane needs it to build one StartReferenceImportJob source.

    Attributes:
        row_id: The row's id, unique in its journal.
        name: The reference's name (unique per store).
        source_file: The S3 URI of the FASTA file.
        role_arn: The IAM role the service assumes to read it.
        description: The reference's description, if any.
        tags: The reference's tags.
        attempts: Jobs this row has taken part in so far.
    """

    row_id: int
    name: str
    source_file: str
    role_arn: str
    description: str | None
    tags: Mapping[str, str]
    attempts: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One import job, from its write-ahead on.

    Attributes:
        id: The job's number in its journal.
        store: The store it imports into.
        client_token: The idempotency token sent with StartReferenceImportJob.
        role_arn: The IAM role of every row of the job.
        state: Where the job is (:class:`JobState`).
        written_at: When it was written ahead (epoch seconds).
        job_id: The service's job id, once known.
        started_at: When the job id was recorded.
        finished_at: When the job was settled.
        status: How it ended (a :class:`FinalJobStatus` value), once settled.
        message: The service's (or the engine's) message about its end.
        rows: Its rows (empty where a reader asked for jobs without their rows).
    """

    id: int
    store: StoreRef
    client_token: str
    role_arn: str
    state: JobState
    written_at: float
    job_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    status: str | None = None
    message: str | None = None
    rows: tuple[QueuedRow, ...] = ()


@dataclass(frozen=True, slots=True)
class Settlement:
    """What happened to one row of a finished job (or to a queued row settled without one).

    Attributes:
        row_id: The row.
        state: Its final state (IMPORTED, ALREADY_PRESENT or FAILED).
        reference_id: The reference it became or already was, if any.
        message: Why it failed, if it did.
        md5: The reference's MD5 checksum, if the service reported one.
    """

    row_id: int
    state: RowState
    reference_id: str | None = None
    message: str | None = None
    md5: str | None = None


@dataclass(frozen=True, slots=True)
class StagingRow:
    """A STAGING row as the staging driver needs it: what to copy, and for which store.

    Attributes:
        row_id: The row's id, unique in its journal.
        store: The store it is imported into (its Region decides the staging area).
        name: The reference's name.
        source: The manifest's source (``s3://`` of another Region, ``http(s)://``, a path).
        source_md5: The source's MD5 as its publisher gives it, if the manifest gave one.
    """

    row_id: int
    store: StoreRef
    name: str
    source: str
    source_md5: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A result document owed to a submitter once every row of its submission is final.

    Attributes:
        submission: The submission's id (the SQS message id).
        reply_to: Where the document goes (a queue URL).
        row_ids: The submission's rows.
    """

    submission: str
    reply_to: str
    row_ids: tuple[int, ...]


class JournalLifecycle(Protocol):
    """Opening, closing and housekeeping of a journal's storage."""

    async def open(self) -> None:
        """Connect to the storage (creating or migrating it where the implementation does).

        Idempotent: opening an open journal does nothing.

        Raises:
            JournalError: the storage is missing, unreadable or not a refimport journal.
        """
        ...

    async def aclose(self) -> None:
        """Release the storage's connections; bounded in time and idempotent.

        Nothing committed is lost; a journal may be opened again afterwards.
        """
        ...

    async def compact(self, older_than: float) -> int:
        """Forget final rows, finished jobs and sent result documents settled before
        ``older_than`` (epoch seconds); atomic (one transaction) where the storage allows it,
        and idempotent. Never touches a queued row or an active job.

        Returns:
            The number of rows forgotten (0 where the storage expires them by itself).

        Raises:
            JournalError: the journal cannot be written.
        """
        ...


class RowQueue(Protocol):
    """Rows in: journaling requests, and reading and settling the queue of a store."""

    async def add_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]:
        """Journal requests as QUEUED rows; returns one row id per request, in order.

        Idempotent per (store, name): a name already journaled keeps its row (a final
        IMPORTED/ALREADY_PRESENT row is returned as is, a FAILED row is queued again with the new
        fields, a queued or submitted row is left alone). Not fenced: intake needs no lease.
        Atomic with the whole batch on SQLite; on DynamoDB each row is written once, queue
        entries first, so a crash midway leaves no queued row the queue cannot find.

        Args:
            requests: The rows, each with its store.
            submission: The submission the rows belong to (an SQS message), if any.

        Raises:
            RequestValidationError: a name is already journaled for its store with another
                source file (nothing is added then).
            JournalError: the journal cannot be written.
        """
        ...

    async def conflicts(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]]
    ) -> list[FieldError]:
        """Read-only: what :meth:`add_rows` would refuse (a name journaled for its store with
        another source file); a run of many chunks checks them all before the first.

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def stores_with_work(self) -> list[StoreRef]:
        """Read-only: the stores with a queued row or an unfinished job (what a restart resumes).

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def queued_rows(self, store: StoreRef, limit: int) -> list[QueuedRow]:
        """Reads up to ``limit`` of the oldest queued rows of ``store`` that share one role ARN
        (one job has one role); rows in an active job are not queued. May drop queue
        bookkeeping that only names settled rows, never a row.

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def queued_count(self, store: StoreRef) -> int:
        """Read-only: how many rows of ``store`` are queued and in no active job.

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def settle_queued(
        self,
        settlements: Sequence[Settlement],
        *,
        store: StoreRef | None = None,
        owner: str | None = None,
    ) -> None:
        """Settle queued rows without a job (the name is already present, or the store is
        unusable); fenced by ``store``'s lease when ``owner`` is given.

        Idempotent: a row no longer queued (settled by its job meanwhile) keeps its state.
        Atomic with the lease check on SQLite (one transaction); on DynamoDB atomic per 99 rows.

        Raises:
            ValueError: ``owner`` given without ``store``.
            LeaseLostError: ``owner`` does not hold ``store``'s lease (nothing settled).
            JournalError: the journal cannot be written.
        """
        ...


class JobLog(Protocol):
    """Jobs, written ahead of the service: begin, record the job id, finish."""

    async def begin_job(
        self,
        store: StoreRef,
        rows: Sequence[QueuedRow],
        client_token: str,
        owner: str | None = None,
    ) -> JobRecord:
        """Write a job ahead of its Start call: its token and rows, durable on return, and the
        store booked; atomic (the job, its rows and the booking in one transaction), fenced by
        ``store``'s lease when ``owner`` is given. Not idempotent: a second call for the same
        store raises :class:`StoreBookedError`.

        Raises:
            ValueError: ``rows`` is empty.
            StoreBookedError: the store already has an active job (possibly another process's).
            LeaseLostError: another owner holds the store's lease.
            JournalError: a row is no longer queued, or the journal cannot be written.
        """
        ...

    async def record_job_id(
        self, job: JobRecord, job_id: str, *, owner: str | None = None
    ) -> JobRecord:
        """Record the service's job id of a PENDING job, making it RUNNING; atomic with the
        lease check, fenced by the store's lease when ``owner`` is given.

        Returns:
            The job as it now is.

        Raises:
            LeaseLostError: ``owner`` no longer holds the store's lease.
            JournalError: the job is no longer pending (taken over), or the journal cannot be
                written.
        """
        ...

    async def finish_job(
        self,
        job: JobRecord,
        settlements: Sequence[Settlement],
        *,
        status: FinalJobStatus | str,
        message: str | None = None,
        requeue: Sequence[int] = (),
        max_attempts: int = 3,
        owner: str | None = None,
    ) -> list[RowResult]:
        """Settle a job's rows, close the job and free its store; fenced by the store's lease
        when ``owner`` is given.

        Rows in ``requeue`` go back to QUEUED unless they have had ``max_attempts`` jobs, in
        which case they fail with ``message``. Idempotent: a job already DONE (settled by the
        process that took the store over) keeps that verdict and its rows are returned as they
        are. Atomic on SQLite (one transaction); on DynamoDB the decision is recorded atomically
        with the lease check first and applied to the rows after, so a crash midway is completed
        by the next lease holder with the same verdict.

        Args:
            job: The job, as :meth:`begin_job` or :meth:`record_job_id` returned it.
            settlements: The final rows.
            status: How the job ended (stored as its string).
            message: The service's message about the end.
            requeue: Rows to queue again (their sources did not run).
            max_attempts: Jobs a row may take part in before a requeue fails it.
            owner: The lease owner fencing the write.

        Returns:
            The job's rows' results after the change.

        Raises:
            LeaseLostError: ``owner`` no longer holds the store's lease (nothing changed).
            JournalError: the journal cannot be written.
        """
        ...

    async def unfinished_jobs(self, store: StoreRef) -> list[JobRecord]:
        """Read-only: the store's PENDING or RUNNING jobs with their rows, oldest first (what a
        restart recovers).

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def known_job_ids(self, store: StoreRef) -> set[str]:
        """Read-only: the job ids the journal holds for a store (a lookup must not adopt them
        twice). On DynamoDB an id recorded a moment ago may be missing (an index lags).

        Raises:
            JournalError: the journal cannot be read.
        """
        ...


class StoreLeases(Protocol):
    """Leases: which process may drive a store, the fence of every write to its rows and jobs."""

    async def acquire_lease(self, store: StoreRef, owner: str, ttl: float) -> bool:
        """Take or renew ``owner``'s lease on ``store`` for ``ttl`` seconds; atomic (a
        conditional write) and idempotent for the holder. A lease whose holder is a dead process
        of this host is taken over at once; any other live lease is left alone.

        Returns:
            True if ``owner`` now holds the lease, False if another owner holds a live one.

        Raises:
            JournalError: the journal cannot be written.
        """
        ...

    async def release_lease(self, store: StoreRef, owner: str) -> None:
        """Give up ``owner``'s lease on ``store``; atomic and idempotent (a lease held by
        another owner is left alone).

        Raises:
            JournalError: the journal cannot be written.
        """
        ...

    async def lease_holder(self, store: StoreRef) -> tuple[str, float] | None:
        """Read-only: who holds ``store``'s lease and until when (epoch seconds), if anyone.

        Raises:
            JournalError: the journal cannot be read.
        """
        ...


class JournalReader(Protocol):
    """Reading results and status: never writes."""

    async def results(self, row_ids: Sequence[int] | None = None) -> list[RowResult]:
        """Read-only: rows' current results, the given ids in order (unknown ids left out), or
        every row oldest first.

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    def iter_results(self, page: int = 1000) -> AsyncIterator[list[RowResult]]:
        """Read-only: every row in the order of :meth:`results`, ``page`` at a time (what a
        report of 10^6 rows reads without holding them, where the storage allows it).

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def jobs(self, store: StoreRef | None = None) -> list[JobRecord]:
        """Read-only: every job (of ``store``, or of all), without its rows, oldest first.

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def counts(self) -> dict[StoreRef, dict[RowState, int]]:
        """Read-only: rows per store and state (states with no row left out).

        Raises:
            JournalError: the journal cannot be read.
        """
        ...


@runtime_checkable
class StagingQueue(Protocol):
    """Rows whose source is staged first (copied into a bucket of the store's own Region): an
    optional role, needed only when a source needs staging (a journal without it refuses such
    rows up front). A STAGING row is in flight but never queued: the lanes do not see it until
    :meth:`mark_staged` makes it QUEUED with the staged object as its source."""

    async def add_staging_rows(
        self, requests: Sequence[tuple[StoreRef, ImportRequest]], submission: str | None = None
    ) -> list[int]:
        """Journal requests as STAGING rows, each source kept as the row's ``original_source``;
        returns one row id per request, in order.

        Idempotent per (store, name) as :meth:`RowQueue.add_rows` is (a name journaled from the
        same manifest source, staged or not, keeps its row; a FAILED row is made STAGING again
        with the new fields). Atomic with the whole batch on SQLite. Not fenced.

        Raises:
            RequestValidationError: a name is already journaled for its store with another
                source (nothing is added then).
            JournalError: the journal cannot be written.
        """
        ...

    async def staging_rows(self, limit: int, store: StoreRef | None = None) -> list[StagingRow]:
        """Read-only: up to ``limit`` of the oldest STAGING rows of ``store``, or of every store
        (what a staging driver, or a restart, takes up).

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def mark_staged(self, row_id: int, staged_uri: str) -> bool:
        """A STAGING row staged: in one write (atomic) its ``source_file`` becomes
        ``staged_uri`` and it is QUEUED, its ``original_source`` kept. Idempotent: a row no
        longer STAGING is left alone. Not fenced (the staged object is content-addressed: two
        drivers staging one row stage the same object).

        Returns:
            True if this call made the row QUEUED.

        Raises:
            JournalError: the journal cannot be written.
        """
        ...

    async def fail_staging(self, row_id: int, message: str) -> bool:
        """A STAGING row that cannot be staged is FAILED with ``message``; atomic (one write)
        and idempotent: a row no longer STAGING is left alone. Nothing of it was imported.

        Returns:
            True if this call failed the row.

        Raises:
            JournalError: the journal cannot be written.
        """
        ...


class Journal(JournalLifecycle, RowQueue, JobLog, StoreLeases, JournalReader, Protocol):
    """Every role the engine needs from durable storage (see the module docstring for the
    guarantees). ``Importer(journal=...)`` accepts any object that has these methods."""


@runtime_checkable
class Outbox(Protocol):
    """Result documents owed to submitters: an optional role, needed only by the worker's SQS
    intake (a journal without it cannot serve that intake)."""

    async def add_outbox(self, submission: str, reply_to: str, row_ids: Sequence[int]) -> None:
        """Owe ``reply_to`` one result document for ``submission`` once its rows are final;
        atomic (one write) and idempotent: a submission already owed (a redelivered message)
        keeps its first entry. Not fenced.

        Raises:
            JournalError: the journal cannot be written.
        """
        ...

    async def due_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """Reads up to ``limit`` unsent result documents whose rows are all final (or forgotten
        by compaction), oldest first where the storage keeps an order.

        Raises:
            JournalError: the journal cannot be read.
        """
        ...

    async def close_outbox(self, submission: str) -> bool:
        """Mark a result document sent; atomic (a conditional write) and idempotent.

        Returns:
            True if this call marked it, False if it was already (by another process).

        Raises:
            JournalError: the journal cannot be written.
        """
        ...
