"""Warm start against the emulator: a second run on the same journal predicts its first job from
the jobs the journal saw end, instead of polling it cold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from async_refimport import (
    Importer,
    ImporterSettings,
    ImportRequest,
    JobFinished,
    PollingPolicy,
    RowState,
)
from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import create_store, genomes, requests_for
from tests.helpers.logcapture import capture_logs

SETTINGS = ImporterSettings(
    # Polls at least 50 ms apart: the emulator's thread shares the test's interpreter, and with
    # four test workers on two cores it notices a job's end some tens of ms late.
    polling=PollingPolicy(first_poll=0.01, min_interval=0.05, max_interval=0.5),
    busy_wait=0.05,
    consistency_grace=3.0,
    max_sources_per_job=10,
)


async def gets_for_first_job(
    emulator: EmulatorThread, journal: Path, requests: list[ImportRequest]
) -> int:
    """Import; return how many Gets the run had sent when its first job was settled."""
    before = emulator.stats()["calls"]["GetReferenceImportJob"]
    first = None
    async with Importer(journal, settings=SETTINGS) as imp:
        async with imp.subscribe() as events:
            ids = await imp.submit(requests)
            async for event in events:
                if isinstance(event, JobFinished):
                    stats = await anyio.to_thread.run_sync(emulator.stats)
                    first = stats["calls"]["GetReferenceImportJob"] - before
                    break
        results = await imp.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert first is not None
    return first


async def test_a_second_run_on_the_same_journal_starts_warm(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    emulator.configure(time_scale=0.05, job_overhead=24.0)  # jobs of 1.2 s
    store_id = create_store(emulator, "us-east-1")
    first_run = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 30, "w1"))
    second_run = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 30, "w2"))
    cold = await gets_for_first_job(emulator, journal_path, first_run)
    with capture_logs() as logs:
        warm = await gets_for_first_job(emulator, journal_path, second_run)
    [learnt] = [e for e in logs if e["event"] == "polling.warm_start"]
    assert learnt["jobs"] == 3
    # Cold, the first job is found by polls spaced at a growing share of its age; warm, the
    # first poll lands on the predicted end.
    assert warm <= 2 < cold, (warm, cold)
