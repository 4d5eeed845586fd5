"""The result sender: each SQS request message gets one result document, sent by any worker of
the fleet.

When the SQS intake journals a message it also writes an outbox entry (``Journal.add_outbox``):
the submission (the message's MessageId), the results queue and the message's row ids. Every
worker runs a :class:`ResultSender`, which asks the journal for entries whose rows are all final
(``due_outbox``), sends each one's document and marks it sent (``close_outbox``). The worker that
received a message may die long before its rows settle: the document is still sent, by whichever
worker looks next.

The document is :func:`~.documents.result_document`'s, trimmed to fit in one SQS message.

Delivery is **at least once**: the document is sent before the entry is marked sent, so a worker
that dies in between, or two workers that find the same entry due at once, send it twice.
Consumers deduplicate by ``message_id``; on a FIFO results queue the MessageId is also the
deduplication id, so SQS drops copies sent within five minutes of each other.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from enum import StrEnum

import anyio
import anyio.abc
from prometheus_client import CollectorRegistry, Counter

from async_refimport._errors import (
    CredentialsError,
    JournalError,
    QueueError,
    TransientServiceError,
)
from async_refimport._events import RowSettled
from async_refimport._log import get_logger
from async_refimport.aws.sqs import SqsClient
from async_refimport.engine.importer import Importer
from async_refimport.journal import outbox_of
from async_refimport.journal.base import OutboxEntry
from async_refimport.worker.intakes.sqs.documents import result_document

log = get_logger(__name__)


class DocumentOutcome(StrEnum):
    """What became of a due document (the ``outcome`` label of ``refimport_result_documents``)."""

    #: Sent, and marked sent in the outbox by this worker first.
    SENT = "sent"
    #: Sent, but another worker had marked it sent first (consumers see two copies).
    DUPLICATE = "duplicate"
    #: Not sent (the results queue could not be used): tried again after a backoff.
    FAILED = "failed"


class ResultSender:
    """Sends due result documents from the journal's outbox until cancelled.

    Who sends: a document is due once its last row settles, and the worker that settled it (or
    journaled the message, if its rows were final already) sends it at its next look, at most
    ``min_gap`` seconds later. Every other worker finds the document due too, but leaves it to
    that one for ``interval`` seconds; then it sends it itself (the settling worker died). So the
    fleet sends one copy in the usual case and a document is never owed for long.

    When it looks: after rows settle in this worker or a message is journaled here (at most every
    ``min_gap`` seconds), and every ``interval`` seconds otherwise.

    Args:
        importer: The open Importer (its journal holds the outbox; its events wake the sender).
        sqs: The SQS client.
        interval: Seconds between looks when nothing settles here, and how long a document
            another worker should send is left to it.
        min_gap: The shortest time between two looks.
        batch: Documents sent per look at most.
        retry_backoff: Seconds before a document whose send failed is tried again (doubling up
            to 64 times that).
        registry: Where to count documents (the worker's Prometheus registry).
    """

    def __init__(
        self,
        importer: Importer,
        sqs: SqsClient,
        *,
        interval: float = 10.0,
        min_gap: float = 1.0,
        batch: int = 100,
        retry_backoff: float = 5.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.importer = importer
        self.sqs = sqs
        self.interval = interval
        self.min_gap = min_gap
        self.batch = batch
        self.retry_backoff = retry_backoff
        #: False while the journal cannot be read (readiness); True after a look succeeds.
        self.journal_ok = True
        self._wake = anyio.Event()
        self._failures: dict[str, tuple[int, float]] = {}
        # Rows settled (or journaled) here since the last look: their documents are this worker's.
        self._fresh: set[int] = set()
        # When each document was first seen due while another worker's to send.
        self._seen_due: dict[str, float] = {}
        self.documents = Counter(
            "refimport_result_documents",
            "Result documents sent (duplicate: another worker had sent it first)",
            ["outcome"],
            registry=registry,
        )

    def wake(self, rows: Iterable[int] = ()) -> None:
        """Look at the outbox soon.

        Args:
            rows: Rows settled or journaled here: their documents are this worker's to send.
        """
        self._fresh.update(rows)
        self._wake.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Look at the outbox and send what is due, until cancelled.

        A journal that cannot be read is said once (``journal_ok`` turns False) and tried again
        at the next look.

        Args:
            task_status: Told once the sender watches this worker's settles.
        """
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_settles)
            task_status.started()
            while True:
                try:
                    await self.send_due()
                except JournalError as exc:
                    (log.error if self.journal_ok else log.debug)(
                        "outbox.journal_unreachable", error=str(exc)
                    )
                    self.journal_ok = False
                # Jitter: workers that started together do not look (and send twins) in step.
                # The gap also lets a burst of settles (the rows of one job) end before looking.
                await anyio.sleep(self.min_gap)
                rest = self.interval * random.uniform(0.8, 1.2) - self.min_gap
                with anyio.move_on_after(max(0.0, rest)):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def _watch_settles(self) -> None:
        async with self.importer.subscribe() as events:
            async for event in events:
                if isinstance(event, RowSettled):
                    self.wake((event.result.row_id,))

    async def send_due(self, *, adopt_after: float | None = None) -> int:
        """Send the due documents that are this worker's.

        Args:
            adopt_after: Seconds a due document is left to the worker that settled its last row
                before this one sends it (default: ``interval``).

        Returns:
            How many were sent.

        Raises:
            JournalError: the outbox cannot be read or marked.
        """
        fresh, self._fresh = self._fresh, set()
        try:
            entries = await outbox_of(self.importer.journal).due_outbox(self.batch)
        except BaseException:
            self._fresh |= fresh
            raise
        self.journal_ok = True
        now = time.monotonic()
        mine = self._mine(
            entries, fresh, now, self.interval if adopt_after is None else adopt_after
        )
        # Workers adopting at once walk the documents in different orders, so they rarely send
        # the same one; the first one found sent already means this look is stale.
        random.shuffle(mine)
        sent = 0
        for entry in mine:
            outcome = await self._send(entry, now)
            if outcome is None:
                continue
            sent += 1
            if outcome is DocumentOutcome.DUPLICATE:
                break
        return sent

    def _mine(
        self, entries: Sequence[OutboxEntry], fresh: set[int], now: float, wait: float
    ) -> list[OutboxEntry]:
        """The due entries this worker sends: rows settled here, or left to another too long."""
        self._seen_due = {e.submission: self._seen_due.get(e.submission, now) for e in entries}
        return [
            e
            for e in entries
            if fresh.intersection(e.row_ids) or now - self._seen_due[e.submission] >= wait
        ]

    async def _send(self, entry: OutboxEntry, now: float) -> DocumentOutcome | None:
        """Send one document and mark it sent; None when it waits (backing off, or failed now)."""
        failures, not_before = self._failures.get(entry.submission, (0, 0.0))
        if not_before > now:
            return None
        journal = self.importer.journal
        results = await journal.results(entry.row_ids)
        try:
            await self.sqs.send(
                entry.reply_to,
                result_document(entry.submission, results),
                dedup_id=entry.submission,
            )
        except (QueueError, TransientServiceError, CredentialsError) as exc:
            self._backoff(entry, failures, exc)
            return None
        self._failures.pop(entry.submission, None)
        self._seen_due.pop(entry.submission, None)
        first = await outbox_of(journal).close_outbox(entry.submission)
        outcome = DocumentOutcome.SENT if first else DocumentOutcome.DUPLICATE
        self.documents.labels(outcome).inc()
        log.info(
            "outbox.sent",
            message_id=entry.submission,
            rows=len(results),
            duplicate=not first,
        )
        return outcome

    def _backoff(self, entry: OutboxEntry, failures: int, error: Exception) -> None:
        delay = self.retry_backoff * 2 ** min(failures, 6)
        self._failures[entry.submission] = (failures + 1, time.monotonic() + delay)
        self.documents.labels(DocumentOutcome.FAILED).inc()
        log.error(
            "outbox.send_failed",
            message_id=entry.submission,
            reply_to=entry.reply_to,
            error=str(error),
            retry_in=delay,
        )
