"""Several Regions behind one emulator endpoint: stores kept apart by Region, buckets of every
Region in its S3, and HealthOmics' same-Region rule for import sources (real SDK over HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
import pytest

from async_refimport.emulator import EmulatorThread, make_fasta
from tests.helpers.emulator import ROLE, wait_job

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def _omics(emulator: EmulatorThread, region: str) -> Any:
    kwargs = emulator.client_kwargs(max_attempts=1) | {"region_name": region}
    return boto3.client("omics", **kwargs)


def _bucket(region: str) -> str:
    return f"refs-{region}"


def _upload(s3_fasta: Callable[..., str], region: str, name: str) -> str:
    return s3_fasta(f"{name}.fa", make_fasta(name, 400), bucket=_bucket(region), region=region)


def _start(omics: Any, store_id: str, *sources: tuple[str, str]) -> dict[str, Any]:
    job = omics.start_reference_import_job(
        referenceStoreId=store_id,
        roleArn=ROLE,
        sources=[{"sourceFile": uri, "name": name} for uri, name in sources],
    )
    return wait_job(omics, store_id, job["id"], timeout=60)


def _job_stats(emulator: EmulatorThread, job_id: str) -> dict[str, Any]:
    [job] = [j for j in emulator.stats()["jobs"] if j["job_id"] == job_id]
    return job  # type: ignore[no-any-return]


def test_one_endpoint_serves_a_store_per_region_each_invisible_from_the_others(
    emulator: EmulatorThread, s3_fasta: Callable[..., str]
) -> None:
    clients = {region: _omics(emulator, region) for region in REGIONS}
    stores = {r: c.create_reference_store(name=f"refs-{r}")["id"] for r, c in clients.items()}
    assert len(set(stores.values())) == 3  # the quota of one store is per Region
    for region, omics in clients.items():
        listed = [s["id"] for s in omics.list_reference_stores()["referenceStores"]]
        assert listed == [stores[region]]
        arn = omics.get_reference_store(id=stores[region])["arn"]
        assert arn.startswith(f"arn:aws:omics:{region}:")
        for other, store_id in stores.items():
            if other == region:
                continue
            with pytest.raises(botocore.exceptions.ClientError) as info:
                omics.get_reference_store(id=store_id)
            assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
            with pytest.raises(botocore.exceptions.ClientError) as info:
                omics.start_reference_import_job(
                    referenceStoreId=store_id,
                    roleArn=ROLE,
                    sources=[{"sourceFile": "s3://bucket/x.fa", "name": "xyz"}],
                )
            assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Each store imports from its own Region's bucket; the emulator records where from.
    for region, omics in clients.items():
        uri = _upload(s3_fasta, region, f"genome-{region}")
        job = _start(omics, stores[region], (uri, f"genome-{region}"))
        assert job["status"] == "COMPLETED"
        [source] = _job_stats(emulator, job["id"])["source_statuses"]
        assert (source["source_file"], source["bucket_region"]) == (uri, region)
    references = emulator.stats()["references"]
    for region, store_id in stores.items():
        assert [r["source_region"] for r in references[store_id]] == [region]


def test_the_same_region_rule_fails_a_source_of_another_region(
    emulator: EmulatorThread, s3_fasta: Callable[..., str]
) -> None:
    emulator.configure(same_region=True)
    omics = _omics(emulator, "eu-west-1")
    store_id = omics.create_reference_store(name="refs")["id"]
    here = _upload(s3_fasta, "eu-west-1", "local-genome")
    away = _upload(s3_fasta, "us-east-1", "remote-genome")
    job = _start(omics, store_id, (here, "local-genome"), (away, "remote-genome"))
    assert job["status"] == "COMPLETED_WITH_FAILURES"
    ok, failed = job["sources"]
    assert ok["status"] == "FINISHED" and ok["referenceId"]
    assert failed["status"] == "FAILED" and "referenceId" not in failed
    message = failed["statusMessage"]
    assert _bucket("us-east-1") in message and "us-east-1" in message and "eu-west-1" in message
    assert len(message) <= 127
    names = [r["name"] for r in omics.list_references(referenceStoreId=store_id)["references"]]
    assert names == ["local-genome"]
    recorded = _job_stats(emulator, job["id"])["source_statuses"]
    assert [s["bucket_region"] for s in recorded] == ["eu-west-1", "us-east-1"]
    # Every source of another Region: the whole job fails, as one whose sources all fail does.
    job = _start(omics, store_id, (away, "remote-genome"))
    assert job["status"] == "FAILED" and job["sources"][0]["status"] == "FAILED"


def test_without_the_rule_a_source_of_any_region_imports_and_its_region_is_recorded(
    emulator: EmulatorThread, s3_fasta: Callable[..., str]
) -> None:
    assert emulator.config()["same_region"] is False
    omics = _omics(emulator, "ap-southeast-2")
    store_id = omics.create_reference_store(name="refs")["id"]
    away = _upload(s3_fasta, "eu-west-1", "far-genome")
    job = _start(omics, store_id, (away, "far-genome"))
    assert job["status"] == "COMPLETED"
    [source] = _job_stats(emulator, job["id"])["source_statuses"]
    assert source["bucket_region"] == "eu-west-1"


def test_a_missing_bucket_is_a_missing_source_under_the_rule_too(
    emulator: EmulatorThread,
) -> None:
    emulator.configure(same_region=True)
    omics = _omics(emulator, "us-east-1")
    store_id = omics.create_reference_store(name="refs")["id"]
    job = _start(omics, store_id, ("s3://no-such-bucket-anywhere/x.fa", "ghost"))
    assert job["status"] == "FAILED"
    assert job["sources"][0]["statusMessage"].startswith("Source file not found")
    [source] = _job_stats(emulator, job["id"])["source_statuses"]
    assert source["bucket_region"] is None


def test_the_rule_is_a_setting_of_the_inspection_endpoint(emulator: EmulatorThread) -> None:
    url = f"{emulator.omics_endpoint_url}/_emulator/config"

    def post(body: object) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    status, config = post({"same_region": True})
    assert status == 200 and config["same_region"] is True
    status, answer = post({"same_region": "yes"})
    assert status == 400 and "same_region" in answer["message"]
    assert emulator.config()["same_region"] is True  # nothing changed by the refused call
    emulator.reset(settings=True)
    assert emulator.config()["same_region"] is False
    with pytest.raises(ValueError, match="same_region"):
        emulator.configure(same_region=1)  # type: ignore[arg-type]


def test_a_separate_emulator_can_enforce_the_rule_from_the_start(
    emulator_factory: Callable[..., EmulatorThread], s3_fasta: Callable[..., str]
) -> None:
    emu = emulator_factory(time_scale=0.001, same_region=True)
    assert emu.config()["same_region"] is True
    omics = _omics(emu, "eu-west-1")
    store_id = omics.create_reference_store(name="refs")["id"]
    away = _upload(s3_fasta, "us-east-1", "other-genome")
    job = _start(omics, store_id, (away, "other-genome"))
    assert job["status"] == "FAILED"


def test_the_command_line_turns_the_rule_on() -> None:
    from async_refimport.emulator._cli import build_parser

    assert build_parser().parse_args(["--same-region"]).same_region is True
    assert build_parser().parse_args([]).same_region is False
