"""What an Importer shows of itself: its state, status views, dry-run plans and API counts.

The views are frozen dataclasses built from the journal and the Importer's lanes by the pure
functions below (:func:`store_statuses`, :func:`api_stats`, :func:`store_plan`): the
:class:`~async_refimport.Importer` only gathers their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from async_refimport._errors import SetupError
from async_refimport._models import ImportRequest, RowState, StoreRef
from async_refimport._pacing import RateLimiter
from async_refimport.gateway.aws import ExistingReference

_LIVE = (None, "ACTIVE")


class ImporterState(StrEnum):
    """Where an Importer is in its life: entered once, closed once."""

    NEW = "new"
    """Created, not entered yet."""
    OPEN = "open"
    """Entered: it takes requests (unless stopping)."""
    CLOSED = "closed"
    """Left (or failed to enter): it cannot be entered again."""


@dataclass(frozen=True, slots=True)
class StorePlan:
    """What a dry run found for one store."""

    store: StoreRef
    rows: int
    already_present: dict[str, str]
    jobs: int
    #: Rows whose source the pre-flight found missing or too large: name → reason.
    missing: dict[str, str] = field(default_factory=dict)
    #: Why the store cannot be used as set up (then nothing else was looked at), if it cannot.
    setup_error: SetupError | None = None


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """One store as an Importer sees it now.

    Attributes:
        store: The store.
        rows: Rows of the store in the journal, by state (every process sharing it).
        driven: This Importer runs a lane for the store.
        active_job: The import job this Importer's lane runs for the store, if any.
        idle: The lane found nothing to do (None when the store is not driven here).
        lease_holder: The process whose unexpired lease drives the store (any process sharing
            the journal), if any.
        held_here: This Importer holds that lease.
        setup_error: Why the store cannot be used as set up (its rows wait), if it cannot.
    """

    store: StoreRef
    rows: Mapping[RowState, int]
    driven: bool = False
    active_job: str | None = None
    idle: bool | None = None
    lease_holder: str | None = None
    held_here: bool = False
    setup_error: SetupError | None = None

    @property
    def queue_depth(self) -> int:
        """Rows waiting for a job."""
        return self.rows.get(RowState.QUEUED, 0)


@dataclass(frozen=True, slots=True)
class ApiStats:
    """Calls of one operation in one Region since the Importer opened (all credentials)."""

    operation: str
    region: str
    calls: int
    throttles: int
    rate: float


@dataclass(frozen=True, slots=True)
class ImporterStatus:
    """A read-only view of an open Importer: what a dashboard or a metrics scrape shows."""

    stores: tuple[StoreStatus, ...]
    api: tuple[ApiStats, ...]
    stopping: bool


def store_statuses(
    counts: Mapping[StoreRef, Mapping[RowState, int]],
    lanes: Mapping[str, tuple[StoreRef, str | None, bool]],
    setup_failures: Mapping[str, SetupError],
) -> list[StoreStatus]:
    """Every store the journal has rows of, then every store driven here without any.

    Args:
        counts: Rows per store and state (the journal's ``counts``).
        lanes: The stores driven here, by store key: the store, its active job, whether idle.
        setup_failures: The set-up errors of stores that cannot be used, by store key.

    Returns:
        The stores' statuses, ordered by store key (the lease fields not filled in).
    """
    stores = []
    for store, states in sorted(counts.items(), key=lambda kv: kv[0].key):
        lane = lanes.get(store.key)
        stores.append(
            StoreStatus(
                store,
                dict(states),
                driven=lane is not None,
                active_job=lane[1] if lane is not None else None,
                idle=lane[2] if lane is not None else None,
                setup_error=setup_failures.get(store.key),
            )
        )
    known = {s.store.key for s in stores}
    stores += [
        StoreStatus(store, {}, driven=True, active_job=job, idle=idle)
        for key, (store, job, idle) in sorted(lanes.items())
        if key not in known
    ]
    return stores


def api_stats(limiters: Mapping[tuple[str, str, str], RateLimiter]) -> tuple[ApiStats, ...]:
    """Calls per operation and Region, summed over credentials.

    Args:
        limiters: The pacer's limiters, by (credentials, Region, operation).

    Returns:
        One :class:`ApiStats` per (operation, Region), in that order; ``rate`` is the highest.
    """
    api: dict[tuple[str, str], list[float]] = {}
    for (_credentials, region, operation), limiter in limiters.items():
        acc = api.setdefault((operation, region), [0, 0, 0.0])
        acc[0] += limiter.calls
        acc[1] += limiter.throttles
        acc[2] = max(acc[2], limiter.rate)
    return tuple(
        ApiStats(operation, region, int(n), int(t), r)
        for (operation, region), (n, t, r) in sorted(api.items())
    )


def present_names(
    refs: Iterable[ExistingReference], requests: Iterable[ImportRequest]
) -> dict[str, str]:
    """The requests' names the store holds live: name → reference id.

    Args:
        refs: The store's references (one listing).
        requests: The store's requests.

    Returns:
        The names found, with their reference ids.
    """
    names = {r.name: r.reference_id for r in refs if r.status in _LIVE}
    return {r.name: names[r.name] for r in requests if r.name in names}


def store_plan(
    store: StoreRef,
    requests: int,
    present: dict[str, str],
    missing: dict[str, str],
    max_sources_per_job: int,
) -> StorePlan:
    """A usable store's dry-run plan: the jobs the rows neither present nor missing need.

    Args:
        store: The store.
        requests: How many rows it has.
        present: Names already in the store → reference id.
        missing: Names whose source is missing or too large → reason.
        max_sources_per_job: Sources packed into one job.

    Returns:
        The plan.
    """
    remaining = requests - len(present) - len(missing)
    jobs = math.ceil(remaining / max_sources_per_job)
    return StorePlan(store, requests, present, jobs, missing)
