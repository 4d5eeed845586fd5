"""Local checks at least as strict as the service's, so one bad row never sinks its job-mates,
and store keys that no field's content can corrupt."""

from __future__ import annotations

import pytest

from async_refimport import ImportRequest, validate_request
from async_refimport._models import ROLE_ARN_FORM, StoreRef
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


def reasons(**kw: object) -> dict[str, str]:
    return {e.field: e.reason for e in validate_request(req(**kw))}


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/OmicsImport",
        "arn:aws:iam::123456789012:role/service-role/HealthOmics-Import_1+=,.@",
        "arn:aws-cn:iam::123456789012:role/a/b/c/x",
        "arn:aws-us-gov:iam::123456789012:role/x",
        "arn:aws-iso-b:iam::123456789012:role/x",
    ],
)
def test_role_arns_of_iam_roles_pass(arn: str) -> None:
    assert reasons(role_arn=arn) == {}


@pytest.mark.parametrize(
    ("arn", "detail"),
    [
        ("arn:aws:iam:123:role/x", "4 ':' separators, an ARN has 5"),
        ("arn:aws:s3:::my-bucket/role/x", "service 's3' is not iam"),
        ("arn:aws:iam:us-east-1:123456789012:role/x", "no Region"),
        ("arn:aws:iam::12345:role/OmicsImport", "account '12345' is not 12 digits"),
        ("arn:aws:iam::123456789012:user/OmicsImport", "not role/<name>"),
        ("arn:azure:iam::123456789012:role/x", "partition 'azure'"),
        ("arn:aws:iam::123456789012:role/bad name", "characters IAM does not allow"),
        ("arn:aws:iam::123456789012:role/" + "x" * 65, "characters IAM does not allow"),
    ],
)
def test_role_arns_that_cannot_be_a_role_are_refused_naming_the_form(arn: str, detail: str) -> None:
    reason = reasons(role_arn=arn)["role_arn"]
    assert reason.startswith("not an IAM role ARN"), reason
    assert detail in reason
    assert ROLE_ARN_FORM in reason
    assert ROLE_ARN_FORM == "arn:<partition>:iam::<12-digit account>:role/<name>"


def test_a_bare_role_name_is_not_an_arn_rather_than_too_short() -> None:
    reason = reasons(role_arn="HealthOmicsImport")["role_arn"]
    assert reason == f"not an ARN (expected {ROLE_ARN_FORM})"
    assert "characters" not in reason


@pytest.mark.parametrize("terminator", ["\n", "\r", "\x85", "\u2028", "\u2029", "\r\n"], ids=repr)
def test_line_breaks_are_refused_where_the_services_dot_stops(terminator: str) -> None:
    assert "source_file" in reasons(source_file=f"s3://genomes/hg38{terminator}.fa")
    assert "source_file" in reasons(source_file=f"s3://genomes/hg38.fa{terminator}")
    assert "role_arn" in reasons(role_arn=f"{ROLE_ARN}{terminator}")
    assert "role_arn" in reasons(role_arn=f"arn:aws:iam::123456789012:role/a{terminator}b")


def test_a_control_character_in_a_source_key_is_refused() -> None:
    reason = reasons(source_file="s3://genomes/a\tb.fa")["source_file"]
    assert "one line of printable characters" in reason


@pytest.mark.parametrize("name", [" hg38", "hg38 ", "\u00a0hg38", "hg38\u3000"], ids=repr)
def test_names_with_edge_whitespace_are_refused(name: str) -> None:
    assert "leading or trailing whitespace" in reasons(name=name)["name"]


def test_inner_spaces_in_names_are_fine() -> None:
    assert reasons(name="Homo sapiens GRCh38") == {}


def test_lengths_count_utf16_units_as_the_service_does() -> None:
    # 128 emoji are 128 Python characters but 256 UTF-16 units: over the service's 255.
    assert "must be 3..255 characters long, got 256" in reasons(name="\U0001f9ec" * 128)["name"]
    assert reasons(name="\U0001f9ec" * 127) == {}
    assert "tags.k" in reasons(tags={"k": "\U0001f9ec" * 129})


@pytest.mark.parametrize(
    ("field", "value"),
    [("store_id", 1234567890), ("name", None), ("role_arn", b"arn"), ("region", 1)],
)
def test_values_of_the_wrong_type_are_errors_not_exceptions(field: str, value: object) -> None:
    assert reasons(**{field: value})[field].startswith("must be a string, got ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("endpoint_url", "ftp://emulator"),
        ("endpoint_url", "http://host name"),
        ("endpoint_url", "http://host/\n"),
        ("profile", " prod"),
        ("profile", "prod\n"),
        ("profile", ""),
    ],
)
def test_endpoint_urls_and_profiles_are_checked(field: str, value: str) -> None:
    assert field in reasons(**{field: value})


def test_valid_endpoint_urls_and_profiles() -> None:
    assert reasons(endpoint_url="http://127.0.0.1:4566", profile="prod|eu") == {}
    assert reasons(endpoint_url="https://omics.vpce.example.com/x?y=1", profile="my team") == {}


# -- store keys ------------------------------------------------------------------------------------


def test_ordinary_store_keys_keep_the_format_existing_journals_hold() -> None:
    store = StoreRef("1234567890", "eu-west-1", "http://127.0.0.1:9000", "prod")
    assert store.key == "prod|eu-west-1|http://127.0.0.1:9000|1234567890"
    assert StoreRef("1234567890", "us-east-1").key == "|us-east-1||1234567890"
    # Keys read back from a journal written before the encoding changed: resume finds its rows.
    for old in ("prod|eu-west-1|http://127.0.0.1:9000|1234567890", "|us-east-1||1234567890"):
        assert StoreRef.from_key(old).key == old
    assert StoreRef.from_key("|us-east-1||1234567890") == StoreRef("1234567890", "us-east-1")


@pytest.mark.parametrize(
    "store",
    [
        StoreRef("1111111111", "us-east-1", "http://h:1", "a|prod"),
        StoreRef("1111111111", "us-east-1", "http://h:1/|x", None),
        StoreRef("1111111111", "us-east-1", None, "|"),
        StoreRef("1111111111", "us-east-1", None, '["x"]'),
        StoreRef("1111111111", "us-east-1", None, '"|\\'),
        StoreRef("1111111111", "us-east-1", None, "[a"),
    ],
    ids=repr,
)
def test_a_separator_inside_a_field_cannot_corrupt_the_key(store: StoreRef) -> None:
    assert StoreRef.from_key(store.key) == store


def test_keys_of_distinct_stores_are_distinct() -> None:
    a = StoreRef("1111111111", "prod", None, "http://h|x")  # the corrupting profile
    b = StoreRef("1111111111", "x", "prod", "http://h")
    assert a.key != b.key
    assert StoreRef.from_key(a.key) == a


@pytest.mark.parametrize("key", ["", "a|b|c", "a|b|c|d|e", "[1,2,3,4]", '["a","b"]'])
def test_a_malformed_key_is_a_value_error(key: str) -> None:
    with pytest.raises(ValueError, match="not a store key"):
        StoreRef.from_key(key)
