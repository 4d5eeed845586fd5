from __future__ import annotations

from async_refimport import PacingPolicy
from async_refimport._pacing import Pacer, RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_calls_are_spaced_at_the_rate() -> None:
    t = FakeTime()
    limiter = RateLimiter(PacingPolicy(rate=5.0), clock=t.clock, sleep=t.sleep)
    start = t.now
    for _ in range(11):
        await limiter.acquire()
    # 11 calls at 5 per second: the first goes at once, the last 2 seconds later.
    assert abs((t.now - start) - 2.0) < 1e-9


async def test_concurrent_reservations_get_distinct_slots() -> None:
    t = FakeTime()
    limiter = RateLimiter(PacingPolicy(rate=10.0), clock=t.clock, sleep=t.sleep)
    delays = sorted(limiter.reserve() for _ in range(5))
    assert delays == [0.0, 0.1, 0.2, 0.30000000000000004, 0.4] or all(
        abs(a - b) < 1e-9 for a, b in zip(delays, [0.0, 0.1, 0.2, 0.3, 0.4], strict=True)
    )


async def test_throttle_halves_rate_and_success_regrows_it() -> None:
    t = FakeTime()
    policy = PacingPolicy(rate=4.0, min_rate=0.5, increase=0.5)
    limiter = RateLimiter(policy, clock=t.clock, sleep=t.sleep)
    limiter.on_throttle()
    assert limiter.rate == 2.0
    limiter.on_throttle()
    limiter.on_throttle()
    limiter.on_throttle()
    assert limiter.rate == 0.5  # never below the floor
    for _ in range(10):
        limiter.on_success()
    assert limiter.rate == 4.0  # never above the configured rate


async def test_idle_time_does_not_bank_a_burst() -> None:
    t = FakeTime()
    limiter = RateLimiter(PacingPolicy(rate=5.0, burst=1), clock=t.clock, sleep=t.sleep)
    t.now += 60.0
    delays = [limiter.reserve() for _ in range(3)]
    assert delays[0] == 0.0 and abs(delays[2] - 0.4) < 1e-9


def test_one_limiter_per_credentials_region_operation() -> None:
    pacer = Pacer()
    a = pacer.limiter("default@aws", "us-east-1", "GetReferenceImportJob")
    assert pacer.limiter("default@aws", "us-east-1", "GetReferenceImportJob") is a
    assert pacer.limiter("default@aws", "eu-west-1", "GetReferenceImportJob") is not a
    assert pacer.limiter("default@aws", "us-east-1", "StartReferenceImportJob") is not a
