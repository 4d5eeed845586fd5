"""Closing mid-import, resuming, progress events and log hygiene, against the emulator."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport import (
    Importer,
    ImporterSettings,
    JobFinished,
    JobStarted,
    PollingPolicy,
    RowSettled,
    RowState,
    SQLiteJournal,
)
from async_refimport.emulator import EmulatorThread
from async_refimport.journal.base import JobState
from tests.helpers.integration import create_store, genomes, overlapping_jobs, requests_for

FAST = ImporterSettings(
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.3),
    busy_wait=0.05,
    lookup_margin=5.0,
    lease_ttl=1.0,
    consistency_grace=2.0,
)


@pytest.mark.slow
async def test_close_mid_job_then_resume_finishes_everything_once(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    emulator.configure(time_scale=0.01)  # jobs of ~0.3 s: long enough to close in the middle
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 60, "stop"))
    async with Importer(journal_path, settings=FAST, max_sources_per_job=20) as imp:
        async with imp.subscribe() as events:
            await imp.submit(requests)
            async for event in events:
                if isinstance(event, JobStarted):
                    break
    # Closed while a job ran at the service: the journal knows it, with its id.
    async with SQLiteJournal(journal_path) as journal:
        [running] = [j for j in await journal.jobs() if j.state is not JobState.DONE]
        assert running.state is JobState.RUNNING and running.job_id is not None
    async with Importer(journal_path, settings=FAST, max_sources_per_job=20) as imp:
        results = await imp.wait([r.row_id for r in await imp.results()])
    assert Counter(r.state for r in results) == {RowState.IMPORTED: 60}
    stats = emulator.stats()
    assert len(stats["jobs"]) == 3  # the interrupted job was adopted, not started again
    assert stats["name_conflicts"] == 0 and stats["rejected_concurrent_starts"] == 0
    assert overlapping_jobs(stats) == []


@pytest.mark.slow
async def test_progress_events_and_bounded_polling(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 200, "events"))
    seen: Counter[type] = Counter()
    async with Importer(journal_path, settings=FAST, max_sources_per_job=20) as imp:
        async with imp.subscribe() as events:
            ids = await imp.submit(requests)
            async for event in events:
                seen[type(event)] += 1
                if seen[RowSettled] == len(ids) and seen[JobFinished] == 10:
                    break
    assert seen[JobStarted] == seen[JobFinished] == 10
    stats = emulator.stats()
    gets = stats["calls"]["GetReferenceImportJob"]
    # Predicted polling: a handful of Get calls per job, not one per poll interval.
    assert gets / len(stats["jobs"]) <= 6, stats["calls"]


async def test_logs_name_the_job_and_never_the_credentials(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    journal_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 5, "logs"))
    # The library logs through the standard library: the host (here pytest) picks the level.
    caplog.set_level(logging.DEBUG, logger="async_refimport")
    async with Importer(journal_path, settings=FAST) as imp:
        await imp.wait(await imp.submit(requests))
    logs = [r.refimport_event for r in caplog.records if hasattr(r, "refimport_event")]
    finished = [e for e in logs if e["event"] == "import_job.finished"]
    assert finished and finished[0]["store_id"] == store_id
    assert finished[0]["job_id"] and finished[0]["client_token"]
    text = repr(logs)
    assert "emulator-secret-not-real" not in text and "AKIAEMULATORTESTKEY0" not in text


async def test_store_busy_with_someone_elses_job_waits_instead_of_failing(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    import boto3

    from tests.helpers.common import ROLE_ARN

    # The other job runs ~3 s: still running at our Start (at ~1.2 s it had ended before ours was
    # sent in a run beside four others on two cores, and no busy store was met).
    emulator.configure(time_scale=0.1)
    store_id = create_store(emulator, "us-east-1")
    [(name, uri)] = genomes(s3_fasta, 1, "theirs")
    kwargs = emulator.client_kwargs()
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    boto3.client("omics", **kwargs).start_reference_import_job(
        referenceStoreId=store_id, roleArn=ROLE_ARN, sources=[{"sourceFile": uri, "name": name}]
    )
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 5, "ours"))
    async with Importer(journal_path, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests))
    assert {r.state for r in results} == {RowState.IMPORTED}
    stats = emulator.stats()
    assert stats["rejected_concurrent_starts"] >= 1  # we did meet the busy store
    assert overlapping_jobs(stats) == []
