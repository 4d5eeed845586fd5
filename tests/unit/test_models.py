from __future__ import annotations

import pytest

from async_refimport import ImportRequest, validate_request
from async_refimport._models import validate_requests
from tests.helpers.common import ROLE_ARN, STORE_ID


def req(**kw: object) -> ImportRequest:
    base: dict[str, object] = {
        "store_id": STORE_ID,
        "role_arn": ROLE_ARN,
        "source_file": "s3://genomes/hg38.fa.gz",
        "name": "hg38",
        "region": "us-east-1",
    }
    base.update(kw)
    return ImportRequest(**base)  # type: ignore[arg-type]


def test_valid_request_has_no_errors() -> None:
    assert validate_request(req(description="GRCh38", tags={"project": "x"})) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"store_id": "abc"}, "store_id"),
        ({"role_arn": "role/short"}, "role_arn"),
        ({"role_arn": "x" * 30}, "role_arn"),
        ({"source_file": "https://genomes/hg38.fa"}, "source_file"),
        ({"source_file": "s3://Bad_Bucket/hg38.fa"}, "source_file"),
        ({"source_file": "s3://genomes/hg38.bam"}, "source_file"),
        ({"name": "ab"}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "bad\nname"}, "name"),
        ({"description": ""}, "description"),
        ({"description": "d" * 256}, "description"),
        ({"tags": {"": "v"}}, "tags."),
        ({"tags": {"k": "v" * 257}}, "tags.k"),
        ({"region": "moon-1"}, "region"),
    ],
)
def test_each_constraint_names_its_field(change: dict[str, object], field: str) -> None:
    errors = validate_request(req(**change))
    assert errors, change
    assert errors[0].field == field


def test_duplicate_name_for_one_store_is_rejected() -> None:
    errors = validate_requests([req(), req(source_file="s3://genomes/other.fa")])
    assert len(errors) == 1
    assert errors[0].field == "name" and "twice" in errors[0].reason
    assert errors[0].row_name == "hg38"


def test_same_name_in_two_stores_is_fine() -> None:
    assert validate_requests([req(), req(store_id="9999999999")]) == []


def test_missing_region_without_default_is_an_error() -> None:
    errors = validate_requests([req(region=None)])
    assert [e.field for e in errors] == ["region"]
    assert validate_requests([req(region=None)], default_region="eu-west-1") == []
