"""An injected clock and sleep: hours of emulated backoff and polling take no real time."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel

from async_refimport import (
    ImportRequest,
    RowState,
    TransientServiceError,
)
from async_refimport.engine.importer import Importer
from async_refimport.testing import MemoryGateway
from tests.helpers.common import ROLE_ARN, STORE_ID


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


async def test_backoff_and_slow_polls_cost_virtual_time_only(journal_path: Path) -> None:
    clock = VirtualClock()
    throttled = TransientServiceError(
        "slow down", code="ThrottlingException", operation="Start", ambiguous=False
    )
    poll_failed = TransientServiceError("boom", code="InternalServerException", operation="Get")
    gateway = MemoryGateway(
        polls_to_finish=5, start_faults=[throttled] * 3, get_faults=[poll_failed] * 3
    )
    requests = [
        ImportRequest(
            STORE_ID, ROLE_ARN, f"s3://genomes/g{i}.fa", f"genome-{i}", region="us-east-1"
        )
        for i in range(3)
    ]
    # The default settings of a real run: backoff of seconds, polls seconds apart.
    async with Importer(journal_path, gateway=gateway, sleep=clock.sleep, clock=clock) as imp:
        # Twenty real seconds at most for minutes of emulated waiting.
        with anyio.fail_after(20):
            results = await imp.wait(await imp.submit(requests))
    assert [r.state for r in results] == [RowState.IMPORTED] * 3
    assert clock.slept >= 60  # over a minute of waiting, in no real time
    assert gateway.calls["start"] == 4 and gateway.calls["get"] >= 8
