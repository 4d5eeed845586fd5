"""The engine's settings: one dataclass, read by the Importer and by every lane it runs.

One source of truth: a lane reads the same :class:`ImporterSettings` object the Importer was
given (there is no second copy to keep in step), and entry points derive their flags from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from async_refimport._models import MAX_SOURCES_PER_JOB
from async_refimport._pacing import PacingPolicy
from async_refimport._retry import RetryPolicy
from async_refimport.aws.preflight import PreflightPolicy
from async_refimport.completion.events import EventsPolicy
from async_refimport.completion.polling import PollingPolicy


@dataclass(frozen=True, slots=True)
class ImporterSettings:
    """Everything tunable about the engine; the defaults suit AWS.

    Attributes:
        max_sources_per_job: Rows packed into one import job (1..100).
        max_attempts: Jobs a row may take part in before a whole-job failure fails it.
        retry: Backoff for transient errors.
        pacing: Calls per second per (credentials, Region, operation).
        polling: When to poll running jobs.
        preflight: Whether sources are checked (S3 HEAD) before they are sent, and how.
        events: How job status events are listened for, and the safety-net polls beside them
            (with an events queue; see ``Importer(events_queue_url=...)``).
        busy_wait: Seconds to wait when the store runs someone else's job (402) or retries ran out.
        quota_wait_max: The cap of the growing wait while the account's concurrent import quota
            is full (a 402 while the store runs no job: read-set imports count against the same
            quota). The rows wait as long as it lasts; they never fail for it.
        lookup_margin: Clock-skew allowance (seconds) when searching for a job after a crash.
        existence_ttl: Seconds before a store's list of existing names is fetched again.
        lease_ttl: Seconds a process holds a store without renewing (several processes, one journal).
        shutdown_grace: Seconds a Start in flight may take to finish and be journaled while
            closing; also bounds each clean-up step of closing (journal, SDK clients).
        rescan_interval: Seconds an idle lane waits before looking at the journal again (rows
            queued by another process sharing the journal).
        consistency_grace: Seconds the service's reads may lag its writes before they are
            believed: a 404 for a job it started, a "busy" refusal while no active job is
            listed, a taken name not listed yet (see the README: what AWS does not document).
        stop_on_journal_failure: A journal that cannot be written (a full disk, a file deleted
            while in use, a table gone) stops the Importer, which then raises the
            :class:`~async_refimport.JournalError` on leaving its ``async with`` block: nothing
            may be sent that cannot be recorded, and a re-run resumes. A long-lived worker sets
            it False: its lanes keep retrying every ``busy_wait`` (an error line every few
            minutes while it lasts), its intakes refuse what they cannot record (HTTP 503),
            ``/readyz`` answers 503 (``Importer.journal_trouble``), and it goes on by itself
            once the journal can be written again.
        setup_timeout: Seconds a store's first call (ListReferences) may go without any answer
            (every attempt a refused or timed-out connection) before the endpoint counts as
            unreachable: a :class:`~async_refimport.SetupError`. A service that answers, even
            with throttling, is waited for as long as it takes.
        stop_on_setup_failure: A store that cannot be used as set up (no or refused
            credentials, an unknown profile, access denied, no such store, an unreachable
            endpoint: a :class:`~async_refimport.SetupError` at its first call) is parked with
            its rows queued; ``wait`` raises the error once the other rows are done, and
            submitting to the store again tries it anew. A long-lived worker sets it False: it
            tries the store again and again (with backoff), and reports not-ready meanwhile.
    """

    max_sources_per_job: int = MAX_SOURCES_PER_JOB
    max_attempts: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pacing: PacingPolicy = field(default_factory=PacingPolicy)
    polling: PollingPolicy = field(default_factory=PollingPolicy)
    events: EventsPolicy = field(default_factory=EventsPolicy)
    preflight: PreflightPolicy = field(default_factory=PreflightPolicy)
    busy_wait: float = 10.0
    quota_wait_max: float = 300.0
    lookup_margin: float = 60.0
    existence_ttl: float = 600.0
    lease_ttl: float = 30.0
    shutdown_grace: float = 30.0
    rescan_interval: float = 30.0
    consistency_grace: float = 60.0
    stop_on_journal_failure: bool = True
    setup_timeout: float = 20.0
    stop_on_setup_failure: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_sources_per_job <= MAX_SOURCES_PER_JOB:
            raise ValueError(f"max_sources_per_job must be 1..{MAX_SOURCES_PER_JOB}")
        if self.shutdown_grace <= 0 or self.lease_ttl <= 0 or self.setup_timeout <= 0:
            raise ValueError("shutdown_grace, lease_ttl and setup_timeout must be positive")


def with_shortcuts(
    settings: ImporterSettings | None,
    *,
    max_sources_per_job: int | None = None,
    events_queue_url: str | Sequence[str] | None = None,
) -> ImporterSettings:
    """``settings`` (default: the defaults) with the Importer's shortcut arguments applied.

    Args:
        settings: The settings given, if any.
        max_sources_per_job: Replaces ``settings.max_sources_per_job`` when given.
        events_queue_url: One queue URL or several: replaces ``settings.events.queue_urls``
            when given.

    Returns:
        The settings the Importer runs with.
    """
    settings = settings or ImporterSettings()
    if max_sources_per_job is not None:
        settings = replace(settings, max_sources_per_job=max_sources_per_job)
    if events_queue_url:
        urls = (events_queue_url,) if isinstance(events_queue_url, str) else events_queue_url
        settings = replace(settings, events=replace(settings.events, queue_urls=tuple(urls)))
    return settings
