"""The gateway seam's interface and ``async_refimport.testing``: what a user's tests build on."""

from __future__ import annotations

import inspect
from pathlib import Path

import anyio

import async_refimport.testing
from async_refimport import ImportRequest, RowState, TransientServiceError
from async_refimport.gateway import base
from async_refimport.testing import MemoryGateway, VirtualClock, memory_importer
from tests.helpers.common import ROLE_ARN, STORE_ID


def requests(n: int) -> list[ImportRequest]:
    return [
        ImportRequest(STORE_ID, ROLE_ARN, f"s3://genomes/g{i}.fa", f"genome-{i}") for i in range(n)
    ]


def test_every_method_of_the_seam_states_its_guarantee() -> None:
    for name, method in inspect.getmembers(base.OmicsGateway, inspect.isfunction):
        if name.startswith("_"):
            continue
        doc = inspect.getdoc(method) or ""
        assert "Raises:" in doc and "Returns:" in doc, name
        assert any(word in doc for word in ("paced", "Paced")), name
        assert "retried" in doc, name


def test_everything_testing_exports_is_documented() -> None:
    for name in async_refimport.testing.__all__:
        value = getattr(async_refimport.testing, name)
        assert inspect.getdoc(value), name


async def test_memory_importer_runs_an_importer_in_virtual_time() -> None:
    throttled = TransientServiceError(
        "slow down", code="ThrottlingException", operation="Start", ambiguous=False
    )
    gateway = MemoryGateway(
        polls_to_finish=3, start_faults=[throttled] * 2, fail_names={"genome-1"}
    )
    with anyio.fail_after(20):
        async with memory_importer(gateway=gateway) as run:
            results = await run.importer.wait(await run.importer.submit(requests(3)))
    assert [r.state for r in results] == [RowState.IMPORTED, RowState.FAILED, RowState.IMPORTED]
    assert run.gateway is gateway and gateway.max_active == 1
    assert run.clock is not None and run.clock.slept > 0  # backoff and polls, in no real time
    assert not run.journal_path.exists()  # the temporary journal is gone


async def test_a_given_directory_keeps_the_journal_for_a_second_importer(tmp_path: Path) -> None:
    async with memory_importer(tmp_path) as first:
        ids = await first.importer.submit(requests(2))
        await first.importer.wait(ids)
    async with memory_importer(tmp_path, gateway=first.gateway, virtual_time=False) as second:
        assert second.clock is None
        results = await second.importer.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert first.gateway.calls["start"] == 1  # the second one started nothing


async def test_the_virtual_clock_moves_only_when_slept() -> None:
    clock = VirtualClock(100.0)
    assert clock() == 100.0
    await clock.sleep(30)
    await clock.sleep(-5)
    assert clock() == 130.0 and clock.slept == 30.0
