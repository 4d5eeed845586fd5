"""Job status events through EventBridge (moto) to an SQS queue, as HealthOmics sends them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3

from async_refimport.emulator import EmulatorThread, Faults, Unknowns
from tests.helpers.emulator import wait_job

from .test_faults import _http
from .test_semantics import start


def receive_all(
    emulator: EmulatorThread,
    queue_url: str,
    *,
    expect: int,
    timeout: float = 10.0,
    region: str = "us-east-1",
) -> list[dict[str, Any]]:
    """The EventBridge envelopes in the queue, once ``expect`` have arrived (or the timeout)."""
    sqs = boto3.client("sqs", **{**emulator.client_kwargs("sqs"), "region_name": region})
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in got.get("Messages", []):
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not got.get("Messages"):
            time.sleep(0.02)
    return out


def test_every_status_change_reaches_the_users_queue(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    fasta_uri: Callable[..., str],
    events_queue: Callable[..., str],
) -> None:
    queue = events_queue()
    job = start(omics, store_id, (fasta_uri("ev1"), "ev1"))
    wait_job(omics, store_id, job["id"])
    events = receive_all(emulator, queue, expect=3)
    # Each change is put to EventBridge as it happens, concurrently, and EventBridge promises no
    # order: on a loaded machine a job of milliseconds has its events arrive in any order.
    statuses = sorted(e["detail"]["status"] for e in events)
    assert statuses == sorted(["SUBMITTED", "IN_PROGRESS", "COMPLETED"])
    for event in events:
        assert event["source"] == "aws.omics"
        assert event["detail-type"] == "Reference Import Job Status Change"
        assert event["region"] == "us-east-1"
        assert event["detail"]["id"] == job["id"]
        assert event["detail"]["referenceStoreId"] == store_id
        assert event["detail"]["omicsVersion"]
    assert emulator.stats()["events"]["published"] == 3


def test_a_failed_job_carries_its_status_message(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    s3_fasta: Callable[..., str],
    events_queue: Callable[..., str],
) -> None:
    queue = events_queue()
    job = start(omics, store_id, (s3_fasta("evbad.fa", "not a genome\n"), "evbad"))
    wait_job(omics, store_id, job["id"])
    events = receive_all(emulator, queue, expect=3)
    assert sorted(e["detail"]["status"] for e in events) == ["FAILED", "IN_PROGRESS", "SUBMITTED"]
    [failed] = [e for e in events if e["detail"]["status"] == "FAILED"]  # in any order
    assert failed["detail"]["statusMessage"] == "All sources failed"


def test_events_of_other_regions_need_a_rule_there(
    emulator: EmulatorThread, fasta_uri: Callable[..., str], events_queue: Callable[..., str]
) -> None:
    queue = events_queue("us-east-1")
    kwargs = emulator.client_kwargs(max_attempts=1) | {"region_name": "eu-west-1"}
    omics = boto3.client("omics", **kwargs)
    store = omics.create_reference_store(name="eu")["id"]
    job = start(omics, store, (fasta_uri("eu1"), "eu1"))
    wait_job(omics, store, job["id"])
    assert receive_all(emulator, queue, expect=1, timeout=0.5) == []  # EventBridge is regional
    other = events_queue("eu-west-1")
    job = start(omics, store, (fasta_uri("eu2"), "eu2"))
    wait_job(omics, store, job["id"])
    events = receive_all(emulator, other, expect=3, region="eu-west-1")
    assert {e["region"] for e in events} == {"eu-west-1"} and len(events) == 3


def test_faults_drop_duplicate_and_delay_events(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    fasta_uri: Callable[..., str],
    events_queue: Callable[..., str],
) -> None:
    queue = events_queue()
    emulator.configure(faults=Faults(tps=None, p_event_drop=1.0))
    job = start(omics, store_id, (fasta_uri("drop1"), "drop1"))
    wait_job(omics, store_id, job["id"])
    assert receive_all(emulator, queue, expect=1, timeout=0.5) == []
    assert emulator.stats()["events"]["dropped"] == 3

    emulator.configure(faults=Faults(tps=None, p_event_duplicate=1.0))
    job = start(omics, store_id, (fasta_uri("dup1"), "dup1"))
    wait_job(omics, store_id, job["id"])
    statuses = [e["detail"]["status"] for e in receive_all(emulator, queue, expect=6)]
    assert sorted(statuses) == sorted(["SUBMITTED", "IN_PROGRESS", "COMPLETED"] * 2)

    # Delays of up to 0.3 s on jobs of ~30 ms: the events arrive late, in any order.
    emulator.configure(faults=Faults(tps=None, event_delay=(0.0, 0.3), seed=4))
    job = start(omics, store_id, (fasta_uri("late1"), "late1"))
    wait_job(omics, store_id, job["id"])
    sent = time.monotonic()
    events = receive_all(emulator, queue, expect=3)
    assert sorted(e["detail"]["status"] for e in events) == [
        "COMPLETED",
        "IN_PROGRESS",
        "SUBMITTED",
    ]
    assert time.monotonic() - sent > 0.05


def test_no_events_when_turned_off(
    emulator: EmulatorThread,
    emulator_factory: Callable[..., EmulatorThread],
    fasta_uri: Callable[..., str],
    events_queue: Callable[..., str],
) -> None:
    queue = events_queue()  # in the session emulator's moto, which the factory's shares
    emu = emulator_factory(time_scale=0.001, faults=Faults.none(), events=False)
    assert emu.events_endpoint_url is None and "events_endpoint_url" not in emu.endpoints()
    omics = boto3.client("omics", **emu.client_kwargs(max_attempts=1))
    store = omics.create_reference_store(name="quiet")["id"]
    job = start(omics, store, (fasta_uri("quiet1"), "quiet1"))
    wait_job(omics, store, job["id"])
    assert receive_all(emulator, queue, expect=1, timeout=0.3) == []
    assert emu.stats()["events"] == {
        "published": 0,
        "dropped": 0,
        "duplicated": 0,
        "failed": 0,
        "withheld": 0,
    }


def _cancelled_job(
    omics: Any, emulator: EmulatorThread, store_id: str, s3_fasta: Callable[..., str], key: str
) -> dict[str, Any]:
    """A job of 4 sources cancelled from outside after the first finished; returns its Get."""
    emulator.configure(time_scale=0.03, job_overhead=2.0)
    # 10 emulated seconds per source (0.3 s real): the job is surely still running when cancelled.
    uris = [
        s3_fasta(f"{key}{i}.fa", f">c{i}\nACGT\n", metadata={"emulated-bases": "200000000"})
        for i in range(4)
    ]
    job = start(omics, store_id, *[(u, f"{key}{i}") for i, u in enumerate(uris)])
    deadline = time.monotonic() + 10
    while not any(
        s["status"] == "FINISHED"
        for s in omics.get_reference_import_job(referenceStoreId=store_id, id=job["id"])["sources"]
    ):
        assert time.monotonic() < deadline, "no source finished"
        time.sleep(0.01)
    assert _http(emulator, "POST", "/_emulator/cancel", {"job_id": job["id"]}) == (
        200,
        {"cancelled": True},
    )
    done = wait_job(omics, store_id, job["id"])
    assert done["status"] == "CANCELLED"
    return done


def test_a_cancelled_job_sends_no_event_for_its_cancellation(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    s3_fasta: Callable[..., str],
    events_queue: Callable[..., str],
) -> None:
    # AWS's EventBridge page lists SUBMITTED, IN_PROGRESS, COMPLETED, FAILED and
    # COMPLETED_WITH_FAILURES for reference imports: nothing for a cancellation.
    queue = events_queue()
    job = _cancelled_job(omics, emulator, store_id, s3_fasta, "nocev")
    events = receive_all(emulator, queue, expect=3, timeout=1.0)  # a third never comes
    assert sorted(e["detail"]["status"] for e in events) == ["IN_PROGRESS", "SUBMITTED"]
    assert {e["detail"]["id"] for e in events} == {job["id"]}
    counted = emulator.stats()["events"]
    assert (counted["published"], counted["withheld"]) == (2, 2)  # CANCELLING, CANCELLED


def test_a_job_cancelled_by_p_cancel_sends_no_cancellation_event_either(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    fasta_uri: Callable[..., str],
    events_queue: Callable[..., str],
) -> None:
    queue = events_queue()
    emulator.configure(unknowns=Unknowns(p_cancel=1.0))
    job = start(omics, store_id, *[(fasta_uri(f"pcev{i}"), f"pcev{i}") for i in range(2)])
    assert wait_job(omics, store_id, job["id"])["status"] == "CANCELLED"
    events = receive_all(emulator, queue, expect=3, timeout=1.0)
    assert sorted(e["detail"]["status"] for e in events) == ["IN_PROGRESS", "SUBMITTED"]
    assert emulator.stats()["events"]["withheld"] == 2


def test_cancellation_events_are_sent_when_asked_for(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    s3_fasta: Callable[..., str],
    events_queue: Callable[..., str],
) -> None:
    queue = events_queue()
    status, cfg = _http(
        emulator, "POST", "/_emulator/config", {"unknowns": {"cancel_events": True}}
    )
    assert status == 200 and cfg["unknowns"]["cancel_events"] is True
    job = _cancelled_job(omics, emulator, store_id, s3_fasta, "cev")
    events = receive_all(emulator, queue, expect=4)
    assert sorted(e["detail"]["status"] for e in events) == [
        "CANCELLED",
        "CANCELLING",
        "IN_PROGRESS",
        "SUBMITTED",
    ]
    [cancelled] = [e for e in events if e["detail"]["status"] == "CANCELLED"]
    assert cancelled["detail"]["statusMessage"] == job["statusMessage"] == "Cancelled by a user"
    counted = emulator.stats()["events"]
    assert (counted["published"], counted["withheld"]) == (4, 0)
    assert emulator.unknowns == Unknowns(cancel_events=True)
