"""Prometheus metrics of one worker, in a registry of its own (never the process-global one).

Two kinds of numbers:

* counted from the engine's events as they happen (jobs started and finished, job durations,
  retries, rows settled, spool files filed, stores waiting and why: ``refimport_store_waiting``);
* read when scraped from the Importer's read-only status view (rows by state and queue depth per
  store, the job each store runs here, API calls and throttles per operation) through a custom
  collector, so nothing is double-counted across restarts of a counter and memory does not grow
  with the number of rows.

Beside them, as Prometheus's conventions expect of any exporter: the process's own numbers
(``process_*``: CPU, memory, open file descriptors, start time), the Python platform's
(``python_info``, ``python_gc_*``) and ``refimport_build_info{version="..."} 1``, all in the
worker's registry. Names follow promtool's ``check metrics`` lint (``tests/worker/test_metrics_lint.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata

import anyio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from async_refimport._events import (
    Event,
    JobFinished,
    JobStarted,
    RequestRetried,
    RowSettled,
    StorePaused,
)
from async_refimport._models import RowState
from async_refimport.engine.importer import ApiStats, Importer, ImporterStatus, StoreStatus

# Import jobs run from seconds (emulator) to many minutes (human genomes at AWS).
_JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0, float("inf"))


Family = CounterMetricFamily | GaugeMetricFamily


def _store_families(stores: Sequence[StoreStatus]) -> list[Family]:
    """The per-store gauges: rows by state, queue depth, active job, lease held, set-up error."""
    store_labels = ["store_id", "region"]
    rows = GaugeMetricFamily(
        "refimport_rows",
        "Rows in the journal by store and state",
        labels=[*store_labels, "state"],
    )
    depth = GaugeMetricFamily(
        "refimport_queue_depth", "Rows waiting for a job (QUEUED) per store", labels=store_labels
    )
    active = GaugeMetricFamily(
        "refimport_store_active_job",
        "1 while this worker drives an import job on the store",
        labels=store_labels,
    )
    leases = GaugeMetricFamily(
        "refimport_store_lease_held",
        "1 for each store whose lease this worker holds (it drives the store for the fleet)",
        labels=store_labels,
    )
    setup = GaugeMetricFamily(
        "refimport_store_setup_error",
        "1 while the store cannot be used as set up (its rows wait; the log says what to fix)",
        labels=[*store_labels, "kind"],
    )
    for st in stores:
        key = [st.store.store_id, st.store.region]
        for state in RowState:
            rows.add_metric([*key, state.value], st.rows.get(state, 0))
        depth.add_metric(key, st.queue_depth)
        if st.driven:
            active.add_metric(key, 1 if st.active_job else 0)
        leases.add_metric(key, 1 if st.held_here else 0)
        if st.setup_error is not None:
            setup.add_metric([*key, str(st.setup_error.kind)], 1)
    return [rows, depth, active, leases, setup]


def _api_families(api: Sequence[ApiStats]) -> list[Family]:
    """The per-operation numbers: calls sent, calls throttled, the paced rate."""
    api_labels = ["operation", "region"]
    calls = CounterMetricFamily(
        "refimport_api_calls", "HealthOmics API calls sent", labels=api_labels
    )
    throttles = CounterMetricFamily(
        "refimport_api_throttles", "Calls answered with throttling", labels=api_labels
    )
    rate = GaugeMetricFamily(
        "refimport_api_rate", "Current paced call rate (calls/s)", labels=api_labels
    )
    for op in api:
        calls.add_metric([op.operation, op.region], op.calls)
        throttles.add_metric([op.operation, op.region], op.throttles)
        rate.add_metric([op.operation, op.region], op.rate)
    return [calls, throttles, rate]


def _waiting_family(waits: dict[tuple[str, str], StoreWait]) -> Family:
    """``refimport_store_waiting``: 1 while a store waits (and why), 0 once it moves again."""
    family = GaugeMetricFamily(
        "refimport_store_waiting",
        "1 while the store waits and why (the account's import quota full, another process's "
        "lease, a paused set-up); 0 once its next job starts or row settles",
        labels=["store_id", "region", "reason"],
    )
    for (store_id, region), wait in sorted(waits.items()):
        family.add_metric([store_id, region, wait.reason], 1 if wait.waiting else 0)
    return family


@dataclass(slots=True)
class StoreWait:
    """A store's last wait, as ``refimport_store_waiting`` shows it.

    Attributes:
        reason: Why it waited (the engine's :class:`StorePaused` reason).
        waiting: Whether it still waits (False once its next job started or row settled).
    """

    reason: str
    waiting: bool = True


class _JournalCollector(Collector):
    """The scrape-time metrics, read from the last status snapshot and the stores' waits."""

    def __init__(self) -> None:
        self.snapshot = ImporterStatus((), (), False)
        # One series per store, its last reason: a store that waited for many reasons in turn
        # leaves one series, not one per reason ever seen.
        self.waits: dict[tuple[str, str], StoreWait] = {}

    def collect(self) -> Iterable[Family]:
        """The metric families of the last snapshot (called by the registry at each scrape)."""
        return [
            *_store_families(self.snapshot.stores),
            *_api_families(self.snapshot.api),
            _waiting_family(self.waits),
        ]


def _register_standard_collectors(registry: CollectorRegistry) -> None:
    """The process, Python platform and garbage collector collectors, and the build's version,
    in ``registry`` (the process-global registry has its own; this one is the worker's).

    Args:
        registry: The worker's registry.
    """
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)  # registers nothing where the interpreter keeps no gc stats
    Gauge(
        "refimport_build_info",
        "Always 1: the version of async-refimport this worker runs, as a label",
        ["version"],
        registry=registry,
    ).labels(metadata.version("async-refimport")).set(1)


class WorkerMetrics:
    """The worker's metrics; feed it events with :meth:`observe`, serve :meth:`render`.

    The counters are attributes (``spool_files``, ``http_submissions`` ...) for the intakes to
    count what they do; ``registry`` is where intakes register counters of their own.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_started = Counter(
            "refimport_jobs_started",
            "Import jobs started (or adopted after a restart)",
            ["store_id", "region", "recovered"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "refimport_jobs_finished",
            "Import jobs ended, by final status",
            ["store_id", "region", "status"],
            registry=r,
        )
        self.job_duration = Histogram(
            "refimport_job_duration_seconds",
            "Wall time from Start to settled, per import job",
            ["store_id", "region"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "refimport_api_retries",
            "API calls retried after a transient error",
            ["operation", "code"],
            registry=r,
        )
        self.rows_settled = Counter(
            "refimport_rows_settled", "Rows that reached a final state", ["state"], registry=r
        )
        self.spool_files = Counter(
            "refimport_spool_files",
            "Manifests filed by the spool",
            ["destination"],
            registry=r,
        )
        self.http_submissions = Counter(
            "refimport_http_submissions",
            "POST /v1/imports answers, by HTTP status",
            ["status"],
            registry=r,
        )
        self._journal = _JournalCollector()
        r.register(self._journal)
        _register_standard_collectors(r)

    def observe(self, event: Event) -> None:
        """Count one engine event (jobs started and finished, retries, rows settled, stores
        waiting and moving again).

        Args:
            event: Any event of the Importer; those not counted are ignored.
        """
        if isinstance(event, StorePaused):
            key = (event.store.store_id, event.store.region)
            self._journal.waits[key] = StoreWait(event.reason)
        elif isinstance(event, JobStarted | RowSettled):
            self._moving(event)
        if isinstance(event, JobStarted):
            s = event.store
            self.jobs_started.labels(s.store_id, s.region, str(event.recovered).lower()).inc()
        elif isinstance(event, JobFinished):
            s = event.store
            self.jobs_finished.labels(s.store_id, s.region, event.status).inc()
            self.job_duration.labels(s.store_id, s.region).observe(event.duration)
        elif isinstance(event, RequestRetried):
            self.retries.labels(event.operation, event.code).inc()
        elif isinstance(event, RowSettled):
            self.rows_settled.labels(event.result.state.value).inc()

    def _moving(self, event: JobStarted | RowSettled) -> None:
        """The store of ``event`` moves again: its wait, if any, is over."""
        if isinstance(event, JobStarted):
            key = (event.store.store_id, event.store.region)
        else:
            key = (event.result.store_id, event.result.region)
        wait = self._journal.waits.get(key)
        if wait is not None:
            wait.waiting = False

    async def consume(self, importer: Importer) -> None:
        """Count the Importer's events until it closes.

        Args:
            importer: The open Importer.
        """
        async with importer.subscribe() as events:
            async for event in events:
                self.observe(event)

    async def refresh(self, importer: Importer) -> None:
        """Read the Importer's status view for the scrape-time metrics.

        Args:
            importer: The open Importer.
        """
        self._journal.snapshot = await importer.status()

    async def render(self, importer: Importer | None) -> bytes:
        """The metrics in Prometheus's text format, the status view read first (for 5 s at most).

        Args:
            importer: The open Importer (None: the scrape-time metrics as last read).

        Returns:
            The ``/metrics`` body.
        """
        if importer is not None:
            with anyio.move_on_after(5):
                await self.refresh(importer)
        return generate_latest(self.registry)

    def names(self) -> Iterator[str]:
        """The names of every metric family in the registry.

        Yields:
            Each family's name.
        """
        for family in self.registry.collect():
            yield family.name
