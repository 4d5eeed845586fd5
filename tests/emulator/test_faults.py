"""Each fault kind, its targeting, seeding, and the inspection endpoint."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import aioboto3
import boto3
import botocore.exceptions
import pytest

from async_refimport.emulator import EmulatorThread, Faults
from tests.helpers.emulator import ROLE, wait_job

START = frozenset({"StartReferenceImportJob"})


def code_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def faults_fired(stats: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in stats["faults"].items() if v}


def sources(uri: str, name: str) -> list[dict[str, str]]:
    return [{"sourceFile": uri, "name": name}]


def test_ambiguous_timeout_leaves_one_job_and_the_token_finds_it(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    emulator.configure(faults=Faults(tps=None, p_timeout=1.0, operations=START))
    uri = fasta_uri("amb-a")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.start_reference_import_job(
            referenceStoreId=store_id,
            roleArn=ROLE,
            clientToken="amb",
            sources=sources(uri, "amb-a"),
        )
    assert code_of(exc) == ("RequestTimeoutException", 408)
    stats = emulator.stats()
    assert len(stats["jobs"]) == 1 and faults_fired(stats) == {"timeout": 1}
    (job,) = stats["jobs"]
    assert job["client_token"] == "amb"
    emulator.configure(faults=Faults.none())
    replay = omics.start_reference_import_job(
        referenceStoreId=store_id, roleArn=ROLE, clientToken="amb", sources=sources(uri, "amb-a")
    )
    assert replay["id"] == job["job_id"]
    assert len(emulator.stats()["jobs"]) == 1
    # Other operations are not targeted.
    emulator.configure(faults=Faults(tps=None, p_timeout=1.0, operations=START))
    assert wait_job(omics, store_id, replay["id"])["status"] == "COMPLETED"


def test_internal_errors_happen_before_anything(omics: Any, emulator: EmulatorThread) -> None:
    emulator.configure(faults=Faults(tps=None, p_500=1.0))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.create_reference_store(name="never")
    assert code_of(exc) == ("InternalServerException", 500)
    stats = emulator.stats()
    assert stats["stores"] == [] and faults_fired(stats) == {"internal_error": 1}
    assert stats["errors"] == {"InternalServerException": 1}


def test_dropped_connection_is_a_botocore_connection_error(
    omics: Any, emulator: EmulatorThread
) -> None:
    emulator.configure(faults=Faults(tps=None, p_drop=1.0))
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        omics.list_reference_stores()
    assert faults_fired(emulator.stats()) == {"drop": 1}
    emulator.configure(faults=Faults.none())
    assert omics.list_reference_stores()["referenceStores"] == []  # the server lives on


async def test_dropped_connection_with_aioboto3(emulator: EmulatorThread) -> None:
    emulator.configure(faults=Faults(tps=None, p_drop=1.0))
    async with aioboto3.Session().client("omics", **emulator.client_kwargs(max_attempts=1)) as om:
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            await om.list_reference_stores()


def test_drop_after_the_call_ran_is_ambiguous(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    emulator.configure(faults=Faults(tps=None, p_drop_after=1.0, operations=START))
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        omics.start_reference_import_job(
            referenceStoreId=store_id,
            roleArn=ROLE,
            clientToken="drop",
            sources=sources(fasta_uri("drop-a"), "drop-a"),
        )
    stats = emulator.stats()
    assert len(stats["jobs"]) == 1 and faults_fired(stats) == {"drop_after": 1}


def test_latency(omics: Any, emulator: EmulatorThread) -> None:
    emulator.configure(
        faults=Faults(tps=None, latency=0.2, operations=frozenset({"ListReferenceStores"}))
    )
    t0 = time.monotonic()
    omics.list_reference_stores()
    assert time.monotonic() - t0 >= 0.2
    t0 = time.monotonic()
    omics.create_reference_store(name="fast")  # not targeted
    assert time.monotonic() - t0 < 0.2
    emulator.configure(faults=Faults(tps=None, latency=(0.05, 0.1)))
    t0 = time.monotonic()
    omics.list_reference_stores()
    assert 0.05 <= time.monotonic() - t0
    assert faults_fired(emulator.stats()) == {"latency": 2}


def test_throttling_at_the_configured_tps(
    omics: Any, emulator: EmulatorThread, store_id: str
) -> None:
    emulator.configure(faults=Faults(tps=5))
    ok = throttled = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        try:
            omics.get_reference_store(id=store_id)
            ok += 1
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "ThrottlingException"
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            throttled += 1
    elapsed = time.monotonic() - t0
    # A burst of 5, then 5 per second.
    assert 5 <= ok <= 5 + 5 * elapsed + 1
    assert throttled > 0
    # Buckets are per operation: another operation still has its burst.
    omics.list_reference_stores()
    stats = emulator.stats()
    assert stats["throttled"]["GetReferenceStore"] == throttled
    assert stats["calls"]["GetReferenceStore"] == ok + throttled


def test_throttling_per_operation_override(omics: Any, emulator: EmulatorThread) -> None:
    emulator.configure(faults=Faults(tps=None, tps_per_operation={"ListReferenceStores": 1}))
    omics.list_reference_stores()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.list_reference_stores()
    assert code_of(exc) == ("ThrottlingException", 429)
    for _ in range(5):
        omics.create_reference_store(name="x", clientToken="same")  # not throttled


def test_faults_are_seeded(omics: Any, emulator: EmulatorThread) -> None:
    def pattern() -> list[bool]:
        out = []
        for _ in range(20):
            try:
                omics.list_reference_stores()
                out.append(True)
            except botocore.exceptions.ClientError:
                out.append(False)
        return out

    emulator.configure(faults=Faults(tps=None, p_500=0.5, seed=7))
    first = pattern()
    emulator.configure(faults=Faults(tps=None, p_500=0.5, seed=7))
    assert pattern() == first
    assert 0 < first.count(False) < 20


@pytest.mark.slow
def test_botocore_default_retries_hide_500s(emulator: EmulatorThread) -> None:
    # Why clients in tests pass max_attempts=1: with defaults botocore retries on its own.
    emulator.configure(faults=Faults(tps=None, p_500=0.5, seed=3))
    client = boto3.client("omics", **emulator.client_kwargs(max_attempts=4))
    for _ in range(5):
        client.list_reference_stores()
    stats = emulator.stats()
    assert stats["calls"]["ListReferenceStores"] > 5


def _http(emulator: EmulatorThread, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{emulator.omics_endpoint_url}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_inspection_endpoint(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    job = omics.start_reference_import_job(
        referenceStoreId=store_id,
        roleArn=ROLE,
        clientToken="insp",
        sources=sources(fasta_uri("insp"), "insp-ref"),
    )
    wait_job(omics, store_id, job["id"])
    status, stats = _http(emulator, "GET", "/_emulator/stats")
    assert status == 200
    assert stats["calls"]["StartReferenceImportJob"] == 1
    (rec,) = stats["jobs"]
    assert (
        rec["job_id"] == job["id"] and rec["store_id"] == store_id and rec["client_token"] == "insp"
    )
    assert rec["sources"] == 1 and rec["status"] == "COMPLETED"
    assert rec["created_epoch"] <= rec["started_epoch"] <= rec["completed_epoch"]
    assert [r["name"] for r in stats["references"][store_id]] == ["insp-ref"]
    assert stats["config"]["faults"]["tps"] is None

    status, cfg = _http(
        emulator,
        "POST",
        "/_emulator/config",
        {"faults": {"p_500": 1.0, "operations": ["GetReferenceStore"]}, "time_scale": 0.002},
    )
    assert status == 200 and cfg["faults"]["p_500"] == 1.0 and cfg["time_scale"] == 0.002
    with pytest.raises(botocore.exceptions.ClientError):
        omics.get_reference_store(id=store_id)
    assert _http(emulator, "POST", "/_emulator/config", {"faults": {"bogus": 1}})[0] == 400
    assert _http(emulator, "POST", "/_emulator/config", {"faults": {"p_500": 2}})[0] == 400
    assert _http(emulator, "POST", "/_emulator/forget-tokens") == (200, {"forgotten": 1})
    assert _http(emulator, "POST", "/_emulator/reset")[0] == 200
    _, stats = _http(emulator, "GET", "/_emulator/stats")
    assert stats["jobs"] == [] and stats["stores"] == [] and not any(stats["calls"].values())
    assert stats["config"]["faults"]["p_500"] == 1.0  # reset keeps the settings
    _http(emulator, "POST", "/_emulator/reset?settings=1")
    assert _http(emulator, "GET", "/_emulator/config")[1]["faults"]["p_500"] == 0.0
    assert _http(emulator, "GET", "/_emulator/nothing")[0] == 404


def test_factory_builds_isolated_emulators(
    emulator_factory: Callable[..., EmulatorThread], s3_fasta: Callable[..., str]
) -> None:
    emu = emulator_factory(time_scale=0.001, store_quota=2, faults=Faults.none())
    client = boto3.client("omics", **emu.client_kwargs(max_attempts=1))
    store = client.create_reference_store(name="f1")
    client.create_reference_store(name="f2")
    uri = s3_fasta("factory.fa", ">f\nACGT\n")  # the factory shares the session's S3
    job = client.start_reference_import_job(
        referenceStoreId=store["id"], roleArn=ROLE, sources=sources(uri, "factory")
    )
    assert wait_job(client, store["id"], job["id"])["status"] == "COMPLETED"
