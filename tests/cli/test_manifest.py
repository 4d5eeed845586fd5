"""Manifest parsing: every format, every kind of error, with the exact line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from async_refimport._errors import ManifestError
from async_refimport._manifest import ManifestDefaults, format_error, read_manifest

STORE = "1234567890"
ROLE = "arn:aws:iam::123456789012:role/OmicsImport"
DEFAULTS = ManifestDefaults(store_id=STORE, role_arn=ROLE, region="us-east-1")


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def messages(path: Path, defaults: ManifestDefaults = DEFAULTS) -> list[str]:
    return [format_error(e) for e in read_manifest(path, defaults).errors]


def test_csv_rows_tags_overrides_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.csv",
        "source_file,name,description,tags,store_id,role_arn,region\n"
        's3://bkt/a.fa,hg38,Human,"{""env"": ""prod""}",,,\n'
        "\n"
        "s3://bkt/b.fasta.gz,mm39,,env=dev;team=genomics,9876543210,,eu-west-1\n",
    )
    m = read_manifest(path, DEFAULTS)
    assert m.errors == []
    assert [r.line for r in m.rows] == [2, 4]
    a, b = m.requests
    assert (a.store_id, a.role_arn, a.region, a.description) == (STORE, ROLE, "us-east-1", "Human")
    assert dict(a.tags) == {"env": "prod"}
    assert (b.store_id, b.region, b.description) == ("9876543210", "eu-west-1", None)
    assert dict(b.tags) == {"env": "dev", "team": "genomics"}


def test_tsv_and_format_override(tmp_path: Path) -> None:
    text = "name\tsource_file\tdescription\nhg38\ts3://bkt/a.fa\tA tab, with comma\n"
    m = read_manifest(write(tmp_path, "m.tsv", text), DEFAULTS)
    assert m.errors == [] and m.requests[0].description == "A tab, with comma"
    m2 = read_manifest(write(tmp_path, "m.txt", text), DEFAULTS, format="tsv")
    assert m2.requests == m.requests


def test_jsonl_with_api_names_and_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps({"sourceFile": "s3://bkt/a.fa", "name": "hg38", "tags": {"k": "v"}}),
        "",
        json.dumps(
            {
                "source_file": "s3://bkt/b.fa",
                "name": "mm39",
                "referenceStoreId": "5555555555",
                "roleArn": ROLE,
                "region": "eu-west-1",
            }
        ),
    ]
    m = read_manifest(write(tmp_path, "m.ndjson", "\n".join(lines) + "\n"), DEFAULTS)
    assert m.errors == []
    assert [r.line for r in m.rows] == [1, 3]
    assert dict(m.requests[0].tags) == {"k": "v"}
    assert (m.requests[1].store_id, m.requests[1].region) == ("5555555555", "eu-west-1")


def test_csv_every_error_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.csv",
        "source_file,name,tags,colour\n"  # 1: unknown column
        "s3://bkt/ok.fa,good-one,,red\n"  # 2: fine
        "http://bkt/a.fa,x,,\n"  # 3: bad URI and name too short
        "\n"  # 4: blank
        "s3://bkt/notes.txt,notes,,\n"  # 5: not a FASTA name
        "s3://bkt/c.fa,good-one,,\n"  # 6: repeated name
        "s3://bkt/d.fa,tagged,novalue,\n"  # 7: malformed tags
        "s3://bkt/e.fa,short-row\n",  # 8: wrong field count
    )
    m = read_manifest(path, DEFAULTS)
    got = [format_error(e) for e in m.errors]
    p = str(path)
    assert (
        got[0]
        == f"{p}:1: colour: unknown column 'colour' (expected: source_file, name, description, tags, store_id, role_arn, region)"
    )
    lines = sorted({e.line for e in m.errors if e.line})
    assert lines == [1, 3, 5, 6, 7, 8]
    assert any(s.startswith(f"{p}:3: source_file:") for s in got)
    assert any(s.startswith(f"{p}:3: name: must be 3..255") for s in got)
    assert any(s.startswith(f"{p}:5: source_file: must name a FASTA file") for s in got)
    assert f"{p}:6: name: 'good-one' is repeated for store {STORE} (first on line 2)" in got
    assert any(s.startswith(f"{p}:7: tags:") for s in got)
    assert f"{p}:8: row: has 2 fields, the header has 4" in got
    assert [r.line for r in m.rows] == [2]
    with pytest.raises(ManifestError) as info:
        m.raise_for_errors()
    assert len(info.value.errors) == len(m.errors)


def test_same_name_in_two_stores_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.csv",
        "source_file,name,store_id\ns3://bkt/a.fa,hg38,1111111111\ns3://bkt/a.fa,hg38,2222222222\n",
    )
    assert messages(path) == []


def test_missing_columns_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "name,description\nhg38,x\n")
    no_defaults = ManifestDefaults(region="us-east-1")
    got = messages(path, no_defaults)
    p = str(path)
    assert got == [
        f"{p}:1: source_file: required column is missing",
        f"{p}:1: store_id: no store_id column and no --store-id given",
        f"{p}:1: role_arn: no role_arn column and no --role-arn given",
    ]


def test_missing_region_everywhere(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "source_file,name\ns3://bkt/a.fa,hg38\n")
    got = messages(path, ManifestDefaults(store_id=STORE, role_arn=ROLE))
    assert got == [f"{path}:2: region: no region column, no --region and no AWS_REGION configured"]


def test_jsonl_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.jsonl",
        b'{"source_file": "s3://bkt/a.fa", "name": "hg38"}\n'
        b"{not json\n"
        b"[1, 2]\n"
        b'{"source_file": "s3://bkt/b.fa", "name": 7}\n'
        b'{"source_file": "s3://bkt/c.fa", "name": "ok-name", "colour": "red"}\n'
        b'{"name": "nosource"}\n'
        b'{"source_file": "s3://bkt/\xff.fa", "name": "latin1"}\n'
        b'{"source_file": "s3://bkt/d.fa", "name": "tags", "tags": {"k": 1}}\n',
    )
    got = messages(path)
    p = str(path)
    assert got == [
        f"{p}:2: json: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{p}:3: json: expected an object, got list",
        f"{p}:4: name: must be a string, got int",
        f"{p}:5: colour: unknown key 'colour' (expected: source_file, name, description, tags, store_id, role_arn, region)",
        f"{p}:6: source_file: is required",
        f"{p}:7: encoding: not valid UTF-8 (byte 27)",
        f"{p}:8: tags.k: must be a string, got int",
    ]


def test_csv_encoding_error_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "m.csv", b"source_file,name\ns3://bkt/a.fa,ok-one\ns3://bkt/b.fa,caf\xe9\n"
    )
    assert messages(path) == [f"{path}:3: encoding: not valid UTF-8"]


def test_csv_bom_and_quoted_newlines_keep_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.csv",
        '\ufeffsource_file,name,tags\ns3://bkt/a.fa,first,"{\n""a"": ""b""}"\ns3://bkt/b.fa,x,\n',
    )
    m = read_manifest(path, DEFAULTS)
    assert [r.line for r in m.rows] == [2]
    assert [(e.line, e.field) for e in m.errors] == [(4, "name")]


def test_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "m.xlsx", "whatever")
    with pytest.raises(ManifestError) as info:
        read_manifest(path, DEFAULTS)
    assert format_error(info.value.errors[0]).startswith(f"{path}: format: cannot tell")


def test_large_manifest(tmp_path: Path) -> None:
    rows = "".join(f"s3://bkt/g{i}.fa,genome-{i:06d}\n" for i in range(20_000))
    m = read_manifest(write(tmp_path, "big.csv", "source_file,name\n" + rows), DEFAULTS)
    assert m.errors == [] and len(m.rows) == 20_000 and m.rows[-1].line == 20_001
