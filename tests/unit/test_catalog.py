"""The catalog of a journal's rows (``async_refimport.catalog``) and the ARNs and URIs it and the
reports give (``async_refimport._arns``): what a pipeline reads, in every format, parsed back."""

from __future__ import annotations

import csv
import io
import json

import pytest

from async_refimport._arns import Account, account_of_role, address_of, reference_address
from async_refimport._models import RowResult, RowState
from async_refimport._report import ITEM_FIELDS, render_csv, render_html, report_item
from async_refimport.catalog import (
    CSV_FIELDS,
    CatalogFormat,
    build_catalog,
    groovy_string,
    render_catalog,
    yaml_string,
)
from tests.helpers.nextflow_config import ConfigSyntaxError, parse_config

ROLE = "arn:aws:iam::123456789012:role/OmicsImport"
STORE, OTHER = "1234567890", "2234567890"
URI = "omics://123456789012.storage.us-east-1.amazonaws.com/1234567890/reference/5012345678"

# Names a pipeline may meet: quotes, backslashes, YAML's words, line separators, a BOM, emoji, a
# bidi override, Groovy's interpolation, a literal \u escape, a spreadsheet formula.
HOSTILE = [
    "GRCh38.p14",
    "a'b\\c\"d",
    "x\ny\u2028z\x85w",
    "emoji \U0001f600 \u202e",
    "yes",
    "null",
    "key: #x",
    "\ufeffbom",
    "$x ${y}",
    "\\u000a",
    "=HYPERLINK(1)",
    "- item",
]


def row(
    row_id: int,
    name: str,
    *,
    state: RowState = RowState.IMPORTED,
    reference_id: str | None = "5012345678",
    store: str = STORE,
    region: str = "us-east-1",
    role_arn: str | None = ROLE,
    original_source: str | None = None,
    md5: str | None = None,
) -> RowResult:
    return RowResult(
        row_id, store, region, name, f"s3://bucket/{row_id}.fa", state,
        reference_id=reference_id, md5=md5, role_arn=role_arn, original_source=original_source,
    )  # fmt: skip


def test_the_account_is_the_role_arns_and_its_partition_names_the_arn() -> None:
    assert account_of_role(ROLE) == Account("aws", "123456789012")
    gov = account_of_role("arn:aws-us-gov:iam::210987654321:role/path/to/R")
    assert gov == Account("aws-us-gov", "210987654321")
    for no_account in (None, "", "arn:aws:iam:::role/R", "arn:aws:s3:::bucket", "garbage"):
        assert account_of_role(no_account) is None
    address = reference_address(gov, "us-gov-west-1", STORE, "99")
    assert address.arn == (
        "arn:aws-us-gov:omics:us-gov-west-1:210987654321:referenceStore/1234567890/reference/99"
    )
    assert address.uri == (
        "omics://210987654321.storage.us-gov-west-1.amazonaws.com/1234567890/reference/99"
    )
    assert address.fasta_uri == address.uri + "/source"


def test_a_row_has_an_address_only_once_its_reference_is_in_its_store() -> None:
    imported = address_of(row(1, "GRCh38"))
    assert imported is not None and imported.uri == URI
    assert imported.arn == (
        "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/5012345678"
    )
    present = address_of(row(2, "GRCh38", state=RowState.ALREADY_PRESENT))
    assert present is not None and present.uri == URI
    assert address_of(row(3, "x", state=RowState.FAILED, reference_id=None)) is None
    assert address_of(row(4, "x", state=RowState.SUBMITTED, reference_id=None)) is None
    assert address_of(row(5, "x", reference_id=None)) is None
    assert address_of(row(6, "x", role_arn=None)) is None


def test_reports_carry_arn_and_uri_per_row() -> None:
    rows = [row(1, "GRCh38"), row(2, "bad", state=RowState.FAILED, reference_id=None)]
    assert ITEM_FIELDS[-2:] == ("arn", "uri")
    items = [report_item(r) for r in rows]
    assert items[0]["uri"] == URI and items[0]["arn"] and items[0]["arn"].endswith("/5012345678")
    assert items[1]["arn"] is None and items[1]["uri"] is None
    lines = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert lines[0]["uri"] == URI and lines[1]["uri"] == ""
    html = render_html(rows, [], now=0)
    assert "References (1)" in html and URI in html and items[0]["arn"] in html


def test_imported_and_present_rows_by_name_per_store_with_the_original_source() -> None:
    catalog = build_catalog(
        [
            row(1, "GRCh38", original_source="https://ftp.ncbi.nlm.nih.gov/GRCh38.fa.gz"),
            row(2, "GRCh38", store=OTHER, region="eu-west-1", reference_id="77",
                state=RowState.ALREADY_PRESENT, md5="ab" * 16),
            row(3, "failed", state=RowState.FAILED, reference_id=None),
            row(4, "queued", state=RowState.QUEUED, reference_id=None),
            row(5, "staging", state=RowState.STAGING, reference_id=None),
        ]
    )  # fmt: skip
    doc = catalog.document()
    assert list(doc["references"]) == ["GRCh38"] and doc["conflicts"] == []
    there, here = doc["references"]["GRCh38"]  # by Region: eu-west-1 first
    assert here == {
        "region": "us-east-1",
        "store_id": STORE,
        "account": "123456789012",
        "reference_id": "5012345678",
        "arn": "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/"
        "5012345678",
        "uri": URI,
        "fasta_uri": URI + "/source",
        "md5": None,
        "original_source": "https://ftp.ncbi.nlm.nih.gov/GRCh38.fa.gz",
        "status": "IMPORTED",
    }
    assert there["region"] == "eu-west-1" and there["original_source"] == "s3://bucket/2.fa"
    assert there["md5"] == "ab" * 16 and there["status"] == "ALREADY_PRESENT"
    assert catalog.warnings() == []


def test_rows_of_one_reference_are_one_entry_and_two_references_of_a_name_a_conflict() -> None:
    catalog = build_catalog(
        [
            row(1, "GRCh38", state=RowState.ALREADY_PRESENT),
            row(2, "GRCh38", md5="cd" * 16),  # the same reference, imported by a later run
            row(3, "hg19", reference_id="1"),
            row(4, "hg19", reference_id="2"),
        ]
    )
    entries = catalog.by_name()
    [grch38] = entries["GRCh38"]
    assert grch38.state is RowState.IMPORTED and grch38.md5 == "cd" * 16
    assert [e.reference_id for e in entries["hg19"]] == ["1", "2"]  # both listed
    assert [c.document() for c in catalog.conflicts] == [
        {"name": "hg19", "region": "us-east-1", "store_id": STORE, "reference_ids": ["1", "2"]}
    ]
    [warning] = catalog.warnings()
    assert "hg19" in warning and "2 references in store 1234567890" in warning
    nextflow = parse_config(render_catalog(catalog, CatalogFormat.NEXTFLOW))["params"]
    assert "hg19" not in nextflow["refimport"]["us-east-1"]
    assert "hg19" not in nextflow["refimport_stores"][STORE]
    assert nextflow["refimport"]["us-east-1"]["GRCh38"] == URI + "/source"


def test_a_row_whose_role_names_no_account_is_listed_without_arn_or_uri() -> None:
    catalog = build_catalog([row(1, "GRCh38", role_arn=None), row(2, "hg19")])
    doc = catalog.document()
    [entry] = doc["references"]["GRCh38"]
    assert entry["reference_id"] == "5012345678"
    assert entry["account"] is entry["arn"] is entry["uri"] is entry["fasta_uri"] is None
    [warning] = catalog.warnings()
    assert "1 reference(s) listed without an ARN or URI" in warning and "GRCh38" in warning
    nextflow = render_catalog(catalog, CatalogFormat.NEXTFLOW)
    assert "left out of 'us-east-1': 'GRCh38' has no URI" in nextflow
    assert "GRCh38" not in parse_config(nextflow)["params"]["refimport"]["us-east-1"]


def test_a_name_in_two_stores_of_one_region_is_left_out_of_the_regions_map_only() -> None:
    catalog = build_catalog([row(1, "GRCh38"), row(2, "GRCh38", store=OTHER, reference_id="9")])
    params = parse_config(render_catalog(catalog, CatalogFormat.NEXTFLOW))["params"]
    assert params["refimport"] == {"us-east-1": {}}
    assert params["refimport_stores"][STORE]["GRCh38"] == URI + "/source"
    assert params["refimport_stores"][OTHER]["GRCh38"].endswith("/2234567890/reference/9/source")


@pytest.mark.parametrize("fmt", list(CatalogFormat))
def test_an_empty_journal_is_an_empty_catalog_in_every_format(fmt: CatalogFormat) -> None:
    text = render_catalog(build_catalog([]), fmt)
    if fmt is CatalogFormat.JSON:
        assert json.loads(text) == {"references": {}, "conflicts": []}
    elif fmt is CatalogFormat.NEXTFLOW:
        assert parse_config(text) == {"params": {"refimport": {}, "refimport_stores": {}}}
    elif fmt is CatalogFormat.CSV:
        assert text == ",".join(CSV_FIELDS) + "\n"
    else:
        yaml = pytest.importorskip("yaml")
        assert yaml.safe_load(text) == {"references": {}, "conflicts": []}


def hostile_catalog() -> list[RowResult]:
    return [
        row(i, name, reference_id=str(5000000000 + i), original_source=f"https://h/{name}")
        for i, name in enumerate(HOSTILE)
    ]


def test_every_name_reads_back_from_yaml_and_json_as_it_is() -> None:
    yaml = pytest.importorskip("yaml")
    catalog = build_catalog(hostile_catalog())
    doc = json.loads(render_catalog(catalog, CatalogFormat.JSON))
    assert set(doc["references"]) == set(HOSTILE)
    assert yaml.safe_load(render_catalog(catalog, CatalogFormat.YAML)) == doc
    for value in HOSTILE:
        assert yaml.safe_load(yaml_string(value)) == value


def test_every_name_reads_back_from_the_nextflow_snippet_as_it_is() -> None:
    catalog = build_catalog(hostile_catalog())
    text = render_catalog(catalog, CatalogFormat.NEXTFLOW)
    regions = parse_config(text)["params"]["refimport"]
    assert set(regions["us-east-1"]) == set(HOSTILE)
    for entry in catalog.entries:
        assert entry.address is not None
        assert regions["us-east-1"][entry.name] == entry.address.fasta_uri
    for value in HOSTILE:
        assert parse_config(f"x = {groovy_string(value)}\n") == {"x": value}
    # Each line a line of the file: no name's line break or separator splits one.
    assert len(text.splitlines()) == len(text.split("\n")) - 1


def test_the_csv_catalog_is_one_line_per_name_and_store_never_a_formula() -> None:
    catalog = build_catalog([*hostile_catalog(), row(99, "GRCh38", store=OTHER)])
    lines = list(csv.reader(io.StringIO(render_catalog(catalog, CatalogFormat.CSV))))
    assert tuple(lines[0]) == CSV_FIELDS and len(lines) == len(HOSTILE) + 2
    names = [line[0] for line in lines[1:]]
    assert "'=HYPERLINK(1)" in names and "'- item" in names
    grch38 = [dict(zip(CSV_FIELDS, line, strict=True)) for line in lines if line[0] == "GRCh38"]
    assert [g["store_id"] for g in grch38] == [OTHER]
    assert grch38[0]["fasta_uri"].endswith("/2234567890/reference/5012345678/source")


@pytest.mark.parametrize(
    "text",
    [
        "params { 'GRCh38-p14' = 'x' }",  # an option's name must be an identifier
        "params {\n x = 'unclosed\n}",
        "params {\n x = ['a': 'b' 'c': 'd']\n}",  # no comma
        "params {\n x = []\n}",  # a list, not a map
        "params { x = 'a' y = 'b' }",  # two statements on one line
        "params {\n x = 'a'\n",  # no closing brace
        'params {\n x = "${a}"\n}',  # a GString: never written
        "params {\n x = 'bad \\q escape'\n}",
        "params {\n x = ['a': 'b', 'a': 'c']\n}",  # a key twice
        "params {\n if = 'a'\n}",  # a keyword
    ],
)
def test_the_nextflow_parser_refuses_what_is_malformed(text: str) -> None:
    with pytest.raises(ConfigSyntaxError):
        parse_config(text)
