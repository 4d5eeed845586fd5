"""Completion by events: HealthOmics' job status events, through EventBridge and SQS, wake lanes.

HealthOmics sends a "Reference Import Job Status Change" event (source ``aws.omics``) to
EventBridge when an import job changes status. With a rule sending those events to an SQS queue,
:class:`EventWatcher` long-polls the queue and wakes the lane whose job ended the moment its
terminal event arrives; the lane's one Get then confirms the end and reads the per-source results
(an event carries none). Delivery is best effort, so polling stays as a sparse safety net: a job
is also polled once at ``safety_factor`` times its predicted duration, then every
``safety_interval`` seconds, so a lost or late event costs at most that.

Events of jobs this process does not wait on (other workers sharing the journal, other tools):

* a terminal event of a job the shared journal holds as active belongs to another worker of the
  fleet: it is handed back to the queue (visible again after ``release_after`` seconds) so that its
  owner receives it;
* everything else (another tool's jobs, jobs already settled, duplicates, non-terminal statuses,
  malformed messages) is deleted, so the queue does not fill up.

No body stops the watcher: one that is not a job status event (too large, nested too deeply, a
key given twice, not JSON at all) is deleted with one ``events.message_unusable`` line, and a
message whose handling fails unexpectedly is deleted too (polling still notices every end).

The journal is asked rather than leaving every foreign event in the queue: events no worker will
ever use would otherwise circulate until SQS's retention drops them, and every worker would keep
receiving them.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio

from async_refimport._errors import QueueError, RefImportError, TransientServiceError
from async_refimport._log import get_logger
from async_refimport._models import StoreRef
from async_refimport.aws.clients import ClientPool
from async_refimport.aws.preflight import Preflight
from async_refimport.aws.sqs import Message, SqsClient, body_problem
from async_refimport.completion.polling import PollingWatcher
from async_refimport.gateway.base import FINAL_JOB_STATUSES, JobSnapshot, OmicsGateway
from async_refimport.journal.base import JobState, Journal
from async_refimport.manifest.rows import decode_json

log = get_logger(__name__)

#: The event's ``source`` and ``detail-type``, as HealthOmics sends them.
EVENT_SOURCE = "aws.omics"
DETAIL_TYPE = "Reference Import Job Status Change"

_AWS_QUEUE_HOST = re.compile(
    r"^https?://(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?/"
)


def queue_region(queue_url: str) -> str | None:
    """The Region an AWS queue URL names (``https://sqs.eu-west-1.amazonaws.com/…``), else None.

    EventBridge delivers to queues of its own Region, so each Region's events have their queue;
    URLs of local endpoints (moto, LocalStack) name none, and take the importer's Region.
    """
    match = _AWS_QUEUE_HOST.match(queue_url)
    return (match.group(1) or match.group(2)) if match else None


def queue_clients(
    urls: Sequence[str],
    region: str | None,
    *,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    pool: ClientPool | None = None,
) -> dict[str, SqsClient]:
    """One SQS client per Region the queues are in, by queue URL.

    Args:
        urls: The queues' URLs.
        region: The Region of a URL that names none (a local endpoint's).
        sleep: Async sleep for the clients' retries.
        pool: Where the clients take their AWS clients from.

    Returns:
        Each URL's client (queues of one Region share one).
    """
    clients: dict[str | None, SqsClient] = {}
    queues = {}
    for url in urls:
        queue_in = queue_region(url) or region
        client = clients.get(queue_in) or SqsClient(region=queue_in, sleep=sleep, pool=pool)
        queues[url] = clients[queue_in] = client
    return queues


async def check_queues(
    urls: Sequence[str], region: str | None, *, pool: ClientPool | None = None
) -> None:
    """Make sure every events queue can be read before anything is journaled.

    A queue URL that is empty (``URL=$(refimport events init ...)`` after a failed init), names
    no queue, or may not be used would otherwise leave every job to the safety-net poll: a
    minute for jobs of a second. Each queue's attributes are read once (GetQueueAttributes,
    what a receiver of the queue may call), with the SQS client its Region gets.

    Args:
        urls: The queues' URLs.
        region: The Region of a URL that names none (a local endpoint's).
        pool: Where the clients take their AWS clients from (default: a pool of their own).

    Raises:
        QueueError: the first queue that is empty, does not exist, may not be read, or
            cannot be reached (its ``queue_url`` names it; ``code`` says why).
    """
    for url in urls:
        if not url.strip():
            raise QueueError(f"queue URL {url!r} is empty", queue_url=url, code="EmptyQueueUrl")
    clients = queue_clients(urls, region, pool=pool)
    try:
        for url, client in clients.items():
            try:
                await client.queue_attributes(url)
            except TransientServiceError as exc:
                raise QueueError(
                    f"queue {url} cannot be reached: {exc}", queue_url=url, code=exc.code
                ) from exc
    finally:
        for client in {id(c): c for c in clients.values()}.values():
            await client.aclose()


class MessageFate(StrEnum):
    """What the events watcher did with a message it received."""

    USED = "used"
    """A job this process waits on ended: its lane was woken, the message deleted."""
    RELEASED = "released"
    """Another worker of the fleet waits on the job: handed back to the queue for it."""
    DELETED = "deleted"
    """Nobody waits on it (another tool's job, a duplicate, not an end, malformed): deleted."""


@dataclass(frozen=True, slots=True)
class EventsPolicy:
    """Where job status events come from, and how sparse the safety-net polls beside them are.

    Attributes:
        queue_urls: SQS queues fed by EventBridge rules with HealthOmics' job status events (one
            per Region); none means completion is detected by polling alone.
        wait_time: Seconds one ReceiveMessage long poll may wait for a message (SQS: 0..20).
        safety_factor: A job with a predicted duration is polled once at this multiple of it,
            in case its event was lost.
        safety_interval: Then every this many seconds; without a prediction, first after this.
        confirm_interval: When an event says a job ended but Get does not show it yet, Get again
            after this, doubling up to ``safety_interval``.
        release_after: Seconds an event of another worker's job stays hidden before SQS offers
            it again (to its owner, one hopes).
        remember: How many ended jobs to remember whose event came before their wait began.
    """

    queue_urls: tuple[str, ...] = ()
    wait_time: int = 20
    safety_factor: float = 1.5
    safety_interval: float = 60.0
    confirm_interval: float = 0.5
    release_after: int = 5
    remember: int = 10_000

    def __post_init__(self) -> None:
        if isinstance(self.queue_urls, str):
            object.__setattr__(self, "queue_urls", (self.queue_urls,))
        if not 0 <= self.wait_time <= 20:
            raise ValueError("wait_time must be 0..20 seconds (the SQS limit)")


@dataclass(frozen=True, slots=True)
class JobEvent:
    """The parts of a "Reference Import Job Status Change" event the watcher uses."""

    job_id: str
    store_id: str
    status: str

    @property
    def final(self) -> bool:
        """Whether the event tells of the job's end (a final status)."""
        return self.status in FINAL_JOB_STATUSES


def parse_event(body: str) -> JobEvent | None:
    """The job event in an SQS message body (an EventBridge envelope); None if it is not one.

    Args:
        body: The message's body.

    Returns:
        The event, or None (see :func:`read_event` for why not).
    """
    event = read_event(body)
    return event if isinstance(event, JobEvent) else None


def read_event(body: str) -> JobEvent | str:
    """The job event in an SQS message body, or why the body is not one; never raises.

    Whatever the body (100,000 nested brackets, a megabyte of digits, a lone surrogate), the
    answer is a verdict: a message that made the watcher fail would come back at every delivery
    and stop every worker that received it.

    Args:
        body: The message's body.

    Returns:
        The event, or the reason the body is not a reference import job's status event.
    """
    try:
        return _read_event(body)
    except Exception as exc:  # RecursionError, MemoryError, a codec's error: the same verdict
        return f"cannot be read ({type(exc).__name__})"


def _read_event(body: str) -> JobEvent | str:
    problem = body_problem(body)
    if problem is not None:
        return problem
    envelope, problem = decode_json(body)
    if problem is not None:
        return f"not a JSON document: {problem}"
    if not isinstance(envelope, dict):
        return "not a JSON object"
    if envelope.get("source") != EVENT_SOURCE or envelope.get("detail-type") != DETAIL_TYPE:
        return f"not a {DETAIL_TYPE!r} event of {EVENT_SOURCE}"
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        return "no detail object"
    job_id, store_id, status = (
        detail.get("id"),
        detail.get("referenceStoreId"),
        detail.get("status"),
    )
    if not all(isinstance(v, str) and v for v in (job_id, store_id, status)):
        return "no id, referenceStoreId and status in its detail"
    return JobEvent(str(job_id), str(store_id), str(status))


class EventWatcher:
    """:class:`~async_refimport.completion.base.CompletionWatcher` woken by job status events.

    Run :meth:`run` in a task (the Importer does) to listen; :meth:`wait` works without it too,
    on safety-net polls alone.

    Args:
        gateway: Where to confirm an end (one Get) and poll as a safety net.
        polling: The predictor of job durations (shared with the polling watcher's knowledge).
        queues: The queues fed by the EventBridge rules (one per Region), each with the SQS
            client of its Region.
        journal: The shared journal, to tell another worker's job from another tool's.
        policy: Listening and safety-net timing.
        clock: Monotonic seconds (injectable).
        sleep: Async sleep (injectable).
    """

    def __init__(
        self,
        gateway: OmicsGateway,
        polling: PollingWatcher,
        queues: Mapping[str, SqsClient],
        journal: Journal,
        policy: EventsPolicy = EventsPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if not queues:
            raise ValueError("the events watcher needs at least one queue URL")
        self._gateway = gateway
        self._polling = polling
        self._queues = dict(queues)
        self._journal = journal
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._waiting: dict[str, anyio.Event] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()
        #: Gets sent: confirmations after an event, and safety-net polls.
        self.polls = 0
        #: Jobs noticed through their event, and through a safety-net poll.
        self.woken = 0
        self.caught_by_polling = 0
        #: Messages received, by what was done with them.
        self.messages: dict[MessageFate, int] = dict.fromkeys(MessageFate, 0)

    # -- waiting --------------------------------------------------------------------------------

    async def wait(
        self, store: StoreRef, job_id: str, sources: int, started: float, size: int | None = None
    ) -> JobSnapshot:
        """See :meth:`CompletionWatcher.wait <async_refimport.CompletionWatcher.wait>`."""
        p = self._policy
        predicted, _ = self._polling.predict(store, sources, size)
        woken = self._waiting[job_id] = anyio.Event()
        if job_id in self._ended:
            woken.set()  # its event came before this wait began
        safety_polls = confirms = 0
        try:
            while True:
                if not woken.is_set():
                    elapsed = self._clock() - started
                    with anyio.move_on_after(self._safety_delay(predicted, elapsed, safety_polls)):
                        await woken.wait()
                heard = woken.is_set()
                try:
                    self.polls += 1
                    snapshot = await self._gateway.get_import(store, job_id)
                except TransientServiceError as exc:
                    log.warning("import_job.poll_failed", job_id=job_id, error=str(exc))
                    await self._sleep(p.confirm_interval)
                    continue
                if snapshot.done:
                    if heard:
                        self.woken += 1
                    else:
                        self.caught_by_polling += 1
                        log.info("import_job.event_missed", job_id=job_id)
                    self._polling.observe(store, sources, snapshot, started, size)
                    return snapshot
                if heard:
                    # The event ran ahead of what Get shows (reads may lag): look again soon.
                    confirms += 1
                    woken = self._waiting[job_id] = anyio.Event()
                    self._ended.pop(job_id, None)
                    delay = min(p.safety_interval, p.confirm_interval * 2.0 ** (confirms - 1))
                    with anyio.move_on_after(delay):
                        await woken.wait()
                    woken.set()
                else:
                    safety_polls += 1
        finally:
            self._waiting.pop(job_id, None)

    def _safety_delay(self, predicted: float | None, elapsed: float, polls: int) -> float:
        """Seconds until the next safety-net poll of a job that has run ``elapsed`` seconds."""
        p = self._policy
        if polls == 0:
            first = p.safety_interval if predicted is None else predicted * p.safety_factor
            return max(0.0, first - elapsed)
        return p.safety_interval

    # -- listening ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Long-poll every queue until cancelled."""
        async with anyio.create_task_group() as tg:
            for url in self._queues:
                tg.start_soon(self._listen, url)

    async def _listen(self, queue_url: str) -> None:
        failures = 0
        while True:
            try:
                messages = await self._queues[queue_url].receive(
                    queue_url,
                    max_messages=10,
                    wait_time=self._policy.wait_time,
                    visibility_timeout=30,
                )
            except RefImportError as exc:
                # Polling still notices every end: say so once, then keep trying quietly.
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "events.receive_failed", queue_url=queue_url, error=str(exc)
                )
                await self._sleep(min(self._policy.safety_interval, 2.0 ** min(failures, 6)))
                continue
            if failures:
                log.info("events.receiving", queue_url=queue_url)
            failures = 0
            for message in messages:
                await self._handle_safely(queue_url, message)

    async def _handle_safely(self, queue_url: str, message: Message) -> None:
        """:meth:`handle`, whose unexpected failure deletes the message rather than stopping
        the listener (a message that failed once fails again; polling notices every end)."""
        try:
            await self.handle(queue_url, message)
        except Exception as exc:
            log.exception("events.message_failed", message_id=message.message_id, error=str(exc))
            self.messages[MessageFate.DELETED] += 1
            try:
                await self._queues[queue_url].delete(queue_url, message.receipt_handle)
            except RefImportError as again:
                log.debug("events.settle_message_failed", queue_url=queue_url, error=str(again))

    async def handle(self, queue_url: str, message: Message) -> MessageFate:
        """Act on one received message.

        Args:
            queue_url: The queue it came from.
            message: The message.

        Returns:
            What was done with it.
        """
        read = read_event(message.body)
        event = read if isinstance(read, JobEvent) else None
        if event is None:
            # One line per message nobody can use (it is deleted): the queue's rule or a
            # producer sends what it should not.
            log.warning("events.message_unusable", message_id=message.message_id, reason=read)
        outcome = MessageFate.DELETED
        if event is not None and event.final:
            self._remember(event)
            woken = self._waiting.get(event.job_id)
            if woken is not None:
                woken.set()
                outcome = MessageFate.USED
            elif await self._owned_elsewhere(event.job_id):
                outcome = MessageFate.RELEASED
        self.messages[outcome] += 1
        sqs = self._queues[queue_url]
        try:
            if outcome is MessageFate.RELEASED:
                await sqs.set_visibility(
                    queue_url, message.receipt_handle, self._policy.release_after
                )
            else:
                await sqs.delete(queue_url, message.receipt_handle)
        except RefImportError as exc:
            # It comes back after its visibility timeout and is handled again: no harm.
            log.debug("events.settle_message_failed", queue_url=queue_url, error=str(exc))
        if event is not None:
            log.debug("events.received", job_id=event.job_id, status=event.status, outcome=outcome)
        return outcome

    def _remember(self, event: JobEvent) -> None:
        self._ended[event.job_id] = event.status
        self._ended.move_to_end(event.job_id)
        while len(self._ended) > self._policy.remember:
            self._ended.popitem(last=False)

    async def _owned_elsewhere(self, job_id: str) -> bool:
        """Whether the shared journal holds ``job_id`` as an active job (another worker's)."""
        try:
            jobs = await self._journal.jobs()
        except RefImportError as exc:
            # Cannot tell: keep the event for whoever may need it.
            log.debug("events.journal_unreadable", error=str(exc))
            return True
        return any(j.job_id == job_id and j.state is not JobState.DONE for j in jobs)

    async def warm(self, journal: Journal, preflight: Preflight | None = None) -> int:
        """Seed the duration model (the safety net's timing) from the journal's finished jobs."""
        return await self._polling.warm(journal, preflight)

    async def aclose(self) -> None:
        """Close the SQS clients."""
        for sqs in {id(c): c for c in self._queues.values()}.values():
            await sqs.aclose()

    def stats(self) -> dict[str, Any]:
        """Counters for metrics and benchmarks."""
        return {
            "polls": self.polls,
            "woken": self.woken,
            "caught_by_polling": self.caught_by_polling,
            "messages": {str(fate): n for fate, n in self.messages.items()},
        }
