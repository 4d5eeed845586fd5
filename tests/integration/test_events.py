"""Completion by events, against the emulator: HealthOmics job status events go through moto's
EventBridge to an SQS queue (a rule, as a user sets it up on AWS), and the importer listens."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import anyio
import boto3
import pytest

from async_refimport import Importer, ImporterSettings, PollingPolicy, RowState
from async_refimport.completion.events import EventsPolicy
from async_refimport.emulator import EmulatorThread, Faults
from tests.helpers.integration import create_store, genomes, overlapping_jobs, requests_for
from tests.helpers.logcapture import capture_logs
from tests.integration.test_unknowns import OtherClient, check_outcomes

PACK = 10
# Safety-net polls far beyond the jobs' length (~0.1 s): only an event can end a wait early.
EVENTS_ONLY = ImporterSettings(
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.3),
    events=EventsPolicy(wait_time=1, safety_factor=50.0, safety_interval=30.0),
    busy_wait=0.05,
    consistency_grace=3.0,
)


@pytest.fixture
def queue(
    emulator: EmulatorThread, events_queue: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> str:
    emulator.configure(time_scale=0.05, job_overhead=2.0)  # jobs of 0.1 s
    # SQS is where the emulator's EventBridge is (moto serves both): found, as on AWS, through
    # the standard endpoint variable.
    assert emulator.events_endpoint_url is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", emulator.events_endpoint_url)
    return events_queue("us-east-1")


def queue_depth(emulator: EmulatorThread, url: str) -> int:
    sqs = boto3.client("sqs", **emulator.client_kwargs("sqs"))
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


async def test_events_end_each_wait_with_no_polling(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path, queue: str
) -> None:
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 40, "ev"))
    with capture_logs() as logs:
        async with Importer(
            journal_path, settings=EVENTS_ONLY, max_sources_per_job=PACK, events_queue_url=queue
        ) as imp:
            results = await imp.wait(await imp.submit(requests))
    assert {r.state for r in results} == {RowState.IMPORTED}
    stats = emulator.stats()
    jobs = len(stats["jobs"])
    assert jobs == 4
    # One Get per job, to confirm the end and read the sources: no poll was needed.
    assert stats["calls"]["GetReferenceImportJob"] == jobs
    assert not [e for e in logs if e["event"] == "import_job.event_missed"]
    check_outcomes(stats, results)


async def test_lost_events_are_caught_by_the_safety_net(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path, queue: str
) -> None:
    emulator.configure(faults=Faults(tps=None, p_event_drop=1.0))
    settings = dataclasses.replace(
        EVENTS_ONLY, events=EventsPolicy(wait_time=1, safety_factor=1.5, safety_interval=0.3)
    )
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 20, "lost"))
    with capture_logs() as logs:
        async with Importer(
            journal_path, settings=settings, max_sources_per_job=PACK, events_queue_url=queue
        ) as imp:
            results = await imp.wait(await imp.submit(requests))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert emulator.stats()["events"]["dropped"] > 0
    assert len([e for e in logs if e["event"] == "import_job.event_missed"]) == 2


async def test_duplicate_and_out_of_order_events_change_nothing(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path, queue: str
) -> None:
    # Every event twice, each up to 0.3 s late: COMPLETED may come before IN_PROGRESS.
    emulator.configure(faults=Faults(tps=None, p_event_duplicate=1.0, event_delay=(0.0, 0.3)))
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 30, "dup"))
    async with Importer(
        journal_path, settings=EVENTS_ONLY, max_sources_per_job=PACK, events_queue_url=queue
    ) as imp:
        results = await imp.wait(await imp.submit(requests))
        stats = emulator.stats()
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(stats["jobs"]) == 3 and stats["events"]["duplicated"] > 0
    assert overlapping_jobs(stats) == []
    check_outcomes(stats, results)


async def test_events_of_jobs_we_do_not_own_are_cleared_from_the_queue(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path, queue: str
) -> None:
    store_id = create_store(emulator, "us-east-1")
    # Another tool imports into the same store before and while we run.
    other = OtherClient(emulator, store_id, [genomes(s3_fasta, 3, "tool")])
    other.start_job()
    other.start()
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 20, "own"))
    async with Importer(
        journal_path, settings=EVENTS_ONLY, max_sources_per_job=PACK, events_queue_url=queue
    ) as imp:
        results = await imp.wait(await imp.submit(requests))
        other.join(30)
        # The last events arrive and are handled: every one of them is cleared from the queue.
        for _ in range(200):
            if not queue_depth(emulator, queue):
                break
            await anyio.sleep(0.05)
        assert queue_depth(emulator, queue) == 0
    assert {r.state for r in results} == {RowState.IMPORTED}
    stats = emulator.stats()
    assert stats["events"]["published"] == 3 * len(stats["jobs"])
    check_outcomes(stats, results)


def test_the_cli_listens_with_events_queue_url(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path, queue: str
) -> None:
    from tests.helpers.cli import run_cli
    from tests.helpers.common import ROLE_ARN

    # Jobs of 2 s: the second job's safety-net poll (at 1.5x its predicted length) comes 1 s after
    # its end, far later than its event even with four test workers loading two cores.
    emulator.configure(job_overhead=40.0)
    store_id = create_store(emulator, "us-east-1")
    rows = genomes(s3_fasta, 20, "cliev")
    manifest = tmp_path / "refs.csv"
    manifest.write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in rows))
    run = run_cli(
        "import", manifest, "--store-id", store_id, "--role-arn", ROLE_ARN,
        "--region", "us-east-1", "--endpoint-url", emulator.omics_endpoint_url,
        "--journal", tmp_path / "j.sqlite", "--max-sources-per-job", "10",
        "--events-queue-url", queue, "--json",
        env={"AWS_ENDPOINT_URL_SQS": emulator.events_endpoint_url or ""},
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["summary"]["imported"] == 20
    # Woken by the events: one confirming Get per job (the CLI's default safety net is 60 s).
    stats = emulator.stats()
    assert stats["calls"]["GetReferenceImportJob"] == len(stats["jobs"]) == 2


def test_events_init_sets_up_the_queue_the_cli_then_listens_to(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    from tests.helpers.cli import run_cli
    from tests.helpers.common import ROLE_ARN

    emulator.configure(time_scale=0.05, job_overhead=40.0)  # jobs of 2 s (see the test above)
    moto = emulator.events_endpoint_url or ""
    env = {"AWS_ENDPOINT_URL_SQS": moto, "AWS_ENDPOINT_URL_EVENTBRIDGE": moto}
    name = f"refimport-init-{tmp_path.name[-12:]}"
    first = run_cli("events", "init", "--queue-name", name, "--region", "us-east-1", env=env)
    assert first.code == 0, first.stderr
    url = first.stdout.strip()
    assert "Created queue" in first.stderr and url in first.stderr
    again = run_cli("events", "init", "--queue-name", name, "--region", "us-east-1", env=env)
    assert again.code == 0 and again.stdout.strip() == url and "Found queue" in again.stderr

    # What the README shows: the rule's pattern, a policy letting only that rule send, the target.
    events = boto3.client("events", **emulator.client_kwargs("events"))
    sqs = boto3.client("sqs", **emulator.client_kwargs("sqs"))
    rule = events.describe_rule(Name=name)
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.omics"],
        "detail-type": ["Reference Import Job Status Change"],
    }
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "QueueArn"])
    [statement] = json.loads(attrs["Attributes"]["Policy"])["Statement"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == rule["Arn"]
    [target] = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"] == attrs["Attributes"]["QueueArn"]

    store_id = create_store(emulator, "us-east-1")
    rows = genomes(s3_fasta, 20, "evinit")
    manifest = tmp_path / "refs.csv"
    manifest.write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in rows))
    run = run_cli(
        "import", manifest, "--store-id", store_id, "--role-arn", ROLE_ARN,
        "--region", "us-east-1", "--endpoint-url", emulator.omics_endpoint_url,
        "--journal", tmp_path / "j.sqlite", "--max-sources-per-job", "10",
        "--events-queue-url", url, "--json", env=env,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["summary"]["imported"] == 20
    stats = emulator.stats()
    assert stats["calls"]["GetReferenceImportJob"] == len(stats["jobs"]) == 2  # woken by events
    events.remove_targets(Rule=name, Ids=[target["Id"]])
    events.delete_rule(Name=name)
    sqs.delete_queue(QueueUrl=url)
