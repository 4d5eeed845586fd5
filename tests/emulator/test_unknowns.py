"""What AWS does not document, as settings: busy refusal code, read lags, per-source progress,
jobs cancelled from outside; and settings that are refused with a reason."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from async_refimport.emulator import EmulatorThread, Faults, Unknowns
from tests.helpers.emulator import wait_job

from .test_faults import _http
from .test_semantics import error_code, start

SLOW_JOBS = 0.05  # time_scale: 1.5 s of overhead per job, long enough to observe a job running


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ServiceQuotaExceededException", 402),
        ("ConflictException", 409),
        ("ValidationException", 400),
    ],
)
def test_busy_store_refuses_a_second_start_with_the_configured_code(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    fasta_uri: Callable[..., str],
    code: str,
    status: int,
) -> None:
    emulator.configure(time_scale=SLOW_JOBS, unknowns=Unknowns(busy_code=code))
    first = start(omics, store_id, (fasta_uri("busy1"), "busy1"))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        start(omics, store_id, (fasta_uri("busy2"), "busy2"))
    assert error_code(exc) == (code, status)
    message = exc.value.response["Error"]["Message"]
    assert first["id"] in message and store_id in message
    assert emulator.stats()["rejected_concurrent_starts"] == 1


ONLY_ONE = "Only one reference import job may run at a time in a reference store"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ServiceQuotaExceededException", 402),
        ("ConflictException", 409),
        ("ValidationException", 400),
    ],
)
def test_a_busy_refusal_can_say_anything(
    omics: Any,
    emulator: EmulatorThread,
    store_id: str,
    fasta_uri: Callable[..., str],
    code: str,
    status: int,
) -> None:
    # AWS documents no wording: code under test must decide from the code and from what the
    # service shows, never from these words.
    emulator.configure(
        time_scale=SLOW_JOBS, unknowns=Unknowns(busy_code=code, busy_message=ONLY_ONE)
    )
    start(omics, store_id, (fasta_uri("words1"), "words1"))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        start(omics, store_id, (fasta_uri("words2"), "words2"))
    assert error_code(exc) == (code, status)
    assert exc.value.response["Error"]["Message"] == ONLY_ONE
    assert emulator.stats()["rejected_concurrent_starts"] == 1


def test_a_busy_message_can_name_the_store_and_the_job(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    status, cfg = _http(
        emulator,
        "POST",
        "/_emulator/config",
        {
            "time_scale": SLOW_JOBS,
            "job_overhead": 100.0,  # jobs of 5 s: surely active for the three Starts below
            "unknowns": {
                "busy_code": "ConflictException",
                "busy_message": "Store {store} is running {job}; {other braces} stay",
            },
        },
    )
    assert status == 200 and cfg["unknowns"]["busy_code"] == "ConflictException"
    first = start(omics, store_id, (fasta_uri("named1"), "named1"))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        start(omics, store_id, (fasta_uri("named2"), "named2"))
    assert error_code(exc) == ("ConflictException", 409)
    assert exc.value.response["Error"]["Message"] == (
        f"Store {store_id} is running {first['id']}; {{other braces}} stay"
    )
    # Back to the code's own wording.
    _http(emulator, "POST", "/_emulator/config", {"unknowns": {"busy_message": None}})
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        start(omics, store_id, (fasta_uri("named2"), "named2"))
    assert exc.value.response["Error"]["Message"] == (
        f"An import job ({first['id']}) is already in progress for reference store {store_id}"
    )


def test_get_lag_answers_404_for_a_new_job_then_the_job(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    # 2 emulated seconds at a time scale of 0.05: 0.1 s of real time.
    emulator.configure(time_scale=0.05, unknowns=Unknowns(get_lag=2.0))
    job = start(omics, store_id, (fasta_uri("lag1"), "lag1"))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.get_reference_import_job(referenceStoreId=store_id, id=job["id"])
    assert error_code(exc) == ("ResourceNotFoundException", 404)
    # The job exists all along: it is listed, and Get knows it once the lag has passed.
    listed = omics.list_reference_import_jobs(referenceStoreId=store_id)["importJobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    time.sleep(0.15)
    got = omics.get_reference_import_job(referenceStoreId=store_id, id=job["id"])
    assert got["id"] == job["id"]
    assert emulator.stats()["lagged"]["GetReferenceImportJob"] == 1


def test_list_lag_hides_new_jobs_and_references_for_a_while(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    emulator.configure(time_scale=0.001, unknowns=Unknowns(list_lag=200.0))  # 0.2 s real
    job = start(omics, store_id, (fasta_uri("ll1"), "ll1"))
    assert omics.list_reference_import_jobs(referenceStoreId=store_id)["importJobs"] == []
    done = wait_job(omics, store_id, job["id"])  # Get is not lagged
    assert done["status"] == "COMPLETED"
    ref_id = done["sources"][0]["referenceId"]
    assert (
        omics.list_references(referenceStoreId=store_id, filter={"name": "ll1"})["references"] == []
    )
    # The name is taken all the same: a second import of it fails.
    wait_until(
        lambda: bool(
            omics.list_references(referenceStoreId=store_id, filter={"name": "ll1"})["references"]
        )
    )
    [ref] = omics.list_references(referenceStoreId=store_id)["references"]
    assert ref["id"] == ref_id
    assert [
        j["id"] for j in omics.list_reference_import_jobs(referenceStoreId=store_id)["importJobs"]
    ] == [job["id"]]
    lagged = emulator.stats()["lagged"]
    assert lagged["ListReferenceImportJobs"] >= 1 and lagged["ListReferences"] >= 1


def _source_statuses(omics: Any, store_id: str, job_id: str) -> list[str]:
    job = omics.get_reference_import_job(referenceStoreId=store_id, id=job_id)
    return [s["status"] for s in job["sources"]]


def _watch_statuses(omics: Any, store_id: str, job_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every distinct (job status, source statuses) seen until the job ends."""
    seen: list[tuple[str, tuple[str, ...]]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = omics.get_reference_import_job(referenceStoreId=store_id, id=job_id)
        state = (job["status"], tuple(s["status"] for s in job["sources"]))
        if not seen or seen[-1] != state:
            seen.append(state)
        if job["status"] in ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"):
            return seen
        time.sleep(0.005)
    raise AssertionError("the job did not end")


def test_progress_together_shows_every_source_finishing_at_the_end(
    omics: Any, emulator: EmulatorThread, store_id: str, s3_fasta: Callable[..., str]
) -> None:
    # Sources of 20 Mbases (emulated): one emulated second each, 0.03 s real at this scale.
    emulator.configure(time_scale=0.03, job_overhead=2.0, unknowns=Unknowns(progress="together"))
    uris = [
        s3_fasta(f"tog{i}.fa", f">t{i}\nACGT\n", metadata={"emulated-bases": "20000000"})
        for i in range(4)
    ]
    job = start(omics, store_id, *[(u, f"tog{i}") for i, u in enumerate(uris)])
    seen = _watch_statuses(omics, store_id, job["id"])
    running = [sources for status, sources in seen if status == "IN_PROGRESS"]
    assert running and all(set(s) == {"IN_PROGRESS"} for s in running)
    assert seen[-1] == ("COMPLETED", ("FINISHED",) * 4)
    refs = {r["name"] for r in omics.list_references(referenceStoreId=store_id)["references"]}
    assert refs == {f"tog{i}" for i in range(4)}


def test_progress_sequential_shows_sources_finishing_one_after_another(
    omics: Any, emulator: EmulatorThread, store_id: str, s3_fasta: Callable[..., str]
) -> None:
    emulator.configure(time_scale=0.03, job_overhead=2.0)
    uris = [
        s3_fasta(f"seq{i}.fa", f">s{i}\nACGT\n", metadata={"emulated-bases": "20000000"})
        for i in range(4)
    ]
    job = start(omics, store_id, *[(u, f"seq{i}") for i, u in enumerate(uris)])
    seen = _watch_statuses(omics, store_id, job["id"])
    partial = [s for status, s in seen if status == "IN_PROGRESS" and "FINISHED" in s]
    assert partial and any("NOT_STARTED" in s or "IN_PROGRESS" in s for s in partial)


def test_cancel_from_outside_keeps_what_finished(
    omics: Any, emulator: EmulatorThread, store_id: str, s3_fasta: Callable[..., str]
) -> None:
    emulator.configure(time_scale=0.03, job_overhead=2.0)
    uris = [
        s3_fasta(f"can{i}.fa", f">c{i}\nACGT\n", metadata={"emulated-bases": "20000000"})
        for i in range(4)
    ]
    job = start(omics, store_id, *[(u, f"can{i}") for i, u in enumerate(uris)])
    wait_until(lambda: "FINISHED" in _source_statuses(omics, store_id, job["id"]))
    status, body = _http(
        emulator, "POST", "/_emulator/cancel", {"job_id": job["id"], "reason": "stopped by ops"}
    )
    assert (status, body) == (200, {"cancelled": True})
    done = wait_job(omics, store_id, job["id"])
    assert done["status"] == "CANCELLED" and done["statusMessage"] == "stopped by ops"
    finished = [s["name"] for s in done["sources"] if s["status"] == "FINISHED"]
    assert 1 <= len(finished) < 4
    assert all(
        s["status"] in ("NOT_STARTED", "IN_PROGRESS") for s in done["sources"][len(finished) :]
    )
    refs = {r["name"] for r in omics.list_references(referenceStoreId=store_id)["references"]}
    assert refs == set(finished)
    assert emulator.cancel_job(job["id"]) is False  # no longer active
    assert emulator.stats()["cancelled_from_outside"] == 1
    # The store is free again.
    start(omics, store_id, (uris[3], "can3"))


def test_p_cancel_cancels_jobs_half_way(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    emulator.configure(unknowns=Unknowns(p_cancel=1.0))
    job = start(omics, store_id, *[(fasta_uri(f"half{i}"), f"half{i}") for i in range(4)])
    done = wait_job(omics, store_id, job["id"])
    assert done["status"] == "CANCELLED"
    assert [s["status"] for s in done["sources"]] == [
        "FINISHED",
        "FINISHED",
        "NOT_STARTED",
        "NOT_STARTED",
    ]


def test_unknowns_through_the_config_endpoint(emulator: EmulatorThread) -> None:
    status, cfg = _http(
        emulator, "POST", "/_emulator/config", {"unknowns": {"busy_code": "ConflictException"}}
    )
    assert status == 200 and cfg["unknowns"]["busy_code"] == "ConflictException"
    assert cfg["unknowns"]["progress"] == "sequential"  # a partial object is merged
    assert emulator.unknowns.busy_code == "ConflictException"
    emulator.reset(settings=True)
    assert emulator.unknowns == Unknowns()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"time_scale": -1}, "time_scale must be >= 0"),
        ({"time_scale": "fast"}, "time_scale must be a number"),
        ({"time_scale": True}, "time_scale must be a number"),
        ({"throughput": 0}, "throughput must be > 0"),
        ({"store_quota": 1.5}, "store_quota must be an integer"),
        ({"token_ttl": -3}, "token_ttl must be >= 0"),
        ({"faults": {"tps": "x"}}, "tps must be a number"),
        ({"faults": {"tps": -1}}, "tps must be >= 0"),
        ({"faults": {"burst": 0}}, "burst must be > 0"),
        ({"faults": {"p_500": "often"}}, "p_500 must be a number"),
        ({"faults": {"latency": [2, 1]}}, "latency high must be >= 2"),
        ({"faults": {"latency": -1}}, "latency must be >= 0"),
        ({"faults": {"operations": ["StartJob"]}}, "unknown operation 'StartJob'"),
        ({"faults": {"operations": "StartReferenceImportJob"}}, "operations must be a list"),
        ({"faults": {"tps_per_operation": {"Nope": 1}}}, "unknown operation 'Nope'"),
        ({"faults": {"seed": 1.5}}, "seed must be an integer"),
        ({"faults": []}, "faults must be a JSON object"),
        ({"unknowns": {"busy_code": "TeapotException"}}, "busy_code must be one of"),
        ({"unknowns": {"get_lag": -1}}, "get_lag must be >= 0"),
        ({"unknowns": {"progress": "random"}}, "progress must be one of"),
        ({"unknowns": {"p_cancel": 2}}, "p_cancel must be <= 1"),
        ({"unknowns": {"whatever": 1}}, "unknown settings in unknowns"),
        ({"unknowns": {"busy_message": ""}}, "busy_message must be null or a non-blank string"),
        ({"unknowns": {"busy_message": 409}}, "busy_message must be null or a non-blank string"),
        ({"unknowns": {"busy_message": "x" * 1001}}, "at most 1000 characters"),
        ({"unknowns": {"cancel_events": "yes"}}, "cancel_events must be true or false"),
        ({"faults": {"other_imports": 2}}, "other_imports needs an import_quota"),
    ],
)
def test_invalid_settings_are_refused_with_a_reason_and_change_nothing(
    omics: Any, emulator: EmulatorThread, body: dict[str, Any], reason: str
) -> None:
    before = emulator.config()
    status, answer = _http(emulator, "POST", "/_emulator/config", body)
    assert status == 400
    assert reason in answer["message"]
    assert emulator.config() == before
    omics.list_reference_stores()  # the service still answers normally


def test_invalid_settings_in_python_raise_value_error(emulator: EmulatorThread) -> None:
    with pytest.raises(ValueError, match="time_scale must be >= 0"):
        emulator.configure(time_scale=-1)
    with pytest.raises(ValueError, match="tps must be a number"):
        Faults(tps="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="get_lag must be finite"):
        Unknowns(get_lag=float("inf"))
    assert emulator.config()["time_scale"] == 0.001


def test_cli_refuses_a_bad_setting_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport.emulator", "--get-lag", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "refimport emulator: get_lag must be >= 0.0, got -1.0"
    assert proc.stdout == ""


def test_cancel_endpoint_refuses_a_malformed_body(emulator: EmulatorThread) -> None:
    assert _http(emulator, "POST", "/_emulator/cancel", {"job": 1})[0] == 400
    assert _http(emulator, "POST", "/_emulator/cancel", {"job_id": "nope"}) == (
        200,
        {"cancelled": False},
    )
