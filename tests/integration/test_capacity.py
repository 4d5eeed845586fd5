"""Capacity is never a verdict on the rows, and no decision rests on a message's words.

Against the emulator over HTTP: a full account-wide import quota (read-set imports count too)
refuses every Start with 402 while the store runs nothing, for longer than ``consistency_grace``;
a store busy with another client's job refuses in any code (402, 409, 400) and any wording; a job
cancelled from outside sends no event and is still noticed by the safety-net poll.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from async_refimport import (
    Importer,
    ImporterSettings,
    JobStarted,
    PollingPolicy,
    RetryPolicy,
    RowState,
    StorePaused,
)
from async_refimport.completion.events import EventsPolicy
from async_refimport.emulator import EmulatorThread, Unknowns
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import FullQuota, create_store, genomes, requests_for
from tests.helpers.logcapture import capture_logs
from tests.integration.test_unknowns import check_outcomes, long_genomes

QUOTA_SAID = "the account's concurrent import quota is full; read-set imports count too"
FAST = ImporterSettings(
    retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.3, max_elapsed=60),
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.3),
    busy_wait=0.05,
    lease_ttl=2.0,
    # Far shorter than the quota stays full: the refusal outlasts the grace, and must not count.
    consistency_grace=0.5,
    quota_wait_max=0.4,
)


async def test_a_full_account_quota_outlasting_the_grace_delays_the_rows_then_they_import(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 3, "quota"))
    paused: list[StorePaused] = []
    # Full for at least three times the grace, and at least two refusals: it outlasts the grace.
    with (
        FullQuota(emulator, release_after=2, held_for=3 * FAST.consistency_grace) as quota,
        capture_logs() as logs,
    ):
        async with Importer(journal_path, settings=FAST) as imp:
            async with imp.subscribe() as events:
                ids = await imp.submit(requests)

                async def watch() -> None:
                    async for event in events:
                        if isinstance(event, StorePaused):
                            paused.append(event)
                        if isinstance(event, JobStarted):
                            return

                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch)
                    results = await imp.wait(ids)
                    tg.cancel_scope.cancel()
        refused = quota.refused()
    assert {r.state for r in results} == {RowState.IMPORTED}, results
    assert refused >= 2  # refused for longer than the grace
    check_outcomes(emulator.stats(), results)
    # The wait is visible, and said once for the episode rather than at every refusal.
    said = [e for e in logs if e["event"] == "account.quota_full"]
    assert len(said) == 1 and QUOTA_SAID in said[0]["reason"]
    assert paused and QUOTA_SAID in paused[0].reason


async def test_a_busy_refusal_in_any_code_and_wording_waits_then_imports(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    words = "Only one reference import job may run at a time in a reference store"
    store_id = create_store(emulator, "us-east-1")
    for code in ("ServiceQuotaExceededException", "ConflictException", "ValidationException"):
        emulator.configure(
            time_scale=0.05, job_overhead=1.0, unknowns=Unknowns(busy_code=code, busy_message=words)
        )
        # Another client's job runs for about 1.5 s (real): three times the grace.
        [(their_name, their_uri)] = long_genomes(s3_fasta, 1, f"theirs-{code}", seconds=30.0)
        omics = _omics(emulator)
        omics.start_reference_import_job(
            referenceStoreId=store_id,
            roleArn=ROLE_ARN,
            sources=[{"sourceFile": their_uri, "name": their_name}],
        )
        ours = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 2, f"ours-{code}"))
        with capture_logs() as logs:
            async with Importer(journal_path, settings=FAST) as imp:
                results = await imp.wait(await imp.submit(ours))
        assert {r.state for r in results} == {RowState.IMPORTED}, (code, results)
        refusals = [e for e in logs if e["event"] in ("store.busy", "store.refusal_unconfirmed")]
        assert refusals and {e["code"] for e in refusals} == {code}


async def test_a_job_cancelled_from_outside_sends_no_event_and_the_safety_net_notices(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    journal_path: Path,
    events_queue: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator.configure(time_scale=0.05, job_overhead=1.0)
    assert emulator.events_endpoint_url is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", emulator.events_endpoint_url)
    queue = events_queue("us-east-1")
    safety = EventsPolicy(wait_time=1, safety_factor=1.5, safety_interval=1.0)
    settings = dataclasses.replace(FAST, events=safety)
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", long_genomes(s3_fasta, 3, "cx", 20.0))
    async with Importer(journal_path, settings=settings, events_queue_url=queue) as imp:
        async with imp.subscribe() as events:
            ids = await imp.submit(requests)
            async for event in events:
                if isinstance(event, JobStarted):
                    job_id = event.job_id
                    break
        assert await anyio.to_thread.run_sync(emulator.cancel_job, job_id, "from the console")
        cancelled_at = time.monotonic()
        results = await imp.wait(ids)
        noticed_after = time.monotonic() - cancelled_at
    assert emulator.stats()["events"]["withheld"] >= 1  # no event told us
    # The README's outcome for a job cancelled outside: its unfinished rows fail, saying so.
    unfinished = [r for r in results if r.state is RowState.FAILED]
    assert unfinished and all("cancelled outside async_refimport" in (r.message or "")
                              for r in unfinished)  # fmt: skip
    # Within the safety net's bound: its first poll at safety_factor x the predicted duration
    # (a few seconds here), then every safety_interval; a generous margin for a loaded machine.
    assert noticed_after < 30.0


@pytest.mark.slow
def test_the_cli_waits_out_a_full_quota_and_says_why(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    manifest = tmp_path / "refs.csv"
    items = genomes(s3_fasta, 2, "cli-quota")
    manifest.write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in items))
    command = [
        sys.executable,
        "-m",
        "async_refimport",
        "import",
        str(manifest),
        "--store-id",
        store_id,
        "--role-arn",
        ROLE_ARN,
        "--region",
        "us-east-1",
        "--endpoint-url",
        emulator.omics_endpoint_url,
        "--journal",
        str(tmp_path / "j.sqlite"),
    ]
    with FullQuota(emulator, release_after=1):
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "COLUMNS": "120"},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert QUOTA_SAID in proc.stderr, proc.stderr[-3000:]
    names = {r["name"] for r in emulator.stats()["references"][store_id]}
    assert names == {n for n, _ in items}


def _omics(emulator: EmulatorThread) -> object:
    from tests.integration.test_unknowns import omics_client

    return omics_client(emulator)
