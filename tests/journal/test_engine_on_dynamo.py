"""The engine on a DynamoDB journal, against the emulator over real HTTP: the same promises as on
SQLite (every row once, a re-run sends nothing new), now shared by importers that share no disk."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import anyio
import pytest

from async_refimport import Importer, RowState
from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import create_store, genomes, requests_for
from tests.integration.test_engine import FAST, assert_exactly_once


@pytest.mark.slow
async def test_import_and_rerun_on_a_dynamodb_journal(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], dynamo_table: str
) -> None:
    requests = []
    for region in ("us-east-1", "eu-west-1"):
        store_id = create_store(emulator, region)
        requests += requests_for(emulator, store_id, region, genomes(s3_fasta, 30, f"d-{region}"))
    url = f"dynamodb://{dynamo_table}"
    async with Importer(journal=url, max_sources_per_job=12, settings=FAST) as imp:
        ids = await imp.submit(requests)
        results = await imp.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert_exactly_once(emulator, results, {r.name for r in requests})
    jobs = len(emulator.stats()["jobs"])
    assert jobs == 6  # 30 rows per store in packs of 12

    async with Importer(journal=url, settings=FAST) as again:
        assert await again.submit(requests) == ids
        rerun = await again.wait(ids)
    assert [r.state for r in rerun] == [RowState.IMPORTED] * len(requests)
    assert len(emulator.stats()["jobs"]) == jobs, "a re-run sent something new"


@pytest.mark.slow
async def test_two_importers_share_one_dynamodb_journal(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], dynamo_table: str
) -> None:
    """Two importers (as on two hosts: nothing shared but the table) split one workload."""
    requests = []
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        store_id = create_store(emulator, region)
        requests += requests_for(emulator, store_id, region, genomes(s3_fasta, 20, f"s-{region}"))
    url = f"dynamodb://{dynamo_table}"
    results: dict[str, list] = {}

    async def worker(name: str, share: list) -> None:
        # Short leases: each importer waits for the other's stores to be handed over.
        settings = dataclasses.replace(FAST, lease_ttl=3.0, rescan_interval=1.0)
        async with Importer(
            journal=url, max_sources_per_job=5, settings=settings, owner=name
        ) as imp:
            ids = await imp.submit(share)
            results[name] = await imp.wait(ids)
            await imp.drain()

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "host-a", requests[::2])
        tg.start_soon(worker, "host-b", requests[1::2])
    settled = results["host-a"] + results["host-b"]
    assert {r.state for r in settled} == {RowState.IMPORTED}
    assert_exactly_once(emulator, settled, {r.name for r in requests})
