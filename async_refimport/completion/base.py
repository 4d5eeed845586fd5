"""The completion seam, interface only: how a lane learns that a job it started has ended.

Implementations: :class:`~async_refimport.completion.polling.PollingWatcher` (predictive polling,
the default) and :class:`~async_refimport.completion.events.EventWatcher` (HealthOmics' job
status events through EventBridge and SQS, with polling as a safety net). A lane calls only
:meth:`CompletionWatcher.wait`; a watcher that also satisfies :class:`LearnsFromHistory` is
warmed from the journal before a lane's first job.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from async_refimport._models import StoreRef
from async_refimport.aws.preflight import Preflight
from async_refimport.gateway.base import JobSnapshot
from async_refimport.journal.base import Journal


class CompletionWatcher(Protocol):
    """Waits for a started import job to end (pass one as ``Importer(watcher=...)``).

    One watcher serves every lane of an Importer: ``wait`` is called concurrently, once per
    running job (one job per store at a time). A watcher only watches; it never starts, cancels
    or settles a job, and it keeps no state the journal does not have (after a crash the next
    Importer calls ``wait`` again for the jobs still running).

    A minimal implementation polls ``OmicsGateway.get_import(store, job_id)`` until the
    snapshot's ``status`` is final (``COMPLETED``, ``COMPLETED_WITH_FAILURES``, ``FAILED``,
    ``CANCELLED``) and returns that snapshot.
    """

    async def wait(
        self, store: StoreRef, job_id: str, sources: int, started: float, size: int | None = None
    ) -> JobSnapshot:
        """Wait until the job has ended; return its final snapshot.

        Args:
            store: The store the job runs in.
            job_id: The id StartReferenceImportJob returned (the job exists at the service).
            sources: How many sources the job imports (a duration hint).
            started: When its Start was sent, in the Importer's monotonic ``clock`` seconds.
            size: The job's total source bytes, when the pre-flight knows them (a hint).

        Returns:
            A snapshot whose ``status`` is final, with every source's own status and message:
            the lane settles each row from it.

        Raises:
            PermanentServiceError: the service refuses to answer about the job. With code
                ``ResourceNotFoundException`` the lane retries for ``consistency_grace``, then
                asks the List before calling the job lost; any other code pauses the store and
                calls ``wait`` again later. Transient errors (throttling, time-outs) are the
                watcher's to retry; one that escapes is treated like a crashed lane (retried).
            anyio.get_cancelled_exc_class(): the Importer is closing; the job runs on and the
                next Importer on the journal waits for it again.
        """
        ...


@runtime_checkable
class LearnsFromHistory(Protocol):
    """A watcher that can seed its duration model from the journal's finished jobs."""

    async def warm(self, journal: Journal, preflight: Preflight | None = None) -> int:
        """Learn from the journal's finished jobs, at most once per watcher.

        Called by every lane before its first job, concurrently: later calls return at once
        with the first one's count. Failures to read the journal or the service are logged and
        cost only the warm start; this never raises for them.

        Args:
            journal: The journal to read finished jobs from.
            preflight: Estimates each job's bytes from its sources, if given.

        Returns:
            How many jobs were learnt from.
        """
        ...
