"""Staging areas, source kinds and keys: what a user writes, and the errors that name it."""

from __future__ import annotations

import pytest

from async_refimport.staging import (
    SourceKind,
    StagingArea,
    StagingCode,
    StagingError,
    StagingLimits,
    basename_of,
    local_path,
    parse_area_uri,
    parse_s3_uri,
    parse_staging,
    source_kind,
)
from async_refimport.staging.keys import file_key, http_key, md5_key, plain_md5_etag, s3_key


def test_a_staging_spec_is_a_region_and_an_s3_prefix() -> None:
    area = parse_staging(" eu-west-1=s3://my-staging/refimport ")
    assert area == StagingArea("eu-west-1", "my-staging", "refimport/")
    assert str(area) == "eu-west-1=s3://my-staging/refimport/"
    assert parse_staging("us-east-1=s3://b-1").prefix == ""
    assert parse_area_uri("ap-south-1", "s3://bkt/a/b/").uri("a/b/k.fa") == "s3://bkt/a/b/k.fa"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("s3://bucket/prefix/", "expected REGION=s3://bucket/prefix/"),
        ("Europe=s3://bucket/p/", "'Europe' is not a Region name"),
        ("eu-west-1=https://bucket/p/", "expected an s3://bucket/prefix/ URI"),
        ("eu-west-1=s3://Bad_Bucket/p/", "'Bad_Bucket' is not an S3 bucket name"),
        ("eu-west-1=s3://bucket//p/", "empty path segment"),
    ],
)
def test_a_bad_staging_spec_names_its_problem(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_staging(spec)


def test_source_kinds() -> None:
    assert source_kind("s3://b/k.fa") is SourceKind.S3
    assert source_kind("HTTPS://ftp.ensembl.org/x.fa.gz") is SourceKind.HTTP
    assert source_kind("http://lab/x.fa") is SourceKind.HTTP
    assert source_kind("file:///data/x.fa") is SourceKind.FILE
    assert source_kind("relative/x.fa") is SourceKind.FILE
    with pytest.raises(ValueError, match="ftp:// sources cannot be staged"):
        source_kind("ftp://user:pw@host/x.fa")
    with pytest.raises(ValueError, match=r"\*\*\*@host"):
        source_kind("ftp://user:pw@host/x.fa")


def test_names_and_paths() -> None:
    assert basename_of("https://h/a/GRCh38.fa.gz?token=1#x") == "GRCh38.fa.gz"
    assert basename_of("s3://b/dir/with space?.fa") == "with_space_.fa"
    assert basename_of("/data/../x.fasta") == "x.fasta"
    assert basename_of("https://h/") == "source"
    assert local_path("file:///data/my%20genome.fa") == "/data/my genome.fa"
    assert local_path("/data/x.fa") == "/data/x.fa"
    with pytest.raises(ValueError, match="another host"):
        local_path("file://server/x.fa")
    assert parse_s3_uri("s3://bucket/a/b.fa") == ("bucket", "a/b.fa")
    with pytest.raises(ValueError):
        parse_s3_uri("s3://bucket/")


def test_keys_are_content_addressed() -> None:
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    assert md5_key("p/", md5.upper(), "x.fa") == f"p/md5/{md5}/x.fa"
    with pytest.raises(ValueError):
        md5_key("p/", "nope", "x.fa")
    assert file_key("", "a" * 64, "x.fa") == f"sha256/{'a' * 64}/x.fa"
    assert s3_key("p/", '"abc-2"', 10, "x.fa") == s3_key("p/", "abc-2", 10, "x.fa")
    assert s3_key("p/", "abc-2", 10, "x.fa") != s3_key("p/", "abc-2", 11, "x.fa")
    one = http_key("p/", "http://u:pw@h/x.fa", "x.fa", etag='"1"', last_modified=None, length=5)
    assert one == http_key("p/", "http://h/x.fa", "x.fa", etag='"1"', last_modified=None, length=5)
    assert one != http_key("p/", "http://h/x.fa", "x.fa", etag='"2"', last_modified=None, length=5)
    assert plain_md5_etag(f'"{md5}"', encrypted=False) == md5
    assert plain_md5_etag(f'"{md5}"', encrypted=True) is None
    assert plain_md5_etag('"abc-2"', encrypted=False) is None


def test_errors_are_one_line_and_redacted() -> None:
    error = StagingError(StagingCode.TRUNCATED, "https://me:secret@h/x.fa", "10 of\n20 bytes")
    assert str(error) == "staging https://***@h/x.fa: 10 of\\n20 bytes"
    assert error.code is StagingCode.TRUNCATED and not error.retryable
    assert StagingError(StagingCode.UNREADABLE, "x", "y").retryable


def test_limits_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError):
        StagingLimits(parts_in_flight=8, parts_in_memory=4)
    with pytest.raises(ValueError):
        StagingLimits(part_size=0)
