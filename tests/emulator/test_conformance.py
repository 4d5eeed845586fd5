"""Every operation, through plain boto3 and aioboto3, checked against the botocore model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aioboto3
import pytest

from async_refimport.emulator import EmulatorThread, conformance_problems, make_fasta
from tests.helpers.emulator import ROLE, wait_job


def check(operation: str, response: dict[str, Any]) -> dict[str, Any]:
    assert conformance_problems(operation, response) == []
    return response


def test_every_operation_conforms_with_boto3(omics: Any, fasta_uri: Callable[..., str]) -> None:
    store = check("CreateReferenceStore", omics.create_reference_store(name="s", description="d"))
    assert isinstance(store["creationTime"], datetime)
    check("GetReferenceStore", omics.get_reference_store(id=store["id"]))
    stores = check("ListReferenceStores", omics.list_reference_stores())
    assert [s["id"] for s in stores["referenceStores"]] == [store["id"]]

    sources = [
        {
            "sourceFile": fasta_uri("conf-a"),
            "name": "conf-a",
            "description": "A",
            "tags": {"k": "v"},
        },
        {"sourceFile": fasta_uri("conf-b"), "name": "conf-b"},
    ]
    started = check(
        "StartReferenceImportJob",
        omics.start_reference_import_job(
            referenceStoreId=store["id"], roleArn=ROLE, sources=sources
        ),
    )
    assert started["status"] == "SUBMITTED"
    job = check("GetReferenceImportJob", wait_job(omics, store["id"], started["id"]))
    assert job["status"] == "COMPLETED"
    assert [s["status"] for s in job["sources"]] == ["FINISHED", "FINISHED"]
    jobs = check(
        "ListReferenceImportJobs", omics.list_reference_import_jobs(referenceStoreId=store["id"])
    )
    assert [j["id"] for j in jobs["importJobs"]] == [started["id"]]
    refs = check("ListReferences", omics.list_references(referenceStoreId=store["id"]))
    assert sorted(r["name"] for r in refs["references"]) == ["conf-a", "conf-b"]
    ref_id = job["sources"][0]["referenceId"]
    meta = check(
        "GetReferenceMetadata",
        omics.get_reference_metadata(referenceStoreId=store["id"], id=ref_id),
    )
    assert meta["name"] == "conf-a" and meta["status"] == "ACTIVE" and meta["description"] == "A"
    assert meta["creationJobId"] == started["id"]
    check("DeleteReference", omics.delete_reference(referenceStoreId=store["id"], id=ref_id))
    refs = omics.list_references(referenceStoreId=store["id"])["references"]
    assert [r["name"] for r in refs] == ["conf-b"]


async def test_every_operation_conforms_with_aioboto3(
    emulator: EmulatorThread, fasta_uri: Callable[..., str]
) -> None:
    uri = fasta_uri("aio-a")
    async with aioboto3.Session().client("omics", **emulator.client_kwargs(max_attempts=1)) as om:
        store = check("CreateReferenceStore", await om.create_reference_store(name="aio"))
        check("GetReferenceStore", await om.get_reference_store(id=store["id"]))
        check("ListReferenceStores", await om.list_reference_stores(maxResults=10))
        started = check(
            "StartReferenceImportJob",
            await om.start_reference_import_job(
                referenceStoreId=store["id"],
                roleArn=ROLE,
                clientToken="aio-token",
                sources=[{"sourceFile": uri, "name": "aio-a"}],
            ),
        )
        for _ in range(500):
            job = await om.get_reference_import_job(referenceStoreId=store["id"], id=started["id"])
            if job["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.01)
        check("GetReferenceImportJob", job)
        assert job["status"] == "COMPLETED"
        check(
            "ListReferenceImportJobs",
            await om.list_reference_import_jobs(referenceStoreId=store["id"]),
        )
        refs = check("ListReferences", await om.list_references(referenceStoreId=store["id"]))
        ref = refs["references"][0]
        check(
            "GetReferenceMetadata",
            await om.get_reference_metadata(referenceStoreId=store["id"], id=ref["id"]),
        )
        check(
            "DeleteReference", await om.delete_reference(referenceStoreId=store["id"], id=ref["id"])
        )


def test_md5_is_of_the_uppercased_sequence(
    omics: Any, store_id: str, s3_fasta: Callable[..., str]
) -> None:
    import hashlib

    text = make_fasta("md5", 130, 3)
    uri = s3_fasta("md5.fa", text.lower().replace(">md5", ">md5"))
    job = omics.start_reference_import_job(
        referenceStoreId=store_id, roleArn=ROLE, sources=[{"sourceFile": uri, "name": "md5-ref"}]
    )
    wait_job(omics, store_id, job["id"])
    ref = omics.list_references(referenceStoreId=store_id)["references"][0]
    seq = "".join(text.splitlines()[1:])
    assert ref["md5"] == hashlib.md5(seq.encode()).hexdigest()


def _import_many(omics: Any, store_id: str, fasta_uri: Callable[..., str], n: int) -> list[str]:
    job_ids = []
    for i in range(n):
        job = omics.start_reference_import_job(
            referenceStoreId=store_id,
            roleArn=ROLE,
            sources=[{"sourceFile": fasta_uri(f"page-{i}", i), "name": f"page-{i}"}],
        )
        wait_job(omics, store_id, job["id"])
        job_ids.append(job["id"])
    return job_ids


def test_pagination_of_both_lists(omics: Any, store_id: str, fasta_uri: Callable[..., str]) -> None:
    job_ids = _import_many(omics, store_id, fasta_uri, 5)
    pages = omics.get_paginator("list_reference_import_jobs").paginate(
        referenceStoreId=store_id, PaginationConfig={"PageSize": 2}
    )
    seen = [[j["id"] for j in p["importJobs"]] for p in pages]
    assert [len(p) for p in seen] == [2, 2, 1]
    assert [i for page in seen for i in page] == job_ids

    first = omics.list_references(referenceStoreId=store_id, maxResults=3)
    assert len(first["references"]) == 3 and "nextToken" in first
    rest = omics.list_references(
        referenceStoreId=store_id, maxResults=3, nextToken=first["nextToken"]
    )
    assert len(rest["references"]) == 2 and "nextToken" not in rest
    names = {r["name"] for r in first["references"] + rest["references"]}
    assert names == {f"page-{i}" for i in range(5)}


def test_filters(
    omics: Any, store_id: str, fasta_uri: Callable[..., str], s3_fasta: Callable[..., str]
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    _import_many(omics, store_id, fasta_uri, 2)
    bad = s3_fasta("filters-bad.fa", "not fasta")
    failed = omics.start_reference_import_job(
        referenceStoreId=store_id, roleArn=ROLE, sources=[{"sourceFile": bad, "name": "bad-one"}]
    )
    wait_job(omics, store_id, failed["id"])
    after = datetime.now(UTC) + timedelta(seconds=1)

    def jobs(**flt: Any) -> list[str]:
        return [
            j["id"]
            for j in omics.list_reference_import_jobs(referenceStoreId=store_id, filter=flt)[
                "importJobs"
            ]
        ]

    def refs(**flt: Any) -> list[str]:
        return [
            r["name"]
            for r in omics.list_references(referenceStoreId=store_id, filter=flt)["references"]
        ]

    assert jobs(status="FAILED") == [failed["id"]]
    assert len(jobs(status="COMPLETED")) == 2
    assert jobs(status="IN_PROGRESS") == []
    assert len(jobs(createdAfter=before, createdBefore=after)) == 3
    assert jobs(createdAfter=after) == []
    assert jobs(createdBefore=before) == []
    assert refs(name="page-1") == ["page-1"]
    assert refs(name="nope-nope") == []
    assert sorted(refs(createdAfter=before)) == ["page-0", "page-1"]
    assert refs(createdBefore=before) == []
    stores = omics.list_reference_stores(filter={"name": "test-store"})["referenceStores"]
    assert [s["id"] for s in stores] == [store_id]


@pytest.mark.parametrize("operation", ["list_reference_import_jobs", "list_references"])
def test_bad_next_token_is_a_validation_error(omics: Any, store_id: str, operation: str) -> None:
    with pytest.raises(omics.exceptions.ValidationException):
        getattr(omics, operation)(referenceStoreId=store_id, nextToken="garbage")


def test_host_prefix_can_be_disabled_by_environment(
    emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
    kw = emulator.client_kwargs()
    del kw["config"]  # no inject_host_prefix=False: the environment variable does it
    assert boto3.client("omics", **kw).list_reference_stores()["referenceStores"] == []
