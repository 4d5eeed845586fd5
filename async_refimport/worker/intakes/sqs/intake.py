"""The worker's SQS intake: import requests arrive as messages on a standard queue.

A message body is one of::

    {"requests": [{"source_file": "s3://b/hg38.fa", "name": "hg38", "store_id": "..."}, ...]}
    {"manifest": "s3://bucket/refs.csv"}              (optionally "format": "csv"|"tsv"|"jsonl")

The rows take the fields of ``POST /v1/imports`` (those of a manifest row); a manifest object is
read through S3 and parsed exactly as ``refimport import`` parses a file.

Delivery rules (SQS delivers at least once, to any worker of the fleet):

* A message is deleted only after its rows are journaled, under the submission id = its SQS
  MessageId: a redelivered message finds its rows journaled already (one row per store and name)
  and its result document owed already (one outbox entry per submission).
* While a message is being read and journaled its visibility is extended, so a large manifest is
  not handed to a second worker half-way.
* An invalid message (not JSON, invalid rows, a manifest object that does not exist or cannot be
  read) is rejected as a whole, like an invalid ``POST``: nothing is journaled, the errors are
  logged and sent as its result document (when there is a results queue), and the message is
  deleted. It is not left to the queue's redrive policy because the verdict is deterministic: a
  redelivery would fail the same way, the producer would learn nothing until the dead-letter
  queue was inspected, and a queue without a redrive policy would redeliver it for ever.
* A failure that a retry can fix (SQS, S3 or the journal out of reach, the worker stopping) leaves
  the message on the queue: it comes back after a pause, to this worker or another, and a queue's
  redrive policy (recommended) bounds how often.

With a results queue, every journaled message is owed one result document through the journal's
outbox; :mod:`._outbox` sends it once all its rows are final, from whichever worker sees it first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter

from async_refimport._errors import (
    CredentialsError,
    FieldError,
    ImporterClosedError,
    JournalError,
    ManifestError,
    QueueError,
    RequestValidationError,
    TransientServiceError,
    ValidationFailed,
)
from async_refimport._log import get_logger
from async_refimport._models import ImportRequest
from async_refimport._report import json_document
from async_refimport.aws.sqs import MAX_MESSAGE_BYTES, Message, ObjectUnavailable, SqsClient
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import (
    FORMATS,
    ManifestDefaults,
    ManifestFormat,
    RemoteLimits,
    check_objects,
    parse_manifest,
)

log = get_logger(__name__)

#: Rows one message may list (a body is at most 256 KiB anyway).
MAX_REQUESTS_PER_MESSAGE = 10_000


@dataclass(frozen=True, slots=True)
class SqsIntakeSettings:
    """How the intake polls.

    Attributes:
        wait_time: Seconds one long poll waits for messages (SQS allows 0..20).
        visibility_timeout: Seconds a received message stays hidden from other workers; extended
            every third of it while the message is being journaled.
        max_in_flight: Messages handled at once; the intake stops receiving beyond that.
        max_manifest_bytes: The largest manifest object read from S3.
        retry_delay: Seconds a message that hit a transient failure stays hidden before it is
            delivered again (to any worker).
        error_backoff: Seconds between receives while the queue cannot be reached.
    """

    wait_time: int = 20
    visibility_timeout: int = 60
    max_in_flight: int = 20
    max_manifest_bytes: int = 256 * 1024 * 1024
    retry_delay: int = 10
    error_backoff: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.wait_time <= 20:
            raise ValueError("wait_time must be 0..20 seconds (the SQS limit)")
        if not 2 <= self.visibility_timeout <= 43_200:
            raise ValueError("visibility_timeout must be 2..43200 seconds")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")


# -- reading a message -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageBody:
    """A parsed message: rows given inline, or a manifest to read."""

    requests: tuple[ImportRequest, ...] = ()
    manifest: str | None = None
    format: ManifestFormat | None = None


def _rejected(field: str, reason: str) -> RequestValidationError:
    return RequestValidationError([FieldError(field, reason, source="message")])


def parse_body(
    body: str, defaults: ManifestDefaults, remote: RemoteLimits | None = None
) -> MessageBody:
    """Check a message body; rows given inline are validated like a JSON Lines manifest, with
    what a remote client may set limited by ``remote`` (never an endpoint or a profile).

    Raises:
        RequestValidationError: with every problem found (``line`` is the row's 1-based index).
    """
    try:
        doc = json.loads(body)
    except ValueError:
        raise _rejected("body", "not a JSON document") from None
    if not isinstance(doc, dict):
        raise _rejected(
            "body", 'must be a JSON object: {"requests": [...]} or {"manifest": "s3://..."}'
        )
    items, manifest = doc.get("requests"), doc.get("manifest")
    if (items is None) == (manifest is None):
        raise _rejected("body", 'give exactly one of "requests" or "manifest"')
    if manifest is not None:
        fmt = doc.get("format")
        if not isinstance(manifest, str) or not manifest.startswith("s3://"):
            raise _rejected("manifest", "must be an s3://bucket/key URI")
        if fmt is not None and fmt not in FORMATS:
            raise _rejected("format", f"must be one of {', '.join(FORMATS)}")
        return MessageBody(manifest=manifest, format=fmt)
    if not isinstance(items, list) or not items:
        raise _rejected("requests", "must be a non-empty list")
    if len(items) > MAX_REQUESTS_PER_MESSAGE:
        raise _rejected("requests", f"at most {MAX_REQUESTS_PER_MESSAGE} rows per message")
    # The manifest reader's row checks, so every intake accepts the same fields the same way.
    parsed = check_objects(items, defaults, source="requests", remote=remote or RemoteLimits())
    if parsed.errors:
        raise RequestValidationError(parsed.errors)
    return MessageBody(requests=tuple(parsed.requests))


async def read_manifest_object(
    sqs: SqsClient,
    uri: str,
    defaults: ManifestDefaults,
    *,
    format: ManifestFormat | None = None,
    max_bytes: int,
    remote: RemoteLimits | None = None,
) -> list[ImportRequest]:
    """Read and validate a manifest stored in S3, as ``refimport import`` reads one.

    The object is fetched here rather than by the manifest reader's own S3 fetch because the two
    kinds of failure must stay apart: a missing object or a denied read rejects the message, but
    S3 out of reach leaves it on the queue for a later delivery. Parsing (format from the key's
    extension, else sniffed) is the manifest reader's.

    Raises:
        ManifestError: every bad row (each naming the URI and line), or the object is missing.
        TransientServiceError: S3 could not be reached.
    """
    try:
        data = await sqs.read_object(uri, max_bytes=max_bytes)
    except ObjectUnavailable as exc:
        raise ManifestError([FieldError("manifest", str(exc), source=uri)]) from exc
    manifest = await anyio.to_thread.run_sync(
        lambda: parse_manifest(data, uri, defaults, format=format, remote=remote or RemoteLimits())
    )
    manifest.raise_for_errors()
    if not manifest.rows:
        raise ManifestError([FieldError("manifest", "no rows", source=uri)])
    return manifest.requests


# -- result documents ------------------------------------------------------------------------------


def error_dict(error: FieldError) -> dict[str, Any]:
    """One problem of a rejected message, as its result document lists it."""
    out: dict[str, Any] = {
        "field": error.field,
        "reason": error.reason,
        "row_name": error.row_name,
    }
    if error.source == "requests":
        out["index"] = error.line
        where = f"requests[{error.line}]: " if error.line is not None else ""
    else:
        out["line"] = error.line
        out["source"] = error.source if error.source not in (None, "message") else None
        if error.source not in (None, "message"):
            where = f"{error.source}:{error.line}: " if error.line else f"{error.source}: "
        else:
            where = ""
    out["message"] = f"{where}{error.field}: {error.reason}"
    return out


def rejection_document(message_id: str, errors: Sequence[FieldError]) -> dict[str, Any]:
    """The result document of a rejected message: nothing journaled, every problem listed."""
    doc: dict[str, Any] = {"message_id": message_id, **json_document([])}
    doc["errors"] = [error_dict(e) for e in errors]
    return doc


async def check_queues(sqs: SqsClient, urls: Sequence[str]) -> list[dict[str, str]]:
    """Each queue's attributes: the start-up check that it exists and may be used.

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


# -- the intake ------------------------------------------------------------------------------------


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
        self.running = False
        #: False while the queue cannot be reached (readiness); True after a receive succeeds.
        self.reachable = False
        #: False while the journal cannot be written; True after a message is journaled.
        self.journal_ok = True
        self._in_flight = 0
        self._slot_freed = anyio.Event()
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

        Raises:
            QueueError: at start-up, a queue does not exist or cannot be reached.
        """
        await self.check()
        s = self.settings
        async with anyio.create_task_group() as tg:
            self.running = True
            task_status.started()
            try:
                while not self.importer.stopping:
                    while self._in_flight >= s.max_in_flight:
                        self._slot_freed = anyio.Event()
                        await self._slot_freed.wait()
                    try:
                        messages = await self.sqs.receive(
                            self.queue_url,
                            max_messages=min(10, s.max_in_flight - self._in_flight),
                            wait_time=s.wait_time,
                            visibility_timeout=s.visibility_timeout,
                        )
                    except (QueueError, TransientServiceError, CredentialsError) as exc:
                        # Deleted, denied or out of reach after start-up: keep the worker up (its
                        # other intakes still work), say so, and try again after a pause.
                        (log.error if self.reachable else log.debug)(
                            "sqs.receive_failed", queue_url=self.queue_url, error=str(exc)
                        )
                        self.reachable = False
                        await anyio.sleep(s.error_backoff)
                        continue
                    if not self.reachable:
                        log.info("sqs.queue_reachable", queue_url=self.queue_url)
                    self.reachable = True
                    for message in messages:
                        self._in_flight += 1
                        tg.start_soon(self._handle, message, name=f"sqs {message.message_id}")
            finally:
                self.running = False

    # -- one message ------------------------------------------------------------------------------

    async def _handle(self, message: Message) -> None:
        # The message id goes into each log line, not into context variables: a lane started
        # while the message is journaled would inherit them and name the message for ever.
        mlog = log.bind(message_id=message.message_id)
        settled = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_hidden, message)
                try:
                    await self._carry(message)
                    settled = True
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
                    # One message must never stop the worker: leave it for a later delivery.
                    mlog.exception("sqs.message_error", error=str(exc))
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._in_flight -= 1
            self._slot_freed.set()
            if not settled:
                self.messages.labels("retried").inc()
                await self._hand_back(message)

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
        defaults = replace(self.defaults, region=self.defaults.region or imp.region)
        began = time.monotonic()
        try:
            body = parse_body(message.body, defaults, self.remote)
            if body.manifest is not None:
                requests = await read_manifest_object(
                    self.sqs,
                    body.manifest,
                    defaults,
                    format=body.format,
                    max_bytes=self.settings.max_manifest_bytes,
                    remote=self.remote,
                )
            else:
                requests = list(body.requests)
            ids = await imp.submit(requests, submission=message.message_id)
        except ValidationFailed as exc:
            await self._reject(message, exc.errors)
            return
        except JournalError:
            self.journal_ok = False
            raise
        self.journal_ok = True
        if self.results_queue_url is not None:
            await imp.journal.add_outbox(message.message_id, self.results_queue_url, ids)
            if self._on_journaled is not None:
                self._on_journaled(ids)
        await self._delete(message)
        self.messages.labels("journaled").inc()
        log.info(
            "sqs.message_journaled",
            message_id=message.message_id,
            rows=len(ids),
            manifest=body.manifest,
            seconds=round(time.monotonic() - began, 3),
        )

    async def _reject(self, message: Message, errors: Sequence[FieldError]) -> None:
        log.warning(
            "sqs.message_rejected",
            message_id=message.message_id,
            errors=len(errors),
            problems=[error_dict(e)["message"] for e in errors[:20]],
        )
        if self.results_queue_url is not None:
            doc = json.dumps(rejection_document(message.message_id, errors), default=str)
            if len(doc.encode()) > MAX_MESSAGE_BYTES:
                doc = json.dumps(rejection_document(message.message_id, errors[:100]))
            # Sent before the delete: if this worker dies in between, the message comes back and
            # is rejected (and reported) again. Consumers deduplicate by message_id.
            await self.sqs.send(self.results_queue_url, doc, dedup_id=message.message_id)
        await self._delete(message)
        self.messages.labels("rejected").inc()

    async def _delete(self, message: Message) -> None:
        try:
            await self.sqs.delete(self.queue_url, message.receipt_handle)
        except QueueError as exc:
            # The receipt expired (the message was redelivered meanwhile): whoever holds it now
            # journals it again, idempotently.
            log.warning("sqs.delete_failed", message_id=message.message_id, error=str(exc))


# -- what a worker runs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqsOptions:
    """The worker's SQS flags.

    Attributes:
        queue_url: The queue of requests (None: no SQS intake).
        results_queue_url: Where each message's result document goes (None: none).
        intake: Polling knobs.
        outbox_interval: Seconds between looks for result documents that are due.
    """

    queue_url: str | None = None
    results_queue_url: str | None = None
    intake: SqsIntakeSettings = SqsIntakeSettings()
    outbox_interval: float = 10.0

    @property
    def enabled(self) -> bool:
        return self.queue_url is not None or self.results_queue_url is not None


def add_arguments(parser: Any) -> None:
    """The worker's SQS flags, on its ``argparse`` parser."""
    group = parser.add_argument_group(
        "SQS (endpoint from AWS_ENDPOINT_URL_SQS; S3 manifests from AWS_ENDPOINT_URL_S3)"
    )
    group.add_argument("--sqs-queue-url", help="take requests from this SQS queue (long poll)")
    group.add_argument(
        "--results-queue-url", help="send each message's result document to this SQS queue"
    )
    group.add_argument(
        "--sqs-wait", type=int, default=20, help="seconds of one long poll (0..20, default 20)"
    )
    group.add_argument(
        "--sqs-visibility-timeout",
        type=int,
        default=60,
        help="seconds a received message stays hidden, extended while it is journaled (default 60)",
    )
    group.add_argument(
        "--outbox-interval",
        type=float,
        default=10.0,
        help="seconds between looks for result documents due from any worker (default 10)",
    )


def options_from_args(args: Any) -> SqsOptions:
    """:class:`SqsOptions` from parsed flags (``ValueError`` on a bad value)."""
    return SqsOptions(
        queue_url=args.sqs_queue_url,
        results_queue_url=args.results_queue_url,
        intake=SqsIntakeSettings(
            wait_time=args.sqs_wait,
            visibility_timeout=args.sqs_visibility_timeout,
            retry_delay=min(10, args.sqs_visibility_timeout),
        ),
        outbox_interval=args.outbox_interval,
    )


class SqsService:
    """The SQS side of a worker: the intake (with a request queue) and the result sender.

    The sender runs in every worker given either queue: a result document is owed by the fleet,
    not by the worker that received the message.

    Args:
        importer: The worker's open Importer.
        options: The SQS flags.
        defaults: Field values for rows that leave them out.
        registry: The worker's Prometheus registry.
        remote: What a message's rows may set (never an endpoint or a profile).
    """

    def __init__(
        self,
        importer: Importer,
        options: SqsOptions,
        defaults: ManifestDefaults,
        *,
        registry: CollectorRegistry | None = None,
        remote: RemoteLimits | None = None,
    ) -> None:
        from async_refimport.worker.outbox import ResultSender

        self.options = options
        self.sqs = SqsClient(region=defaults.region or importer.region, profile=defaults.profile)
        self.sender = ResultSender(
            importer,
            self.sqs,
            interval=options.outbox_interval,
            min_gap=min(1.0, options.outbox_interval),
            registry=registry,
        )
        self.intake: SqsIntake | None = None
        if options.queue_url is not None:
            self.intake = SqsIntake(
                importer,
                self.sqs,
                options.queue_url,
                defaults,
                results_queue_url=options.results_queue_url,
                settings=options.intake,
                on_journaled=self.sender.wake,
                registry=registry,
                remote=remote,
            )

    @property
    def queue_reachable(self) -> bool:
        return self.intake is None or self.intake.reachable

    @property
    def journal_ok(self) -> bool:
        return self.sender.journal_ok and (self.intake is None or self.intake.journal_ok)

    @property
    def ready(self) -> bool:
        """Taking work: the request queue and the journal answered their last calls."""
        return self.queue_reachable and self.journal_ok

    def describe(self) -> dict[str, Any]:
        """Keys of the worker's start-up line."""
        return {"sqs": self.options.queue_url, "results": self.options.results_queue_url}

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Check the queues, then run until cancelled.

        Raises:
            QueueError: at start-up, a queue does not exist or cannot be reached.
        """
        async with self.sqs, anyio.create_task_group() as tg:
            if self.intake is not None:
                await tg.start(self.intake.run)
            elif self.options.results_queue_url is not None:
                await check_queues(self.sqs, [self.options.results_queue_url])
            await tg.start(self.sender.run)
            task_status.started()
