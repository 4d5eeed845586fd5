"""Durations, shutdown with running jobs, and odd requests."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import aioboto3
import boto3
import botocore.exceptions
import pytest

from async_refimport.emulator import (
    EMULATED_BASES_META,
    Emulator,
    EmulatorThread,
    Faults,
    make_fasta,
)
from tests.helpers.emulator import ROLE, wait_job


def test_duration_follows_the_model(
    omics: Any, emulator: EmulatorThread, store_id: str, s3_fasta: Callable[..., str]
) -> None:
    # A 3.1 Gbase genome: (30 s + 3.1e9 / 20e6 b/s) = 185 s, times 0.005 = 0.925 s.
    emulator.configure(time_scale=0.005)
    uri = s3_fasta(
        "human.fa", make_fasta("chr1", 100), metadata={EMULATED_BASES_META: str(3_100_000_000)}
    )
    job = omics.start_reference_import_job(
        referenceStoreId=store_id, roleArn=ROLE, sources=[{"sourceFile": uri, "name": "GRCh38"}]
    )
    assert wait_job(omics, store_id, job["id"])["status"] == "COMPLETED"
    (rec,) = emulator.stats()["jobs"]
    assert 0.9 <= rec["completed_epoch"] - rec["created_epoch"] < 3.0
    assert 0.07 <= rec["started_epoch"] - rec["created_epoch"]  # half the overhead while SUBMITTED


async def test_shutdown_cancels_running_jobs() -> None:
    async with Emulator(time_scale=1.0, faults=Faults.none()) as emu:
        s3 = boto3.client("s3", **emu.client_kwargs("s3"))
        await asyncio.to_thread(s3.create_bucket, Bucket="shutdown")
        await asyncio.to_thread(
            s3.put_object, Bucket="shutdown", Key="a.fa", Body=make_fasta("a", 10).encode()
        )
        async with aioboto3.Session().client("omics", **emu.client_kwargs(max_attempts=1)) as om:
            store = await om.create_reference_store(name="s")
            await om.start_reference_import_job(
                referenceStoreId=store["id"],
                roleArn=ROLE,
                sources=[{"sourceFile": "s3://shutdown/a.fa", "name": "slow"}],
            )
        assert len(emu.service._tasks) == 1  # a 30 s job is running
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5
    assert not emu.service._tasks


def test_reset_cancels_running_jobs(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    emulator.configure(time_scale=1.0)
    omics.start_reference_import_job(
        referenceStoreId=store_id,
        roleArn=ROLE,
        sources=[{"sourceFile": fasta_uri("rst"), "name": "rst"}],
    )
    emulator.reset()
    stats = emulator.stats()
    assert stats["jobs"] == [] and stats["stores"] == []


def _raw(emulator: EmulatorThread, method: str, path: str, body: bytes) -> tuple[int, str]:
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/omics/aws4_request, SignedHeaders=host, Signature=x"
    }
    req = urllib.request.Request(
        f"{emulator.omics_endpoint_url}{path}", data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("x-amzn-ErrorType", "")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("x-amzn-ErrorType", "")


def test_malformed_requests(emulator: EmulatorThread) -> None:
    assert _raw(emulator, "POST", "/referencestore", b"{not json") == (400, "ValidationException")
    assert _raw(emulator, "POST", "/referencestore", b"[1, 2]") == (400, "ValidationException")
    assert _raw(emulator, "POST", "/referencestore", b'{"name": 5}') == (400, "ValidationException")
    assert _raw(emulator, "GET", "/no/such/thing", b"") == (404, "UnknownOperationException")
    assert _raw(emulator, "GET", "/referencestore/abc", b"") == (400, "ValidationException")
    assert _raw(emulator, "POST", "/referencestore", b'{"name": "raw"}') == (200, "")


def test_throttling_is_per_account(emulator: EmulatorThread) -> None:
    emulator.configure(faults=Faults(tps=1))

    def client(key: str) -> Any:
        return boto3.client(
            "omics", **(emulator.client_kwargs(max_attempts=1) | {"aws_access_key_id": key})
        )

    a, b = client("111111111111"), client("222222222222")
    a.list_reference_stores()
    b.list_reference_stores()
    with pytest.raises(botocore.exceptions.ClientError):
        a.list_reference_stores()
