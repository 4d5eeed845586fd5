"""Shared, non-blocking pacing of API calls.

HealthOmics allows a few transactions per second per operation, account and Region. Every call goes
through the :class:`RateLimiter` of its (credentials, Region, operation), shared by every lane: calls
reserve the next free slot and sleep asynchronously until it comes (no thread blocks, and callers are
served first come, first served). Like botocore's adaptive mode, the rate is cut multiplicatively when
the service throttles and grows back additively while calls succeed (AIMD); unlike it, one limiter
serves many concurrent tasks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio


@dataclass(frozen=True, slots=True)
class PacingPolicy:
    """How fast to call each operation.

    Attributes:
        rate: Calls per second to start with and to grow back to (AWS's default quota is 5).
        min_rate: The floor the rate never shrinks below.
        decrease: Factor applied to the rate on each throttle.
        increase: Calls per second regained per successful call.
        burst: Calls that may go out back to back after an idle period.
    """

    rate: float = 5.0
    min_rate: float = 0.2
    decrease: float = 0.5
    increase: float = 0.05
    burst: int = 1


class RateLimiter:
    """An AIMD rate limiter for one (credentials, Region, operation).

    Args:
        policy: Rates and how they adapt.
        clock: Monotonic seconds; injectable so tests need not sleep.
        sleep: Async sleep; injectable likewise.
    """

    def __init__(
        self,
        policy: PacingPolicy = PacingPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.policy = policy
        self.rate = policy.rate
        self._clock = clock
        self._sleep = sleep
        self._next_free = clock() - policy.burst / policy.rate
        self.throttles = 0
        self.calls = 0

    def reserve(self) -> float:
        """Reserve the next slot; returns how long to wait for it."""
        now = self._clock()
        interval = 1.0 / self.rate
        # Idle credit is capped at `burst` slots, so a quiet period cannot release a flood.
        slot = max(self._next_free, now - (self.policy.burst - 1) * interval)
        self._next_free = slot + interval
        self.calls += 1
        return max(0.0, slot - now)

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)

    def on_throttle(self) -> None:
        """The service said 429: halve the rate and push the next slot back."""
        self.throttles += 1
        self.rate = max(self.policy.min_rate, self.rate * self.policy.decrease)
        self._next_free = max(self._next_free, self._clock() + 1.0 / self.rate)

    def on_success(self) -> None:
        self.rate = min(self.policy.rate, self.rate + self.policy.increase)


class Pacer:
    """The registry of rate limiters, one per (credentials, Region, operation)."""

    def __init__(
        self,
        policy: PacingPolicy = PacingPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[tuple[str, str, str], RateLimiter] = {}

    def limiter(self, credentials: str, region: str, operation: str) -> RateLimiter:
        key = (credentials, region, operation)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = RateLimiter(self.policy, clock=self._clock, sleep=self._sleep)
            self._limiters[key] = limiter
        return limiter

    def limiters(self) -> dict[tuple[str, str, str], RateLimiter]:
        return dict(self._limiters)
