"""The manifest's optional md5 column: the source file's checksum as NCBI and Ensembl publish it
(32 hex digits, any case), carried as ImportRequest.source_md5; anything else a row error naming
the column."""

from __future__ import annotations

from pathlib import Path

from async_refimport.manifest.model import ManifestDefaults
from async_refimport.manifest.rows import parse
from tests.helpers.common import ROLE_ARN, STORE_ID

MD5 = "0123456789abcdef0123456789abcdef"


def test_the_manifest_md5_column_is_the_sources_checksum(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "source_file,name,md5\n"
        f"s3://genomes/a.fa,aaa,{MD5.upper()}\n"
        "s3://genomes/b.fa,bbb,not-an-md5\n"
        "s3://genomes/c.fa,ccc,\n"
    )
    defaults = ManifestDefaults(STORE_ID, ROLE_ARN, "us-east-1")
    with path.open("rb") as stream:
        manifest = parse(stream, str(path), "csv", defaults, False)
    assert [(r.name, r.source_md5) for r in manifest.requests] == [("aaa", MD5), ("ccc", None)]
    [error] = manifest.errors
    assert (error.line, error.field) == (3, "md5") and "32 hex digits" in error.reason


def test_a_remote_clients_source_must_be_s3() -> None:
    from async_refimport.manifest.model import RemoteLimits
    from async_refimport.manifest.reader import check_objects

    defaults = ManifestDefaults(STORE_ID, ROLE_ARN, "us-east-1", stageable=True)
    rows = [
        {"source_file": "https://ftp.example.org/g.fa.gz", "name": "web"},
        {"source_file": "/etc/passwd.fa", "name": "disk"},
        {"source_file": "file:///srv/g.fa", "name": "file"},
        {"source_file": "s3://genomes/g.fa", "name": "fine", "md5": MD5},
    ]
    manifest = check_objects(rows, defaults, remote=RemoteLimits())
    assert [r.name for r in manifest.requests] == ["fine"]
    assert [(e.line, e.field) for e in manifest.errors] == [
        (1, "source_file"),
        (2, "source_file"),
        (3, "source_file"),
    ]
    assert all("the worker does not stage" in e.reason for e in manifest.errors)
