"""The service rules the emulator models: quotas, one job per store, tokens, names, FASTA checks."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from async_refimport.emulator import EmulatorThread, bgzip, gzip_bytes, make_fasta
from tests.helpers.emulator import ROLE, wait_job


def start(
    omics: Any, store_id: str, *sources: tuple[str, str], token: str | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"clientToken": token} if token else {}
    return dict(
        omics.start_reference_import_job(
            referenceStoreId=store_id,
            roleArn=ROLE,
            sources=[{"sourceFile": uri, "name": name} for uri, name in sources],
            **kwargs,
        )
    )


def error_code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def test_store_quota(omics: Any, emulator: EmulatorThread) -> None:
    omics.create_reference_store(name="one")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.create_reference_store(name="two")
    assert error_code(exc) == ("ServiceQuotaExceededException", 402)
    emulator.configure(store_quota=2)
    omics.create_reference_store(name="two")


def test_quota_is_per_account_and_region(emulator: EmulatorThread) -> None:
    def client(key: str, region: str) -> Any:
        kw = emulator.client_kwargs(max_attempts=1) | {
            "aws_access_key_id": key,
            "region_name": region,
        }
        return boto3.client("omics", **kw)

    a = client("111111111111", "us-east-1").create_reference_store(name="a")
    b = client("222222222222", "us-east-1").create_reference_store(name="b")
    c = client("111111111111", "eu-west-1").create_reference_store(name="c")
    assert (
        ":us-east-1:111111111111:" in a["arn"]
        and ":222222222222:" in b["arn"]
        and ":eu-west-1:" in c["arn"]
    )
    # Another account does not see the store.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client("222222222222", "us-east-1").get_reference_store(id=a["id"])
    assert error_code(exc) == ("ResourceNotFoundException", 404)


def test_create_store_token_is_idempotent(omics: Any) -> None:
    a = omics.create_reference_store(name="tok", clientToken="store-token")
    b = omics.create_reference_store(name="tok", clientToken="store-token")
    assert a["id"] == b["id"]


def test_second_concurrent_start_is_refused_with_402(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    emulator.configure(time_scale=0.05)  # 1.5 s of overhead: the first job is surely active
    first = start(omics, store_id, (fasta_uri("busy-a"), "busy-a"))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        start(omics, store_id, (fasta_uri("busy-b"), "busy-b"))
    assert error_code(exc) == ("ServiceQuotaExceededException", 402)
    assert first["id"] in exc.value.response["Error"]["Message"]
    stats = emulator.stats()
    assert stats["rejected_concurrent_starts"] == 1
    assert len(stats["jobs"]) == 1
    emulator.configure(time_scale=0.001)
    wait_job(omics, store_id, first["id"])
    start(omics, store_id, (fasta_uri("busy-b"), "busy-b"))  # the store is free again


def test_client_token_idempotency(
    omics: Any, store_id: str, fasta_uri: Callable[..., str], emulator: EmulatorThread
) -> None:
    uri = fasta_uri("tok-a")
    a = start(omics, store_id, (uri, "tok-a"), token="t-1")
    b = start(omics, store_id, (uri, "tok-a"), token="t-1")  # replay while the job is active
    assert a["id"] == b["id"]
    wait_job(omics, store_id, a["id"])
    c = start(omics, store_id, (uri, "tok-a"), token="t-1")  # replay after it ended
    assert c["id"] == a["id"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        start(omics, store_id, (uri, "tok-other"), token="t-1")
    assert error_code(exc) == ("ValidationException", 400)
    assert "clientToken" in exc.value.response["Error"]["Message"]
    assert len(emulator.stats()["jobs"]) == 1


def test_tokens_are_forgotten_after_their_ttl(
    omics: Any, store_id: str, fasta_uri: Callable[..., str], emulator: EmulatorThread
) -> None:
    emulator.configure(token_ttl=0.05)
    uri = fasta_uri("ttl-a")
    a = start(omics, store_id, (uri, "ttl-a"), token="ttl")
    wait_job(omics, store_id, a["id"])
    time.sleep(0.1)
    b = start(omics, store_id, (uri, "ttl-a"), token="ttl")
    assert b["id"] != a["id"]  # a new job: the service no longer knew the token
    job = wait_job(omics, store_id, b["id"])
    assert job["status"] == "FAILED"  # and it hit the name imported by the first one
    assert "already exists" in job["sources"][0]["statusMessage"]


def test_forget_tokens(
    omics: Any, store_id: str, fasta_uri: Callable[..., str], emulator: EmulatorThread
) -> None:
    uri = fasta_uri("fgt-a")
    a = start(omics, store_id, (uri, "fgt-a"), token="fgt")
    wait_job(omics, store_id, a["id"])
    assert emulator.forget_tokens() == 1
    b = start(omics, store_id, (uri, "fgt-a"), token="fgt")
    assert b["id"] != a["id"]


def test_same_name_twice_gives_one_reference(
    omics: Any, store_id: str, fasta_uri: Callable[..., str], emulator: EmulatorThread
) -> None:
    job = start(
        omics, store_id, (fasta_uri("dup-1"), "same-name"), (fasta_uri("dup-2", 1), "same-name")
    )
    done = wait_job(omics, store_id, job["id"])
    assert done["status"] == "COMPLETED_WITH_FAILURES"
    first, second = done["sources"]
    assert first["status"] == "FINISHED" and first["referenceId"]
    assert second["status"] == "FAILED" and "same-name" in second["statusMessage"]
    refs = omics.list_references(referenceStoreId=store_id, filter={"name": "same-name"})[
        "references"
    ]
    assert len(refs) == 1
    # A later job with the name fails too, and each conflict is counted.
    again = wait_job(
        omics, store_id, start(omics, store_id, (fasta_uri("dup-3", 2), "same-name"))["id"]
    )
    assert again["status"] == "FAILED"
    assert emulator.stats()["name_conflicts"] == 2


def test_deleted_reference_frees_its_name(
    omics: Any, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    done = wait_job(omics, store_id, start(omics, store_id, (fasta_uri("del-1"), "del-name"))["id"])
    omics.delete_reference(referenceStoreId=store_id, id=done["sources"][0]["referenceId"])
    again = wait_job(
        omics, store_id, start(omics, store_id, (fasta_uri("del-1"), "del-name"))["id"]
    )
    assert again["status"] == "COMPLETED"


@pytest.mark.parametrize("packing", [gzip_bytes, bgzip], ids=["gzip", "bgzip"])
def test_compressed_fasta_imports(
    omics: Any, store_id: str, s3_fasta: Callable[..., str], packing: Callable[[str], bytes]
) -> None:
    text = make_fasta("chrZ", 2000, 5) + make_fasta("chrY", 300, 6)
    uri = s3_fasta(f"packed-{packing.__name__}.fa.gz", packing(text))
    done = wait_job(omics, store_id, start(omics, store_id, (uri, "packed"))["id"])
    assert done["status"] == "COMPLETED", done["sources"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a fasta file\n", "first record does not start with '>'"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "first record"),
        (b">chr1\nACGT\n>chr1\nACGT\n", "duplicate sequence name 'chr1'"),
        (b">chr1\nACGT12\n", "invalid sequence character"),
        (b"", "no records"),
        (bgzip(make_fasta("cut", 5000))[:40], "truncated"),
        (b"\x1f\x8bnot really gzip", "not a valid gzip"),
    ],
    ids=["text", "binary", "duplicate-names", "alphabet", "empty", "truncated-bgzip", "bad-gzip"],
)
def test_bad_sources_fail_with_a_message(
    omics: Any, store_id: str, s3_fasta: Callable[..., str], data: bytes, message: str
) -> None:
    uri = s3_fasta("bad-source.fa", data)
    done = wait_job(omics, store_id, start(omics, store_id, (uri, "bad-source"))["id"])
    assert done["status"] == "FAILED"
    assert done["statusMessage"]
    (src,) = done["sources"]
    assert src["status"] == "FAILED" and message in src["statusMessage"]
    assert "referenceId" not in src


def test_missing_object_fails_that_source_only(
    omics: Any, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    job = start(
        omics,
        store_id,
        (fasta_uri("here"), "here-ref"),
        ("s3://refimport-test/absent.fa", "absent-ref"),
        ("s3://no-such-bucket/x.fa", "nobucket"),
    )
    done = wait_job(omics, store_id, job["id"])
    assert done["status"] == "COMPLETED_WITH_FAILURES"
    assert [s["status"] for s in done["sources"]] == ["FINISHED", "FAILED", "FAILED"]
    assert "not found" in done["sources"][1]["statusMessage"]


def test_source_statuses_progress(
    omics: Any, emulator: EmulatorThread, store_id: str, s3_fasta: Callable[..., str]
) -> None:
    # 2 sources of 1000 emulated bases at 10 bases/s, scaled by 0.01: about 1 s each.
    emulator.configure(throughput=10.0, job_overhead=0.0, time_scale=0.01)
    meta = {"emulated-bases": "1000"}
    a = s3_fasta("prog-a.fa", make_fasta("a", 50), metadata=meta)
    b = s3_fasta("prog-b.fa", make_fasta("b", 50), metadata=meta)
    job = start(omics, store_id, (a, "prog-a"), (b, "prog-b"))
    seen: set[tuple[str, ...]] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = omics.get_reference_import_job(referenceStoreId=store_id, id=job["id"])
        seen.add((got["status"], *(s["status"] for s in got["sources"])))
        if got["status"] == "COMPLETED":
            break
        time.sleep(0.05)
    assert ("IN_PROGRESS", "IN_PROGRESS", "NOT_STARTED") in seen
    assert ("IN_PROGRESS", "FINISHED", "IN_PROGRESS") in seen
    assert ("COMPLETED", "FINISHED", "FINISHED") in seen
    (rec,) = emulator.stats()["jobs"]
    assert 1.5 < rec["completed_epoch"] - rec["created_epoch"] < 6


def test_no_auth_header_is_403(emulator: EmulatorThread) -> None:
    req = urllib.request.Request(
        f"{emulator.omics_endpoint_url}/referencestores", data=b"{}", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 403
    assert exc.value.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "message" in json.loads(exc.value.read())


def test_unsigned_boto3_is_403(emulator: EmulatorThread) -> None:
    kw = emulator.client_kwargs()
    kw["config"] = kw["config"].merge(Config(signature_version=botocore.UNSIGNED))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        boto3.client("omics", **kw).list_reference_stores()
    assert error_code(exc) == ("AccessDeniedException", 403)


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("get_reference_store", {"id": "9999999999"}),
        ("get_reference_import_job", {"referenceStoreId": "STORE", "id": "9999999999"}),
        ("get_reference_metadata", {"referenceStoreId": "STORE", "id": "9999999999"}),
        ("delete_reference", {"referenceStoreId": "STORE", "id": "9999999999"}),
        ("list_references", {"referenceStoreId": "9999999999"}),
        ("list_reference_import_jobs", {"referenceStoreId": "9999999999"}),
        (
            "start_reference_import_job",
            {
                "referenceStoreId": "9999999999",
                "roleArn": ROLE,
                "sources": [{"sourceFile": "s3://bucket/x.fa", "name": "xyz"}],
            },
        ),
    ],
)
def test_unknown_ids_are_404(omics: Any, store_id: str, call: str, kwargs: dict[str, Any]) -> None:
    kwargs = {k: store_id if v == "STORE" else v for k, v in kwargs.items()}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        getattr(omics, call)(**kwargs)
    assert error_code(exc) == ("ResourceNotFoundException", 404)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {
                "roleArn": "arn:short",
                "sources": [{"sourceFile": "s3://bucket/x.fa", "name": "xyz"}],
            },
            "roleArn",
        ),
        ({"roleArn": ROLE, "sources": []}, "sources"),
        (
            {"roleArn": ROLE, "sources": [{"sourceFile": "s3://bucket/x.fa", "name": "ab"}]},
            "sources.1.name",
        ),
        ({"roleArn": ROLE, "sources": [{"sourceFile": "http://x/y", "name": "abc"}]}, "sourceFile"),
        ({"roleArn": ROLE, "sources": [{"name": "abc"}]}, "Member must not be null"),
        (
            {"roleArn": ROLE, "sources": [{"sourceFile": "s3://bucket/x.fa", "name": "abc"}] * 101},
            "less than or equal to 100",
        ),
        (
            {
                "roleArn": ROLE,
                "clientToken": "x" * 128,
                "sources": [{"sourceFile": "s3://bucket/x.fa", "name": "abc"}],
            },
            "clientToken",
        ),
    ],
    ids=[
        "role-short",
        "no-sources",
        "name-short",
        "not-s3",
        "no-source-file",
        "too-many",
        "token-long",
    ],
)
def test_server_side_validation_is_400(
    emulator: EmulatorThread, store_id: str, kwargs: dict[str, Any], fragment: str
) -> None:
    kw = emulator.client_kwargs(max_attempts=1)
    kw["config"] = kw["config"].merge(Config(parameter_validation=False))
    omics = boto3.client("omics", **kw)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.start_reference_import_job(referenceStoreId=store_id, **kwargs)
    assert error_code(exc) == ("ValidationException", 400)
    assert fragment in exc.value.response["Error"]["Message"]


def test_validation_of_enums_and_ranges(emulator: EmulatorThread, store_id: str) -> None:
    kw = emulator.client_kwargs(max_attempts=1)
    kw["config"] = kw["config"].merge(Config(parameter_validation=False))
    omics = boto3.client("omics", **kw)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.list_reference_import_jobs(referenceStoreId=store_id, filter={"status": "DANCING"})
    assert "enum" in exc.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.list_references(referenceStoreId=store_id, maxResults=1000)
    assert error_code(exc) == ("ValidationException", 400)
