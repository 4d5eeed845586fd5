"""Targets files (``refimport import --targets``): the stores one manifest goes to, checked as a
manifest's rows are, every problem named by file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_refimport._errors import ManifestError
from async_refimport._models import ImportRequest, StoreRef
from async_refimport.manifest import format_error
from async_refimport.manifest.targets import TARGET_FIELDS, Target, read_targets

ROLE = "arn:aws:iam::111122223333:role/Import"


def _file(tmp_path: Path, text: str, name: str = "targets.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        read_targets(path)
    return [format_error(e) for e in info.value.errors]


def test_three_regions_read_in_file_order(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "store_id,region,role_arn,profile,endpoint_url,staging\n"
        f"1234567890,us-east-1,{ROLE},,,s3://stage-use1/refs/\n"
        f"2345678901,eu-west-1,{ROLE},ops,http://127.0.0.1:4566,s3://stage-euw1\n"
        "\n"
        f"3456789012,ap-southeast-2,{ROLE},,,\n",
    )
    targets = read_targets(path)
    assert targets == [
        Target("1234567890", "us-east-1", ROLE, staging="s3://stage-use1/refs/", line=2),
        Target(
            "2345678901",
            "eu-west-1",
            ROLE,
            profile="ops",
            endpoint_url="http://127.0.0.1:4566",
            staging="s3://stage-euw1/",
            line=3,
        ),
        Target("3456789012", "ap-southeast-2", ROLE, line=5),
    ]
    assert targets[1].store() == StoreRef("2345678901", "eu-west-1", "http://127.0.0.1:4566", "ops")


def test_only_the_required_columns_and_aliases(tmp_path: Path) -> None:
    path = _file(tmp_path, f"Store-Id,Region,RoleArn\n1234567890,us-east-1,{ROLE}\n")
    assert read_targets(path) == [Target("1234567890", "us-east-1", ROLE, line=2)]


def test_tsv_by_extension(tmp_path: Path) -> None:
    path = _file(tmp_path, f"store_id\tregion\trole_arn\n1234567890\tus-east-1\t{ROLE}\n", "t.tsv")
    assert read_targets(path)[0].store_id == "1234567890"


def test_a_target_without_a_role_names_its_line_and_field(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        f"store_id,region,role_arn\n1234567890,us-east-1,{ROLE}\n2345678901,eu-west-1,\n",
    )
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:3: role_arn: is required")


def test_a_missing_required_column_is_one_header_line(tmp_path: Path) -> None:
    path = _file(tmp_path, "store_id,region\n1234567890,us-east-1\n")
    assert _problems(path) == [f"{path}:1: role_arn: required column is missing"]


def test_every_field_checked_as_a_manifest_row_is(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "store_id,region,role_arn,profile,endpoint_url,staging\n"
        f"12345,us-east-1,{ROLE},,,\n"
        f"1234567890,US East,{ROLE},,,\n"
        "1234567890,us-east-1,arn:aws:iam::1234:role/R,,,\n"
        f"1234567890,us-east-1,{ROLE},,ftp://host/,\n"
        f'1234567890,us-east-1,{ROLE}," ops",,\n'
        f"1234567890,us-east-1,{ROLE},,,https://bucket/prefix/\n"
        f"1234567890,us-east-1,{ROLE},,,s3://Bad_Bucket/x/\n"
        f'1234567890,us-east-1,{ROLE},,,"s3://bucket/a\x1b[31m/"\n',
    )
    problems = _problems(path)
    fields = [p.split(": ")[1] for p in problems]
    lines = [int(p.split(": ")[0].rsplit(":", 1)[1]) for p in problems]
    assert list(zip(lines, fields, strict=True)) == [
        (2, "store_id"),
        (3, "region"),
        (4, "role_arn"),
        (5, "endpoint_url"),
        (6, "profile"),
        (7, "staging"),
        (8, "staging"),
        (9, "staging"),
    ]
    assert "10..36 digits" in problems[0] and "not 12 digits" in problems[2]
    assert "\x1b" not in "".join(problems)  # a control character is shown escaped


def test_a_store_given_twice_is_refused(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "store_id,region,role_arn\n"
        f"1234567890,us-east-1,{ROLE}\n"
        f"1234567890,eu-west-1,{ROLE}\n"  # another Region: another store
        f"1234567890,us-east-1,{ROLE}\n",
    )
    assert _problems(path) == [
        f"{path}:4: store_id: store 1234567890 in us-east-1 is given twice (first on line 2)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "file: is empty: no targets"),
        ("store_id,region,role_arn\n\n", "file: has a header but no targets"),
        ("store_id,region,role_arn,colour\n", "1: colour: unknown column"),
        ("store_id,region,role_arn,region\n", "1: region: column given twice"),
        (f"store_id,region,role_arn\n1234567890,us-east-1,{ROLE},x\n", "2: row: has 4 fields"),
        ('store_id,region,role_arn\n"1234567890,us-east-1\n', "2: row: malformed"),
    ],
)
def test_whole_file_problems(tmp_path: Path, text: str, expected: str) -> None:
    path = _file(tmp_path, text)
    problems = _problems(path)
    assert any(
        p.startswith(f"{path}:{expected}") or p == f"{path}: {expected}" for p in problems
    ), problems


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        read_targets(tmp_path / "missing.csv")
    assert info.value.errors[0].field == "file"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"store_id,region,role_arn\n\xff\n")
    assert _problems(path) == [f"{path}: encoding: not valid UTF-8 (byte 26)"]


def test_a_row_sent_to_a_target(tmp_path: Path) -> None:
    target = Target("2345678901", "eu-west-1", ROLE, profile="ops", endpoint_url=None, line=2)
    row = ImportRequest(
        store_id="",
        role_arn="",
        source_file="https://ftp.ensembl.org/x.fa.gz",
        name="GRCh38",
        tags={"a": "b"},
    )
    sent = target.request_for(row)
    assert (sent.store_id, sent.region, sent.role_arn, sent.profile) == (
        "2345678901",
        "eu-west-1",
        ROLE,
        "ops",
    )
    assert (sent.name, sent.source_file, dict(sent.tags)) == ("GRCh38", row.source_file, {"a": "b"})
    assert set(TARGET_FIELDS) <= {"store_id", "region", "role_arn", "profile", "endpoint_url"}


def test_staging_values_are_what_the_staging_package_accepts(tmp_path: Path) -> None:
    staging = pytest.importorskip("async_refimport.staging.areas")
    path = _file(
        tmp_path,
        "store_id,region,role_arn,staging\n"
        f"1234567890,us-east-1,{ROLE},s3://stage-use1\n"
        f"2345678901,eu-west-1,{ROLE},s3://stage.euw1/a/b\n",
    )
    for target in read_targets(path):
        assert target.staging is not None
        area = staging.parse_area_uri(target.region, target.staging)
        assert area.uri() == target.staging
