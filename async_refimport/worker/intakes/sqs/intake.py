"""The intake proper: long-polls the request queue and journals each message's rows.

See the package's docstring for the delivery rules this module keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from enum import StrEnum

import anyio
import anyio.abc
from prometheus_client import CollectorRegistry, Counter

from async_refimport._errors import (
    CredentialsError,
    FieldError,
    ImporterClosedError,
    JournalError,
    QueueError,
    TransientServiceError,
    ValidationFailed,
)
from async_refimport._log import get_logger
from async_refimport.aws.sqs import Message, SqsClient
from async_refimport.engine.importer import Importer
from async_refimport.journal import outbox_of
from async_refimport.manifest.reader import ManifestDefaults, RemoteLimits
from async_refimport.worker.intakes.sqs.documents import error_dict, rejection_body
from async_refimport.worker.intakes.sqs.messages import (
    MESSAGE_SOURCE,
    journal_manifest,
    parse_body,
)
from async_refimport.worker.intakes.sqs.options import SqsIntakeSettings

log = get_logger(__name__)

#: The receive errors after which the intake keeps running and tries again after a pause.
_RECEIVE_ERRORS = (QueueError, TransientServiceError, CredentialsError)
#: Deliveries of a message that failed unexpectedly (not a verdict, not a transient failure)
#: after which it is rejected rather than handed back again: no message circulates for ever,
#: with or without a redrive policy.
MAX_UNEXPECTED_FAILURES = 5


class MessageOutcome(StrEnum):
    """What became of a message (the ``outcome`` label of ``refimport_sqs_messages``)."""

    #: Its rows are journaled and it is deleted.
    JOURNALED = "journaled"
    #: It is invalid: nothing journaled, its problems reported, it is deleted.
    REJECTED = "rejected"
    #: Handed back to the queue, to come back later (to any worker).
    RETRIED = "retried"


async def check_queues(sqs: SqsClient, urls: Sequence[str]) -> list[dict[str, str]]:
    """Each queue's attributes: the start-up check that it exists and may be used.

    Args:
        sqs: The SQS client.
        urls: The queues.

    Returns:
        Each queue's attributes, in the order of ``urls``.

    Raises:
        QueueError: a queue does not exist, may not be used, or cannot be reached.
    """
    out = []
    for url in urls:
        try:
            out.append(await sqs.queue_attributes(url))
        except (TransientServiceError, CredentialsError) as exc:
            raise QueueError(
                f"queue {url} cannot be reached: {exc}", queue_url=url, code=exc.code
            ) from exc
    return out


class SqsIntake:
    """Long-polls one SQS queue and journals each message's rows through an open Importer.

    Args:
        importer: The open Importer rows are submitted to.
        sqs: The SQS/S3 client.
        queue_url: The queue of requests.
        defaults: Field values for rows that leave them out (the worker's flags).
        results_queue_url: Where result documents go; None: no result documents.
        settings: Polling knobs.
        on_journaled: Called with a message's row ids once they are journaled (wakes the result
            sender: rows final already make the document due at once).
        registry: Where to count messages (the worker's Prometheus registry).
        remote: What a message's rows may set (never an endpoint or a profile).
    """

    def __init__(
        self,
        importer: Importer,
        sqs: SqsClient,
        queue_url: str,
        defaults: ManifestDefaults,
        *,
        results_queue_url: str | None = None,
        settings: SqsIntakeSettings | None = None,
        on_journaled: Callable[[Sequence[int]], None] | None = None,
        registry: CollectorRegistry | None = None,
        remote: RemoteLimits | None = None,
    ) -> None:
        self.importer = importer
        self.remote = remote or RemoteLimits()
        self.sqs = sqs
        self.queue_url = queue_url
        self.results_queue_url = results_queue_url
        self.defaults = defaults
        self.settings = settings or SqsIntakeSettings()
        self._on_journaled = on_journaled
        #: True while receiving.
        self.running = False
        #: False while the queue cannot be reached (readiness); True after a receive succeeds.
        self.reachable = False
        #: False while the journal cannot be written; True after a message is journaled.
        self.journal_ok = True
        self._in_flight = 0
        self._slot_freed = anyio.Event()
        # Manifests read and journaled at once: each costs a chunk of requests and its check's
        # memory (a name per row), so twenty at once must not add up; inline rows do not wait.
        self._manifests = anyio.Semaphore(self.settings.max_manifests)
        self.messages = Counter(
            "refimport_sqs_messages",
            "SQS messages handled, by outcome (journaled, rejected, retried)",
            ["outcome"],
            registry=registry,
        )

    @property
    def in_flight(self) -> int:
        """Messages received and not yet journaled (or rejected, or handed back)."""
        return self._in_flight

    async def check(self) -> None:
        """Check that the queues exist and may be used (at start-up).

        Raises:
            QueueError: a queue does not exist, may not be used, or cannot be reached.
        """
        urls = [self.queue_url]
        if self.results_queue_url is not None:
            urls.append(self.results_queue_url)
        attributes = await check_queues(self.sqs, urls)
        log.info(
            "sqs.queue_checked",
            queue_url=self.queue_url,
            dead_letter_queue="RedrivePolicy" in attributes[0],
        )
        self.reachable = True

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Check the queues, then receive and journal messages until cancelled.

        Args:
            task_status: Told once the queues are checked and receiving starts.

        Raises:
            QueueError: at start-up, a queue does not exist or cannot be reached.
        """
        await self.check()
        async with anyio.create_task_group() as tg:
            self.running = True
            task_status.started()
            try:
                while not self.importer.stopping:
                    await self._wait_for_a_slot()
                    messages = await self._receive()
                    for message in messages or ():
                        self._in_flight += 1
                        tg.start_soon(self._handle, message, name=f"sqs {message.message_id}")
            finally:
                self.running = False

    async def _wait_for_a_slot(self) -> None:
        while self._in_flight >= self.settings.max_in_flight:
            self._slot_freed = anyio.Event()
            await self._slot_freed.wait()

    async def _receive(self) -> list[Message] | None:
        """One long poll; None (after a pause) when the queue cannot be used."""
        s = self.settings
        try:
            messages = await self.sqs.receive(
                self.queue_url,
                max_messages=min(10, s.max_in_flight - self._in_flight),
                wait_time=s.wait_time,
                visibility_timeout=s.visibility_timeout,
            )
        except _RECEIVE_ERRORS as exc:
            # Deleted, denied or out of reach after start-up: keep the worker up (its other
            # intakes still work), say so, and try again after a pause.
            (log.error if self.reachable else log.debug)(
                "sqs.receive_failed", queue_url=self.queue_url, error=str(exc)
            )
            self.reachable = False
            await anyio.sleep(s.error_backoff)
            return None
        if not self.reachable:
            log.info("sqs.queue_reachable", queue_url=self.queue_url)
        self.reachable = True
        return messages

    # -- one message ------------------------------------------------------------------------------

    async def _handle(self, message: Message) -> None:
        settled = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_hidden, message)
                try:
                    settled = await self._settle(message)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._in_flight -= 1
            self._slot_freed.set()
            if not settled:
                self.messages.labels(MessageOutcome.RETRIED).inc()
                await self._hand_back(message)

    async def _settle(self, message: Message) -> bool:
        """Journal (or reject) the message; False when it must go back to the queue."""
        # The message id goes into each log line, not into context variables: a lane started
        # while the message is journaled would inherit them and name the message for ever.
        mlog = log.bind(message_id=message.message_id)
        try:
            await self._carry(message)
            return True
        except (TransientServiceError, JournalError, CredentialsError) as exc:
            mlog.warning(
                "sqs.message_retry_later",
                error=str(exc),
                receive_count=message.receive_count,
                retry_in=self.settings.retry_delay,
            )
        except ImporterClosedError:
            mlog.info("sqs.message_handed_back")
        except QueueError as exc:
            mlog.error("sqs.message_retry_later", error=str(exc))
        except Exception as exc:
            # One message must never stop the worker: leave it for a later delivery, a few times.
            mlog.exception("sqs.message_error", error=str(exc), receive_count=message.receive_count)
            if message.receive_count >= MAX_UNEXPECTED_FAILURES:
                return await self._give_up(message, exc)
        return False

    async def _give_up(self, message: Message, exc: Exception) -> bool:
        """Reject a message that failed unexpectedly at every one of its last deliveries."""
        reason = (
            f"could not be handled in {message.receive_count} deliveries "
            f"({type(exc).__name__}); not delivered again"
        )
        try:
            await self._reject(message, [FieldError("message", reason, source=MESSAGE_SOURCE)])
        except Exception as again:  # the queue out of reach: it comes back, and is tried again
            log.warning("sqs.reject_failed", message_id=message.message_id, error=str(again))
            return False
        return True

    async def _hand_back(self, message: Message) -> None:
        # At once when this worker is stopping (another may take it now), else after a pause.
        delay = 0 if self.importer.stopping else self.settings.retry_delay
        with anyio.move_on_after(5, shield=True):
            try:
                await self.sqs.set_visibility(self.queue_url, message.receipt_handle, delay)
            except Exception as exc:  # it comes back when its visibility times out anyway
                log.debug("sqs.hand_back_failed", message_id=message.message_id, error=str(exc))

    async def _keep_hidden(self, message: Message) -> None:
        """Extend the message's visibility while it is being read and journaled."""
        timeout = self.settings.visibility_timeout
        while True:
            await anyio.sleep(max(1.0, timeout / 3))
            try:
                await self.sqs.set_visibility(self.queue_url, message.receipt_handle, timeout)
            except Exception as exc:
                # Not fatal: at worst the message is delivered again, and journaled idempotently.
                log.warning(
                    "sqs.visibility_not_extended", message_id=message.message_id, error=str(exc)
                )
            else:
                log.debug("sqs.visibility_extended", message_id=message.message_id, seconds=timeout)

    async def _carry(self, message: Message) -> None:
        imp = self.importer
        began = time.monotonic()
        try:
            ids, manifest = await self._journal(message)
        except ValidationFailed as exc:
            await self._reject(message, exc.errors)
            return
        except JournalError:
            self.journal_ok = False
            raise
        self.journal_ok = True
        if self.results_queue_url is not None:
            await outbox_of(imp.journal).add_outbox(message.message_id, self.results_queue_url, ids)
            if self._on_journaled is not None:
                self._on_journaled(ids)
        await self._delete(message)
        self.messages.labels(MessageOutcome.JOURNALED).inc()
        log.info(
            "sqs.message_journaled",
            message_id=message.message_id,
            rows=len(ids),
            manifest=manifest,
            seconds=round(time.monotonic() - began, 3),
        )

    async def _journal(self, message: Message) -> tuple[list[int], str | None]:
        """Read the message's rows and submit them; returns their ids and the manifest's URI.

        Raises:
            ValidationFailed: the message is invalid (it is rejected as a whole).
        """
        defaults = replace(self.defaults, region=self.defaults.region or self.importer.region)
        body = parse_body(message.body, defaults, self.remote)
        if body.manifest is None:
            ids = await self.importer.submit(body.requests, submission=message.message_id)
            return ids, None
        # Its visibility is kept extended while it waits its turn.
        async with self._manifests:
            ids = await journal_manifest(
                self.importer,
                self.sqs,
                body,
                defaults,
                submission=message.message_id,
                max_bytes=self.settings.max_manifest_bytes,
                remote=self.remote,
            )
        return ids, body.manifest

    async def _reject(self, message: Message, errors: Sequence[FieldError]) -> None:
        log.warning(
            "sqs.message_rejected",
            message_id=message.message_id,
            errors=len(errors),
            problems=[error_dict(e)["message"] for e in errors[:20]],
        )
        if self.results_queue_url is not None:
            doc = rejection_body(message.message_id, errors)
            # Sent before the delete: if this worker dies in between, the message comes back and
            # is rejected (and reported) again. Consumers deduplicate by message_id.
            await self.sqs.send(self.results_queue_url, doc, dedup_id=message.message_id)
        await self._delete(message)
        self.messages.labels(MessageOutcome.REJECTED).inc()

    async def _delete(self, message: Message) -> None:
        try:
            await self.sqs.delete(self.queue_url, message.receipt_handle)
        except QueueError as exc:
            # The receipt expired (the message was redelivered meanwhile): whoever holds it now
            # journals it again, idempotently.
            log.warning("sqs.delete_failed", message_id=message.message_id, error=str(exc))
