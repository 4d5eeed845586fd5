"""Staging sources into a bucket of the store's Region (issue 22): S3 copies, HTTP(S), files.

Against moto's S3 (buckets in several Regions on one server, tests.helpers.staging_s3) and a
local HTTP file server (tests.helpers.sources); what a test checks is what a row would get: the
object staged complete and correct (with its SHA-256 checksum), or a StagingError of a code, with
nothing importable left behind and no multipart upload open.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from async_refimport.staging import (
    StagedObject,
    Stager,
    StagingArea,
    StagingCode,
    StagingError,
    StagingLedger,
    UploadState,
)
from tests.helpers.sources import SourceServer
from tests.helpers.staging_s3 import SMALL, StagingS3

pytestmark = pytest.mark.timeout(120)


def body(size: int, seed: int = 0) -> bytes:
    """``size`` bytes of FASTA-ish noise, different per seed (cheap, not compressible)."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def stored(s3: StagingS3, obj: StagedObject) -> bytes:
    """The staged object's bytes, as S3 holds them."""
    data: bytes = s3.client("eu-west-1").get_object(Bucket=obj.bucket, Key=obj.key)["Body"].read()
    return data


def open_uploads(s3: StagingS3, area: StagingArea) -> list[str]:
    """Keys of the multipart uploads S3 lists under the area's prefix."""
    page = s3.client(area.region).list_multipart_uploads(Bucket=area.bucket, Prefix=area.prefix)
    return [u["Key"] for u in page.get("Uploads", [])]


def keys(s3: StagingS3, area: StagingArea) -> list[str]:
    """Every object under the area's prefix."""
    page = s3.client(area.region).list_objects_v2(Bucket=area.bucket, Prefix=area.prefix)
    return [o["Key"] for o in page.get("Contents", [])]


def made(s3: StagingS3, obj: StagedObject) -> int:
    """How many requests made the object (PutObject, CopyObject, CompleteMultipartUpload)."""
    writes = s3.writes()
    name = f"{obj.bucket}/{obj.key}"
    return writes["put"].get(name, 0) + writes["complete"].get(name, 0)


def source_bucket(
    s3: StagingS3, region: str, key: str, data: bytes, *, multipart: bool = False
) -> str:
    """A bucket of ``region`` holding ``data`` at ``key`` (uploaded in parts when asked)."""
    bucket = s3.bucket(region)
    client = s3.client(region)
    if not multipart:
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    half = len(data) // 2
    parts = []
    for number, piece in ((1, data[:half]), (2, data[half:])):
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=piece
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return f"s3://{bucket}/{key}"


# -- S3 in another Region: server-side copies ---------------------------------------------------


async def test_an_object_of_another_region_is_copied_with_a_checksum_then_reused(
    staging_s3: StagingS3, area: StagingArea, stager: Stager
) -> None:
    data = body(50_000)
    source = source_bucket(staging_s3, "us-east-1", "refs/GRCh38.fa.gz", data)
    assert await stager.needs_staging(source, "eu-west-1", endpoint_url=staging_s3.endpoint)
    assert not await stager.needs_staging(source, "us-east-1", endpoint_url=staging_s3.endpoint)

    first = await stager.stage(source, area, endpoint_url=staging_s3.endpoint)
    md5 = hashlib.md5(data).hexdigest()
    assert first.uri == f"s3://{area.bucket}/staged/md5/{md5}/GRCh38.fa.gz"
    assert (first.size, first.reused) == (len(data), False)
    assert first.sha256
    assert stored(staging_s3, first) == data

    again = await stager.stage(source, area, md5=md5, endpoint_url=staging_s3.endpoint)
    assert again.reused and again.uri == first.uri
    assert made(staging_s3, first) == 1


async def test_a_large_object_is_copied_in_parts_and_an_md5_against_its_etag_fails(
    staging_s3: StagingS3, area: StagingArea, stager: Stager
) -> None:
    data = body(300_000, seed=1)  # over SMALL.copy_threshold: UploadPartCopy, 64 KiB parts
    source = source_bucket(staging_s3, "us-west-2", "big/chr1.fasta", data, multipart=True)
    staged = await stager.stage(source, area, endpoint_url=staging_s3.endpoint)
    assert staged.key.startswith("staged/s3/") and staged.key.endswith("/chr1.fasta")
    assert stored(staging_s3, staged) == data
    assert made(staging_s3, staged) == 1
    assert open_uploads(staging_s3, area) == []

    plain = source_bucket(staging_s3, "us-west-2", "small/x.fa", body(1000))
    with pytest.raises(StagingError) as raised:
        await stager.stage(plain, area, md5="0" * 32, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.MD5_MISMATCH


async def test_an_md5_for_a_multipart_s3_source_is_not_checked_and_a_warning_says_so(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    data = body(300_000, seed=7)
    source = source_bucket(staging_s3, "us-west-2", "parts/chr7.fasta", data, multipart=True)
    with caplog.at_level(logging.WARNING, logger="async_refimport"):
        staged = await stager.stage(
            source, area, md5=hashlib.md5(b"other").hexdigest(), endpoint_url=staging_s3.endpoint
        )
    assert stored(staging_s3, staged) == data  # staged all the same: its md5 cannot be told
    warned = [r.getMessage() for r in caplog.records if "md5_not_checked" in r.getMessage()]
    assert len(warned) == 1 and "uploaded in parts" in warned[0] and source in warned[0]


async def test_a_missing_object_or_bucket_is_not_found(
    staging_s3: StagingS3, area: StagingArea, stager: Stager
) -> None:
    bucket = staging_s3.bucket("us-east-1")
    for source in (f"s3://{bucket}/nope.fa", "s3://no-such-bucket-staging/x.fa"):
        with pytest.raises(StagingError) as raised:
            await stager.stage(source, area, endpoint_url=staging_s3.endpoint)
        assert raised.value.code is StagingCode.NOT_FOUND, str(raised.value)
        assert str(raised.value).startswith(f"staging {source}: ")


async def test_a_staging_bucket_in_another_region_is_a_set_up_error(
    staging_s3: StagingS3, stager: Stager
) -> None:
    bucket = staging_s3.bucket("ap-southeast-2")
    wrong = StagingArea("eu-west-1", bucket, "p/")
    with pytest.raises(StagingError) as raised:
        await stager.check_area(wrong, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.WRONG_REGION
    assert "ap-southeast-2" in str(raised.value)
    await stager.check_area(
        StagingArea("ap-southeast-2", bucket, "p/"), endpoint_url=staging_s3.endpoint
    )


# -- HTTP(S) ------------------------------------------------------------------------------------


async def test_an_http_source_is_streamed_in_parts_with_its_md5_checked(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, source_server: SourceServer
) -> None:
    data = body(400_000, seed=2)  # 7 parts of 64 KiB
    url = source_server.add("/pub/GRCm39.fa.gz", data)
    md5 = hashlib.md5(data).hexdigest()
    staged = await stager.stage(url, area, md5=md5.upper(), endpoint_url=staging_s3.endpoint)
    assert staged.key == f"staged/md5/{md5}/GRCm39.fa.gz"
    assert (staged.md5, staged.size) == (md5, len(data))
    assert staged.sha256
    head = staging_s3.client(area.region).head_object(Bucket=area.bucket, Key=staged.key)
    assert head["ETag"].endswith('-7"')  # 7 parts
    assert stored(staging_s3, staged) == data

    # Reused by a HEAD: the server is not asked again, nothing is written.
    asked = len(source_server.hits())
    again = await stager.stage(url, area, md5=md5, endpoint_url=staging_s3.endpoint)
    assert again.reused and len(source_server.hits()) == asked
    assert made(staging_s3, staged) == 1


async def test_an_http_source_without_md5_is_keyed_by_url_and_validators(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, source_server: SourceServer
) -> None:
    data = body(100_000, seed=3)
    url = source_server.add("/a/b/ecoli.fna", data)
    first = await stager.stage(url, area, endpoint_url=staging_s3.endpoint)
    assert first.key.startswith("staged/url/") and first.key.endswith("/ecoli.fna")
    again = await stager.stage(url, area, endpoint_url=staging_s3.endpoint)
    assert again.reused and again.key == first.key
    assert made(staging_s3, first) == 1


async def test_an_md5_mismatch_fails_before_anything_is_completed(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, source_server: SourceServer
) -> None:
    url = source_server.add("/bad.fa", body(300_000, seed=4))
    with pytest.raises(StagingError) as raised:
        await stager.stage(url, area, md5="f" * 32, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.MD5_MISMATCH
    assert "ffffffff" in str(raised.value)
    assert keys(staging_s3, area) == [] and open_uploads(staging_s3, area) == []

    small = source_server.add("/small-bad.fa", b">x\nACGT\n")
    with pytest.raises(StagingError) as raised:
        await stager.stage(small, area, md5="0" * 32, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.MD5_MISMATCH
    assert keys(staging_s3, area) == []


async def test_a_truncated_download_fails_and_leaves_nothing(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, source_server: SourceServer
) -> None:
    url = source_server.add("/short.fa", body(300_000, seed=5), truncate_at=150_000)
    with pytest.raises(StagingError) as raised:
        await stager.stage(url, area, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.TRUNCATED
    assert "300000" in str(raised.value)
    assert keys(staging_s3, area) == [] and open_uploads(staging_s3, area) == []


async def test_statuses_and_redirects(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, source_server: SourceServer
) -> None:
    source_server.add("/real.fa", body(5000, seed=6))
    gone = source_server.status("/gone.fa", 404)
    with pytest.raises(StagingError) as raised:
        await stager.stage(gone, area, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.NOT_FOUND

    denied = source_server.status("/denied.fa", 403)
    with pytest.raises(StagingError) as raised:
        await stager.stage(denied, area, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.ACCESS_DENIED

    loop = source_server.redirect("/loop.fa", "/real.fa", hops=SMALL.max_redirects + 1)
    with pytest.raises(StagingError) as raised:
        await stager.stage(loop, area, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.TOO_MANY_REDIRECTS

    moved = source_server.redirect("/moved.fa", "/real.fa", hops=SMALL.max_redirects)
    staged = await stager.stage(moved, area, endpoint_url=staging_s3.endpoint)
    assert stored(staging_s3, staged) == body(5000, seed=6)

    flaky = source_server.add("/flaky.fa", body(5000, seed=7), fail_first=1)
    assert (await stager.stage(flaky, area, endpoint_url=staging_s3.endpoint)).size == 5000


async def test_gzip_bytes_are_passed_through_unchanged(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, source_server: SourceServer
) -> None:
    packed = gzip.compress(b">chr1\n" + b"ACGT" * 50_000)
    url = source_server.add("/x.fa.gz", packed, headers={"Content-Encoding": "gzip"})
    staged = await stager.stage(url, area, endpoint_url=staging_s3.endpoint)
    assert stored(staging_s3, staged) == packed


async def test_userinfo_never_reaches_a_message_or_the_ledger(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, source_server: SourceServer
) -> None:
    url = source_server.status("/secret.fa", 404).replace("http://", "http://admin:hunter2@")
    with pytest.raises(StagingError) as raised:
        await stager.stage(url, area, endpoint_url=staging_s3.endpoint)
    assert "hunter2" not in str(raised.value) and "***@" in str(raised.value)


# -- local files --------------------------------------------------------------------------------


async def test_local_files_by_path_or_file_url(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, tmp_path: Path
) -> None:
    data = body(200_000, seed=8)
    path = tmp_path / "lab genome.fa"
    path.write_bytes(data)
    staged = await stager.stage(str(path), area, endpoint_url=staging_s3.endpoint)
    assert staged.key == f"staged/sha256/{hashlib.sha256(data).hexdigest()}/lab_genome.fa"
    assert stored(staging_s3, staged) == data
    again = await stager.stage(path.as_uri(), area, endpoint_url=staging_s3.endpoint)
    assert again.reused and again.key == staged.key

    with pytest.raises(StagingError) as raised:
        await stager.stage(str(path), area, md5="1" * 32, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.MD5_MISMATCH
    with pytest.raises(StagingError) as raised:
        await stager.stage(str(tmp_path / "none.fa"), area, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.NOT_FOUND
    with pytest.raises(StagingError) as raised:
        await stager.stage(str(tmp_path), area, endpoint_url=staging_s3.endpoint)
    assert raised.value.code is StagingCode.UNSUPPORTED
    assert open_uploads(staging_s3, area) == []


async def test_two_stores_of_a_region_staging_one_source_make_one_object(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, tmp_path: Path
) -> None:
    import anyio

    path = tmp_path / "shared.fa"
    path.write_bytes(body(300_000, seed=9))
    found: list[StagedObject] = []

    async def one() -> None:
        found.append(await stager.stage(str(path), area, endpoint_url=staging_s3.endpoint))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(one)
    assert len({o.key for o in found}) == 1
    assert sorted(o.reused for o in found) == [False, True, True]
    assert made(staging_s3, found[0]) == 1


# -- the ledger and orphans -----------------------------------------------------------------


async def test_orphaned_uploads_under_the_prefix_are_aborted(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, tmp_path: Path
) -> None:
    client = staging_s3.client(area.region)
    client.create_multipart_upload(Bucket=area.bucket, Key="staged/md5/x/orphan.fa")
    client.create_multipart_upload(Bucket=area.bucket, Key="elsewhere/keep.fa")
    ledger = StagingLedger(tmp_path / "ledger.sqlite")
    mine = client.create_multipart_upload(Bucket=area.bucket, Key="staged/md5/y/mine.fa")[
        "UploadId"
    ]
    await ledger.begin(area.bucket, "staged/md5/y/mine.fa", mine, source="/x", part_size=1)
    await ledger.aclose()

    # Unknown to the ledger and younger than orphan_age: maybe another run's, left alone.
    assert await stager.abort_orphans(area, endpoint_url=staging_s3.endpoint) == 0
    assert sorted(open_uploads(staging_s3, area)) == [
        "staged/md5/x/orphan.fa",
        "staged/md5/y/mine.fa",
    ]
    # Once older than orphan_age (0 here) it is abandoned.
    async with Stager(tmp_path / "ledger.sqlite", limits=replace(SMALL, orphan_age=0)) as aged:
        assert await aged.abort_orphans(area, endpoint_url=staging_s3.endpoint) == 1
    assert open_uploads(staging_s3, area) == ["staged/md5/y/mine.fa"]
    listed = client.list_multipart_uploads(Bucket=area.bucket)["Uploads"]
    assert sorted(u["Key"] for u in listed) == ["elsewhere/keep.fa", "staged/md5/y/mine.fa"]


async def test_an_upload_created_before_a_crash_could_record_it_is_aborted(
    staging_s3: StagingS3, area: StagingArea, stager: Stager, tmp_path: Path
) -> None:
    # The intent is written before CreateMultipartUpload; the crash came before begin().
    async with StagingLedger(tmp_path / "ledger.sqlite") as ledger:
        await ledger.intend(area.bucket, "staged/md5/z/crashed.fa")
    client = staging_s3.client(area.region)
    client.create_multipart_upload(Bucket=area.bucket, Key="staged/md5/z/crashed.fa")

    assert await stager.abort_orphans(area, endpoint_url=staging_s3.endpoint) == 1
    assert open_uploads(staging_s3, area) == []


async def test_a_run_sharing_the_prefix_leaves_another_runs_upload_in_flight_alone(
    staging_s3: StagingS3, area: StagingArea, tmp_path: Path, source_server: SourceServer
) -> None:
    import anyio

    data = body(640_000, seed=21)
    url = source_server.add("/shared.fa", data, chunk_delay=0.05)
    other_ledger = tmp_path / "other.sqlite"
    found: list[StagedObject] = []
    async with (
        Stager(tmp_path / "mine.sqlite", limits=SMALL) as mine,
        Stager(other_ledger, limits=SMALL) as other,
    ):

        async def stage_other() -> None:
            found.append(await other.stage(url, area, endpoint_url=staging_s3.endpoint))

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                group.start_soon(stage_other)
                await _until_parts(other_ledger, area, 1)
                assert await mine.abort_orphans(area, endpoint_url=staging_s3.endpoint) == 0
                assert len(open_uploads(staging_s3, area)) == 1
    (staged,) = found
    assert stored(staging_s3, staged) == data
    assert made(staging_s3, staged) == 1 and open_uploads(staging_s3, area) == []


async def test_an_upload_interrupted_resumes_sending_only_missing_parts(
    staging_s3: StagingS3, area: StagingArea, tmp_path: Path, source_server: SourceServer
) -> None:
    """A run cut short after some parts: the next one asks for the rest with a Range."""
    import anyio

    data = body(640_000, seed=10)  # 10 parts
    url = source_server.add("/resume.fa", data, chunk_delay=0.05)
    ledger_path = tmp_path / "ledger.sqlite"
    async with Stager(ledger_path, limits=SMALL) as first:
        with anyio.move_on_after(60) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(partial(first.stage, url, area, endpoint_url=staging_s3.endpoint))
                await _until_parts(ledger_path, area, 3)
                scope.cancel()
    async with StagingLedger(ledger_path) as ledger:
        (upload,) = await ledger.uploads(area.bucket)
        assert upload.state is UploadState.UPLOADING
        had = await ledger.parts(upload.upload_id)
    async with Stager(ledger_path, limits=SMALL) as second:
        staged = await second.stage(url, area, endpoint_url=staging_s3.endpoint)
    assert stored(staging_s3, staged) == data
    assert len(had) >= 3
    missing = min(n for n in range(1, 12) if n not in had)
    ranges = [h.range for h in source_server.hits("/resume.fa") if h.range]
    assert ranges == [f"bytes={(missing - 1) * SMALL.part_size}-"]
    assert made(staging_s3, staged) == 1 and open_uploads(staging_s3, area) == []


async def _until_parts(path: Path, area: StagingArea, count: int) -> None:
    import anyio

    async with StagingLedger(path) as ledger:
        while True:
            for upload in await ledger.uploads(area.bucket):
                if len(await ledger.parts(upload.upload_id)) >= count:
                    return
            await anyio.sleep(0.02)


def test_env_is_isolated() -> None:
    assert os.environ["AWS_ACCESS_KEY_ID"].startswith("AKIAEMULATOR")


async def test_a_source_over_the_size_limit_is_too_large_before_anything_is_sent(
    staging_s3: StagingS3, area: StagingArea, tmp_path: Path, source_server: SourceServer
) -> None:
    from dataclasses import replace

    data = body(5000, seed=11)
    path = tmp_path / "big.fa"
    path.write_bytes(data)
    url = source_server.add("/big.fa", data)
    s3_source = source_bucket(staging_s3, "us-east-1", "big.fa", data)
    async with Stager(tmp_path / "ledger.sqlite", limits=replace(SMALL, max_bytes=4096)) as small:
        for source, md5 in (
            (str(path), None),
            (str(path), hashlib.md5(data).hexdigest()),
            (url, None),
            (s3_source, None),
        ):
            with pytest.raises(StagingError) as raised:
                await small.stage(source, area, md5=md5, endpoint_url=staging_s3.endpoint)
            assert raised.value.code is StagingCode.TOO_LARGE, (source, str(raised.value))
            assert "5000 bytes" in str(raised.value)
    assert keys(staging_s3, area) == [] and open_uploads(staging_s3, area) == []


async def test_an_upload_of_a_source_that_changed_since_is_superseded_and_aborted(
    staging_s3: StagingS3, area: StagingArea, tmp_path: Path, source_server: SourceServer
) -> None:
    import anyio

    old, new = body(640_000, seed=12), body(640_000, seed=13)
    url = source_server.add("/changing.fa", old, chunk_delay=0.05)
    ledger_path = tmp_path / "ledger.sqlite"
    async with Stager(ledger_path, limits=SMALL) as first:
        with anyio.move_on_after(60) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(partial(first.stage, url, area, endpoint_url=staging_s3.endpoint))
                await _until_parts(ledger_path, area, 2)
                scope.cancel()
    assert len(open_uploads(staging_s3, area)) == 1
    source_server.add("/changing.fa", new)  # replaced at the same URL: another ETag
    async with Stager(ledger_path, limits=SMALL) as second:
        staged = await second.stage(url, area, endpoint_url=staging_s3.endpoint)
        assert stored(staging_s3, staged) == new
        # The old version's upload would never be completed: it is aborted, and only it.
        assert await second.abort_orphans(area, endpoint_url=staging_s3.endpoint) == 1
    assert open_uploads(staging_s3, area) == [] and keys(staging_s3, area) == [staged.key]
