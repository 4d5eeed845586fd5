"""Progress events: what the engine tells its users (the CLI's progress display, a worker's metrics,
an embedding service) while it works. The library renders nothing itself."""

from __future__ import annotations

from dataclasses import dataclass

from async_refimport._models import RowResult, StoreRef


@dataclass(frozen=True, slots=True)
class RowsQueued:
    """Rows were journaled for a store and wait for a job."""

    store: StoreRef
    count: int


@dataclass(frozen=True, slots=True)
class StoreChecked:
    """The store's existing references were listed; ``already_present`` queued rows need no import."""

    store: StoreRef
    already_present: int


@dataclass(frozen=True, slots=True)
class JobStarted:
    """An import job is running (``recovered`` when adopted from an earlier run)."""

    store: StoreRef
    job_id: str
    client_token: str
    rows: int
    at: float
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class JobFinished:
    """An import job ended and its rows were settled."""

    store: StoreRef
    job_id: str | None
    status: str
    imported: int
    already_present: int
    failed: int
    requeued: int
    duration: float
    at: float


@dataclass(frozen=True, slots=True)
class RowSettled:
    """One row reached a final state."""

    result: RowResult


@dataclass(frozen=True, slots=True)
class RequestRetried:
    """An API call failed transiently and will be retried after ``delay`` seconds."""

    operation: str
    store: StoreRef
    attempt: int
    code: str
    delay: float


@dataclass(frozen=True, slots=True)
class StorePaused:
    """The store's lane waits out an error that needs no row to fail (expired credentials, a
    revoked permission while a job runs); it tries again by itself."""

    store: StoreRef
    reason: str


Event = (
    RowsQueued | StoreChecked | JobStarted | JobFinished | RowSettled | RequestRetried | StorePaused
)
