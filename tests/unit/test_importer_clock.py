"""An injected clock and sleep: hours of emulated backoff and polling take no real time."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel

from async_refimport import (
    ImporterSettings,
    ImportRequest,
    MemoryGateway,
    RowState,
    StoreBusyError,
    TransientServiceError,
)
from async_refimport._importer import Importer
from tests.conftest import ROLE_ARN, STORE_ID


class VirtualClock:
    """Monotonic seconds that only move when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.now += seconds
        self.slept += seconds
        await anyio.lowlevel.checkpoint()  # still a checkpoint: other tasks run, cancellation lands


async def test_busy_store_and_slow_polls_cost_virtual_time_only(journal_path: Path) -> None:
    clock = VirtualClock()
    busy = StoreBusyError(
        "busy", code="ServiceQuotaExceededException", operation="Start", status=402
    )
    poll_failed = TransientServiceError("boom", code="InternalServerException", operation="Get")
    gateway = MemoryGateway(
        polls_to_finish=5, start_faults=[busy, busy], get_faults=[poll_failed] * 3
    )
    # The defaults of a real run: 10 minutes' wait on a busy store, polls minutes apart.
    settings = ImporterSettings(busy_wait=600.0)
    requests = [
        ImportRequest(
            STORE_ID, ROLE_ARN, f"s3://genomes/g{i}.fa", f"genome-{i}", region="us-east-1"
        )
        for i in range(3)
    ]
    async with Importer(
        journal_path, gateway=gateway, settings=settings, sleep=clock.sleep, clock=clock
    ) as imp:
        # Twenty real seconds at most for twenty emulated minutes of waiting.
        with anyio.fail_after(20):
            results = await imp.wait(await imp.submit(requests))
    assert [r.state for r in results] == [RowState.IMPORTED] * 3
    assert clock.slept >= 1200  # two busy waits of 10 minutes each, and the polls
    assert gateway.calls["get"] >= 5
