"""Manifest parsing: every format, every kind of error, with the exact line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from async_refimport._errors import ManifestError
from async_refimport.manifest.reader import ManifestDefaults, format_error, read_manifest

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
        == f"{p}:1: colour: unknown column 'colour' (expected: source_file, name, description, tags, store_id, role_arn, region, profile, endpoint_url, md5)"
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
        f"{p}:5: colour: unknown key 'colour' (expected: source_file, name, description, tags, store_id, role_arn, region, profile, endpoint_url, md5)",
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


# -- hostile and broken input (issue 13) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("empty.csv", "", "is empty: no rows to import"),
        ("blank.csv", "\n\n  \n", "is empty: no rows to import"),
        ("empty.jsonl", "", "is empty: no rows to import"),
        ("blank.jsonl", "\n \n", "is empty: no rows to import"),
        ("header.csv", "source_file,name\n", "has a header but no rows"),
        ("header.tsv", "source_file\tname\n\n", "has a header but no rows"),
    ],
)
def test_a_manifest_without_rows_is_refused(
    tmp_path: Path, name: str, text: str, reason: str
) -> None:
    path = write(tmp_path, name, text)
    m = read_manifest(path, DEFAULTS)
    assert m.requests == []
    assert [format_error(e) for e in m.errors] == [f"{path}: file: {reason}"]


def test_blank_lines_before_the_header_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "\n\nsource_file,name,colour\ns3://bkt/a.fa,hg38,red\n")
    m = read_manifest(path, DEFAULTS)
    assert [r.line for r in m.rows] == [4]
    assert [(e.line, e.field) for e in m.errors] == [(3, "colour")]
    assert m.invalid_rows == 0  # the header is not a row: --skip-invalid skips nothing


def test_a_json_object_with_a_repeated_key_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.jsonl",
        '{"source_file": "s3://bkt/a.fa", "name": "aaa", "name": "bbb"}\n'
        '{"source_file": "s3://bkt/b.fa", "name": "ccc", "tags": {"k": "1", "k": "2"}}\n'
        '{"source_file": "s3://bkt/c.fa", "name": "ddd"}\n',
    )
    m = read_manifest(path, DEFAULTS)
    assert [format_error(e) for e in m.errors] == [
        f"{path}:1: json: key 'name' is given twice in one object",
        f"{path}:2: json: key 'k' is given twice in one object",
    ]
    assert [r.name for r in m.requests] == ["ddd"]
    csv_path = write(
        tmp_path,
        "m.csv",
        'source_file,name,tags\ns3://bkt/a.fa,aaa,"{""k"": ""1"", ""k"": ""2""}"\n',
    )
    assert messages(csv_path) == [f"{csv_path}:2: tags: key 'k' is given twice in one object"]


def test_deeply_nested_json_is_an_error_on_its_line(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    deep_tags = '{"a":' * 50_000 + '"x"' + "}" * 50_000
    path = write(
        tmp_path,
        "m.jsonl",
        f'{{"source_file": "s3://bkt/a.fa", "name": "aaa", "tags": {deep}}}\n'
        f'{{"source_file": "s3://bkt/b.fa", "name": "bbb", "tags": {deep_tags}}}\n'
        '{"source_file": "s3://bkt/c.fa", "name": "ccc", "tags": {"a": {"b": "c"}}}\n'
        '{"source_file": "s3://bkt/d.fa", "name": "ddd"}\n',
    )
    m = read_manifest(path, DEFAULTS)
    assert [format_error(e) for e in m.errors] == [
        f"{path}:1: json: JSON nested too deeply",
        f"{path}:2: json: JSON nested too deeply",
        f"{path}:3: tags.a: must be a string, got dict",
    ]
    assert [r.name for r in m.requests] == ["ddd"]
    cell = ('{"a":' * 5_000 + '"x"' + "}" * 5_000).replace('"', '""')
    csv_path = write(tmp_path, "m.csv", f'source_file,name,tags\ns3://bkt/a.fa,aaa,"{cell}"\n')
    assert messages(csv_path) == [f"{csv_path}:2: tags: JSON nested too deeply"]


def test_an_integer_beyond_the_interpreters_digit_limit_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "m.jsonl", '{"source_file": "s3://bkt/a.fa", "name": ' + "9" * 5000 + "}\n"
    )
    [error] = read_manifest(path, DEFAULTS).errors
    assert (error.line, error.field) == (1, "json")
    assert error.reason.startswith("malformed JSON")


def test_every_invalid_row_is_counted_whatever_its_line(tmp_path: Path) -> None:
    # The first line of JSON Lines is a row, not a header: skipping it must count it.
    path = write(
        tmp_path,
        "m.jsonl",
        "{broken\n"
        '{"source_file": "s3://bkt/a.fa", "name": "good"}\n'
        '{"source_file": "s3://bkt/b.fa", "name": "x"}\n',
    )
    m = read_manifest(path, DEFAULTS)
    assert m.invalid_rows == 2 and sorted(m.invalid_lines) == [1, 3]
    assert [r.line for r in m.rows] == [2]


def test_names_with_edge_spaces_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "source_file,name\ns3://bkt/a.fa, hg38\ns3://bkt/b.fa,mm39 \n")
    assert messages(path) == [
        f"{path}:2: name: ' hg38' has leading or trailing whitespace (names are matched exactly; remove it)",
        f"{path}:3: name: 'mm39 ' has leading or trailing whitespace (names are matched exactly; remove it)",
    ]


def test_a_line_break_in_a_value_fails_its_row_alone(tmp_path: Path) -> None:
    rows = [{"source_file": f"s3://bkt/g{i}.fa", "name": f"genome-{i}"} for i in range(10)]
    rows[3]["source_file"] = "s3://bkt/g3\n.fa"
    rows[6]["role_arn"] = ROLE + "\n"
    path = write(tmp_path, "m.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    m = read_manifest(path, DEFAULTS)
    assert [(e.line, e.field) for e in m.errors] == [(4, "source_file"), (7, "role_arn")]
    assert len(m.requests) == 8
    # The error lines stay single lines: nothing from the data breaks them.
    assert all("\n" not in format_error(e) for e in m.errors)


def test_unknown_columns_can_be_ignored(tmp_path: Path) -> None:
    sheet = write(
        tmp_path,
        "samples.csv",
        "sample_id,source_file,name,Species,\nS1,s3://bkt/a.fa,hg38,human,\nS2,s3://bkt/b.fa,mm39,mouse,\n",
    )
    assert {e.field for e in read_manifest(sheet, DEFAULTS).errors} == {
        "sample_id",
        "Species",
        "column 5",
    }
    m = read_manifest(sheet, DEFAULTS, ignore_unknown_columns=True)
    assert m.errors == [] and [r.name for r in m.requests] == ["hg38", "mm39"]
    assert m.ignored_columns == {"sample_id", "Species", "column 5"}
    lines = write(
        tmp_path, "m.jsonl", '{"source_file": "s3://bkt/a.fa", "name": "hg38", "sample_id": 7}\n'
    )
    m = read_manifest(lines, DEFAULTS, ignore_unknown_columns=True)
    assert m.errors == [] and m.ignored_columns == {"sample_id"}


def test_profile_and_endpoint_columns_fan_out_over_accounts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.csv",
        "source_file,name,store_id,profile,endpoint_url\n"
        "s3://bkt/a.fa,hg38,1111111111,research,\n"
        "s3://bkt/a.fa,hg38,2222222222,clinical,\n"
        "s3://bkt/b.fa,mm39,,,http://127.0.0.1:4566\n"
        's3://bkt/c.fa,rn7,,"prod\n",\n'
        "s3://bkt/d.fa,dm6,,,ftp://x\n",
    )
    defaults = ManifestDefaults(store_id=STORE, role_arn=ROLE, region="us-east-1", profile="dflt")
    m = read_manifest(path, defaults)
    assert [(e.line, e.field) for e in m.errors] == [(5, "profile"), (7, "endpoint_url")]
    stores = [r.store() for r in m.requests]
    assert [(s.store_id, s.profile, s.endpoint_url) for s in stores] == [
        ("1111111111", "research", None),
        ("2222222222", "clinical", None),
        (STORE, "dflt", "http://127.0.0.1:4566"),
    ]
    assert len({s.key for s in stores}) == 3


def test_format_errors_caps_the_printout() -> None:
    from async_refimport._errors import FieldError
    from async_refimport.manifest.reader import format_errors

    errors = [FieldError("name", "bad", line, "m.csv") for line in range(2, 1002)]
    shown = format_errors(errors, limit=100)
    assert len(shown) == 101
    assert shown[0] == "m.csv:2: name: bad"
    assert shown[-1] == "... and 900 more problem(s) not shown"
    assert format_errors(errors[:3]) == [
        "m.csv:2: name: bad",
        "m.csv:3: name: bad",
        "m.csv:4: name: bad",
    ]


def test_check_objects_reads_rows_like_json_lines() -> None:
    from async_refimport.manifest.reader import check_objects

    m = check_objects(
        [{"source_file": "s3://bkt/a.fa", "name": "hg38"}, ["x"], {"name": "ab"}], DEFAULTS
    )
    assert [r.line for r in m.rows] == [1]
    assert {(e.line, e.field) for e in m.errors} == {(2, "json"), (3, "source_file")}


# -- where manifests live: standard input and S3 (issue 11) ----------------------------------------

CSV_TEXT = "source_file,name\ns3://bkt/a.fa,hg38\ns3://bkt/b.fa,mm39\n"


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (CSV_TEXT.encode(), "csv"),
        (b"\xef\xbb\xbf" + CSV_TEXT.replace(",", "\t").encode(), "tsv"),
        (b'\n{"source_file": "s3://bkt/a.fa", "name": "hg38"}\n', "jsonl"),
    ],
)
def test_standard_input_with_the_format_sniffed(data: bytes, fmt: str) -> None:
    import io

    m = read_manifest("-", DEFAULTS, stdin=io.BytesIO(data))
    assert (m.source, m.format, m.errors) == ("-", fmt, [])
    assert m.requests[0].name == "hg38"


def test_standard_input_with_the_format_given_and_errors_named_after_it() -> None:
    import io

    m = read_manifest(
        "-", DEFAULTS, format="tsv", stdin=io.BytesIO(b"source_file\tname\ns3://bkt/a.fa\tx\n")
    )
    assert [format_error(e) for e in m.errors] == [
        "-:2: name: must be 3..255 characters long, got 1"
    ]
    empty = read_manifest("-", DEFAULTS, stdin=io.BytesIO(b""))
    assert [format_error(e) for e in empty.errors] == ["-: file: is empty: no rows to import"]


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    bucket = f"manifests-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="refs/batch.csv", Body=CSV_TEXT.encode())
    s3.put_object(Bucket=bucket, Key="refs/sheet", Body=CSV_TEXT.replace(",", "\t").encode())
    s3.put_object(Bucket=bucket, Key="refs/empty.jsonl", Body=b"")
    return bucket


def test_manifest_from_s3(s3_bucket: str) -> None:
    uri = f"s3://{s3_bucket}/refs/batch.csv"
    m = read_manifest(uri, DEFAULTS)
    assert (m.source, m.format, m.errors) == (uri, "csv", [])
    assert [r.name for r in m.requests] == ["hg38", "mm39"]
    sniffed = read_manifest(f"s3://{s3_bucket}/refs/sheet", DEFAULTS)
    assert sniffed.format == "tsv" and len(sniffed.requests) == 2
    empty = read_manifest(f"s3://{s3_bucket}/refs/empty.jsonl", DEFAULTS)
    assert [format_error(e) for e in empty.errors] == [
        f"s3://{s3_bucket}/refs/empty.jsonl: file: is empty: no rows to import"
    ]


@pytest.mark.parametrize(
    ("key", "reason"),
    [("refs/missing.csv", "no such object"), (None, "no such bucket")],
)
def test_an_unreadable_s3_manifest_is_one_error(
    s3_bucket: str, key: str | None, reason: str
) -> None:
    uri = f"s3://{s3_bucket}/{key}" if key else "s3://no-such-bucket-here/refs.csv"
    with pytest.raises(ManifestError) as info:
        read_manifest(uri, DEFAULTS)
    assert [format_error(e) for e in info.value.errors] == [
        f"{uri}: file: cannot read from S3: {reason}"
    ]


async def test_load_manifest_from_async_code(s3_bucket: str, tmp_path: Path) -> None:
    from async_refimport.manifest.reader import load_manifest

    m = await load_manifest(f"s3://{s3_bucket}/refs/batch.csv", DEFAULTS)
    assert len(m.requests) == 2
    local = await load_manifest(write(tmp_path, "m.csv", CSV_TEXT), DEFAULTS)
    assert local.requests == m.requests
