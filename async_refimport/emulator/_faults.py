"""Fault injection: throttling by token bucket, timeouts, 500s, dropped connections, latency.

Every random draw comes from one ``random.Random(seed)``, so a run with the same seed and the
same sequence of requests injects the same faults.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._checks import check_number
from ._model import OPERATIONS

__all__ = ["FAULT_KINDS", "Faults"]

#: Fault kinds as counted in ``stats()["faults"]``.
FAULT_KINDS: tuple[str, ...] = ("drop", "drop_after", "internal_error", "latency", "timeout")


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often.

    Attributes:
        tps: sustained calls per second allowed per (account, Region, operation), like the
            service's default 5 TPS; ``None`` or ``0`` disables throttling (429 ThrottlingException).
        burst: token-bucket capacity; defaults to ``max(1, tps)``.
        tps_per_operation: per-operation overrides of ``tps`` (``None``/``0`` there disables it).
        p_timeout: probability of 408 RequestTimeoutException *after* the operation ran (for
            StartReferenceImportJob the job exists: the ambiguous case).
        p_500: probability of 500 InternalServerException before anything is done.
        p_drop: probability of closing the connection without a response, before anything is done.
        p_drop_after: probability of closing the connection without a response after the
            operation ran (ambiguous, like ``p_timeout``).
        latency: added delay in seconds per call: a number, or a ``(low, high)`` uniform range.
        p_event_drop: probability that a job status event is never delivered to EventBridge.
        p_event_duplicate: probability that a job status event is delivered twice.
        event_delay: seconds (real) before an event is delivered: a number, or a ``(low, high)``
            uniform range (events then arrive out of order).
        operations: operations the random faults and latency apply to; ``None`` means all.
        seed: seed of the fault generator.
        import_quota: the account's concurrent import jobs ("Storage - Maximum concurrent
            sequence or reference store import jobs" in Service Quotas), per account and Region:
            a StartReferenceImportJob that would exceed it is refused with 402
            ServiceQuotaExceededException although its store runs no job. The account's running
            reference imports (all its stores) and ``other_imports`` count together. ``None``:
            no such limit (the default).
        other_imports: import slots held, in every account and Region, by imports the emulator
            does not run (read-set imports into sequence stores, another team's jobs). They count
            only against an ``import_quota``; 0 releases them.
        other_imports_for: real seconds the ``other_imports`` hold their slots, counted from when
            they were set (or the emulator reset); then they end. ``None``: until changed.
    """

    tps: float | None = 5.0
    burst: float | None = None
    tps_per_operation: Mapping[str, float | None] = field(default_factory=dict)
    p_timeout: float = 0.0
    p_500: float = 0.0
    p_drop: float = 0.0
    p_drop_after: float = 0.0
    latency: float | tuple[float, float] = 0.0
    p_event_drop: float = 0.0
    p_event_duplicate: float = 0.0
    event_delay: float | tuple[float, float] = 0.0
    operations: frozenset[str] | None = None
    seed: int = 0
    import_quota: int | None = None
    other_imports: int = 0
    other_imports_for: float | None = None

    def __post_init__(self) -> None:
        # Checked here, so that a bad value is refused where it is given (a ValueError, or a 400
        # from /_emulator/config) instead of breaking every later call.
        for name in (
            "p_timeout",
            "p_500",
            "p_drop",
            "p_drop_after",
            "p_event_drop",
            "p_event_duplicate",
        ):
            check_number(name, getattr(self, name), low=0.0, high=1.0)
        if self.tps is not None:
            check_number("tps", self.tps, low=0.0)
        if self.burst is not None:
            check_number("burst", self.burst, above=0.0)
        if not isinstance(self.tps_per_operation, Mapping):
            raise ValueError("tps_per_operation must map operation names to TPS values")
        for op, tps in self.tps_per_operation.items():
            _check_operation(op)
            if tps is not None:
                check_number(f"tps_per_operation[{op}]", tps, low=0.0)
        if self.operations is not None:
            if isinstance(self.operations, str) or not isinstance(self.operations, Iterable):
                raise ValueError("operations must be a list of operation names")
            ops = frozenset(self.operations)
            for op in ops:
                _check_operation(op)
            object.__setattr__(self, "operations", ops)
        for name in ("latency", "event_delay"):
            span = getattr(self, name)
            if isinstance(span, list | tuple):
                if len(span) != 2:
                    raise ValueError(f"{name} must be seconds or [low, high], got {span!r}")
                low = check_number(f"{name} low", span[0], low=0.0)
                check_number(f"{name} high", span[1], low=low)
                object.__setattr__(self, name, (span[0], span[1]))
            else:
                check_number(name, span, low=0.0)
        check_number("seed", self.seed, integer=True)
        if self.import_quota is not None:
            check_number("import_quota", self.import_quota, low=0, integer=True)
        check_number("other_imports", self.other_imports, low=0, integer=True)
        if self.other_imports_for is not None:
            check_number("other_imports_for", self.other_imports_for, low=0.0)
        if self.other_imports and self.import_quota is None:
            # Without a quota they would hold nothing: say so rather than silently do nothing.
            raise ValueError(
                "other_imports needs an import_quota (the account's slots they occupy), "
                f"got other_imports={self.other_imports!r} and import_quota=None"
            )

    @classmethod
    def none(cls) -> Faults:
        """No faults and no throttling."""
        return cls(tps=None)

    def replace(self, **changes: Any) -> Faults:
        """Return a copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Return the settings as JSON-compatible values (as ``/_emulator/config`` accepts them)."""
        data = dataclasses.asdict(self)
        data["tps_per_operation"] = dict(self.tps_per_operation)
        data["operations"] = sorted(self.operations) if self.operations is not None else None
        for name in ("latency", "event_delay"):
            span = getattr(self, name)
            data[name] = list(span) if isinstance(span, tuple) else span
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: Faults | None = None) -> Faults:
        """Build from JSON values; keys left out keep ``base``'s (or the default) values."""
        if not isinstance(data, Mapping):
            raise ValueError("faults must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return dataclasses.replace(base or cls(), **data)


def _check_operation(name: object) -> None:
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r}; the emulator serves {list(OPERATIONS)}")


class TokenBucket:
    """Classic token bucket refilled at ``rate`` per second up to ``capacity``."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def take(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FaultInjector:
    """Draws the faults for each call from :class:`Faults` and a seeded generator."""

    def __init__(self, faults: Faults, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        #: When the ``other_imports`` end (this injector's clock); None: they do not.
        self._others_until: float | None = None
        self.faults = faults
        self.configure(faults, restart=True)

    def configure(self, faults: Faults, *, restart: bool = False) -> None:
        """Switch to new settings: reseeds the generator and refills every bucket.

        The ``other_imports`` period starts anew when ``restart`` is set or when
        ``other_imports`` / ``other_imports_for`` change; changing other faults keeps it.
        """
        held = (self.faults.other_imports, self.faults.other_imports_for)
        if restart or held != (faults.other_imports, faults.other_imports_for):
            span = faults.other_imports_for
            self._others_until = None if span is None else self._clock() + span
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self._buckets.clear()

    def restart_other_imports(self) -> None:
        """Start the ``other_imports`` period anew (on reset)."""
        self.configure(self.faults, restart=True)

    def other_imports(self) -> int:
        """Import slots the other imports hold now (0 once their period has passed)."""
        held = self.faults.other_imports
        if held and self._others_until is not None and self._clock() >= self._others_until:
            return 0
        return held

    def other_imports_left(self) -> float | None:
        """Real seconds until the other imports end; None when they hold no slot or never end."""
        if not self.other_imports() or self._others_until is None:
            return None
        return max(0.0, self._others_until - self._clock())

    def admit(self, account: str, region: str, operation: str) -> bool:
        """Return False when the call must be throttled."""
        f = self.faults
        tps = (
            f.tps_per_operation.get(operation, f.tps) if operation in f.tps_per_operation else f.tps
        )
        if not tps:
            return True
        key = (account, region, operation)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != tps:
            capacity = f.burst if f.burst else max(1.0, float(tps))
            bucket = self._buckets[key] = TokenBucket(float(tps), capacity, self._clock)
        return bucket.take()

    def targets(self, operation: str) -> bool:
        """Whether the random faults apply to ``operation``."""
        ops = self.faults.operations
        return ops is None or operation in ops

    def roll(self, p: float) -> bool:
        """Draw with probability ``p`` (no draw at all when ``p`` is 0, to keep sequences stable)."""
        return p > 0.0 and self.rng.random() < p

    def latency(self) -> float:
        """Seconds to delay this call."""
        lat = self.faults.latency
        if isinstance(lat, tuple):
            low, high = lat
            return self.rng.uniform(low, high) if high > 0 else 0.0
        return float(lat)
