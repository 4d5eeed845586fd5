"""``refimport catalog`` run as a subprocess on a journal a real ``refimport import`` wrote
against the emulator (two stores, two Regions): every format, read back as a pipeline would
(the Nextflow snippet by a strict parser of its grammar), the ARNs the emulator's own."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from async_refimport.emulator import EmulatorThread, account_for, make_fasta
from tests.helpers.cli import Run, create_store
from tests.helpers.nextflow_config import parse_config

# Names a pipeline must reach: one that is no identifier, one with quotes, one plain.
NAMES = ("GRCh38.p14", "mouse 'GRCm39' v2", "ecoli_k12")


def role_arn() -> str:
    """A role of the account the CLI's credentials are in (the emulator's account of the key)."""
    return f"arn:aws:iam::{account_for(os.environ['AWS_ACCESS_KEY_ID'])}:role/OmicsImport"


def import_into(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal: Path,
    region: str,
    names: tuple[str, ...],
) -> tuple[str, Run]:
    """A real ``refimport import --json`` of ``names`` into a new store of ``region``."""
    store = create_store(emulator, region)
    bucket = f"catalog-{region}"
    rows = ["source_file,name"]
    for i, name in enumerate(names):
        fasta = make_fasta(f"chr{i}", 200, seed=i)
        uri = s3_fasta(f"{region}/{i}.fa", fasta, bucket=bucket, region=region)
        rows.append(f'{uri},"{name}"')
    manifest = tmp_path / f"{region}.csv"
    manifest.write_text("\n".join(rows) + "\n")
    run = cli(
        "import", manifest, "--store-id", store, "--role-arn", role_arn(), "--region", region,
        "--endpoint-url", emulator.omics_endpoint_url, "--journal", journal, "--json",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    return store, run


def emulator_arns(emulator: EmulatorThread, store: str, region: str) -> dict[str, str]:
    """Each reference's ARN as the emulator's GetReferenceMetadata gives it, by name."""
    kwargs: dict[str, Any] = emulator.client_kwargs()
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    omics = boto3.client("omics", **{**kwargs, "region_name": region})
    refs = omics.list_references(referenceStoreId=store)["references"]
    return {
        r["name"]: omics.get_reference_metadata(referenceStoreId=store, id=r["id"])["arn"]
        for r in refs
    }


@pytest.mark.slow
def test_the_catalog_of_an_import_in_every_format(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    east, east_run = import_into(
        cli, emulator, s3_fasta, tmp_path, journal_path, "us-east-1", NAMES
    )
    west, _ = import_into(cli, emulator, s3_fasta, tmp_path, journal_path, "us-west-2", NAMES[:2])
    # --json of the import carries each row's ARN and URI.
    arns = emulator_arns(emulator, east, "us-east-1")
    items = {i["name"]: i for i in east_run.json()["items"]}
    assert {name: items[name]["arn"] for name in NAMES} == arns
    for name in NAMES:
        ref = items[name]["reference_id"]
        assert items[name]["uri"].endswith(
            f".storage.us-east-1.amazonaws.com/{east}/reference/{ref}"
        )

    run = cli("catalog", "--journal", journal_path)  # json is the default
    assert run.code == 0, run.stderr
    assert run.stderr == ""  # nothing ambiguous
    doc = run.json()
    assert doc["conflicts"] == [] and set(doc["references"]) == set(NAMES)
    by_store = {(e["store_id"], n): e for n, es in doc["references"].items() for e in es}
    assert len(by_store) == 5
    account = account_for(os.environ["AWS_ACCESS_KEY_ID"])
    west_arns = emulator_arns(emulator, west, "us-west-2")
    for (store, name), entry in by_store.items():
        assert entry["arn"] == (arns if store == east else west_arns)[name]
        assert entry["account"] == account and entry["status"] == "IMPORTED"
        assert entry["fasta_uri"] == entry["uri"] + "/source"
        assert entry["uri"] == (
            f"omics://{account}.storage.{entry['region']}.amazonaws.com/{store}/reference/"
            f"{entry['reference_id']}"
        )
        assert entry["original_source"].startswith(f"s3://catalog-{entry['region']}/")
    assert by_store[(east, NAMES[0])]["reference_id"] == items[NAMES[0]]["reference_id"]

    yaml = pytest.importorskip("yaml")
    as_yaml = cli("catalog", "--journal", journal_path, "--format", "yaml")
    assert as_yaml.code == 0 and yaml.safe_load(as_yaml.stdout) == doc

    as_csv = cli("catalog", "--journal", journal_path, "--format", "csv")
    lines = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert as_csv.code == 0 and len(lines) == 5
    assert {(line["store_id"], line["name"]): line["fasta_uri"] for line in lines} == {
        key: entry["fasta_uri"] for key, entry in by_store.items()
    }

    snippet = tmp_path / "references.config"
    as_nextflow = cli("catalog", "--journal", journal_path, "--format", "nextflow", "-o", snippet)
    assert as_nextflow.code == 0 and as_nextflow.stdout == ""
    assert stat.S_IMODE(snippet.stat().st_mode) == 0o600
    params = parse_config(snippet.read_text())["params"]
    assert params["refimport"] == {
        region: {name: e["fasta_uri"] for (s, name), e in by_store.items() if s == store}
        for region, store in (("us-east-1", east), ("us-west-2", west))
    }
    assert params["refimport_stores"][west] == params["refimport"]["us-west-2"]


@pytest.mark.slow
def test_reports_list_the_arn_and_uri_of_each_imported_row(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    _, run = import_into(cli, emulator, s3_fasta, tmp_path, journal_path, "us-east-1", NAMES)
    items = {i["name"]: i for i in run.json()["items"]}
    report = cli("report", "--journal", journal_path, "--format", "json")
    assert {i["name"]: (i["arn"], i["uri"]) for i in report.json()["items"]} == {
        name: (item["arn"], item["uri"]) for name, item in items.items()
    }
    as_csv = cli("report", "--journal", journal_path, "--format", "csv")
    lines = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {line["name"]: line["uri"] for line in lines} == {
        name: item["uri"] for name, item in items.items()
    }
    html = tmp_path / "report.html"
    assert cli("report", "--journal", journal_path, "--format", "html", "-o", html).code == 0
    page = html.read_text()
    assert "References (3)" in page and all(item["arn"] in page for item in items.values())


def test_a_missing_journal_is_a_clear_error(cli: Callable[..., Run], tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    run = cli("catalog", "--journal", missing, "--format", "nextflow")
    assert run.code == 2 and run.stdout == ""
    assert f"no journal at {missing}" in run.stderr
    assert not missing.exists()
    not_a_journal = tmp_path / "notes.txt"
    not_a_journal.write_text("hello\n")
    run = cli("catalog", "--journal", not_a_journal)
    assert run.code == 2 and run.stdout == "" and "journal" in run.stderr
    assert not_a_journal.read_text() == "hello\n"
    bad = cli("catalog", "--journal", not_a_journal, "--format", "xml")
    assert bad.code == 2 and "invalid choice" in bad.stderr


def test_the_catalog_of_a_journal_without_references_is_empty_in_every_format(
    cli: Callable[..., Run], emulator: EmulatorThread, tmp_path: Path, journal_path: Path
) -> None:
    store = create_store(emulator)
    manifest = tmp_path / "m.csv"
    manifest.write_text("source_file,name\ns3://refimport-test/missing.fa,missing-ref\n")
    run = cli(
        "import", manifest, "--store-id", store, "--role-arn", role_arn(),
        "--endpoint-url", emulator.omics_endpoint_url, "--journal", journal_path,
        "--consistency-grace", "2",  # a job that made nothing: its name looked up again so long
    )  # fmt: skip
    assert run.code == 1, run.stderr  # the source is missing: the row failed
    assert json.loads(cli("catalog", "--journal", journal_path).stdout) == {
        "references": {},
        "conflicts": [],
    }
    snippet = cli("catalog", "--journal", journal_path, "--format", "nextflow")
    assert parse_config(snippet.stdout) == {"params": {"refimport": {}, "refimport_stores": {}}}


@pytest.mark.slow
def test_a_staged_source_is_listed_by_its_original_source(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    store = create_store(emulator)
    s3_fasta("stage/.keep", ">x\nACGT\n", bucket="catalog-staging")  # the staging bucket
    local = tmp_path / "local genome.fa"
    local.write_text(make_fasta("chr1", 300, seed=7))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'source_file,name\n"{local}",local-genome\n')
    run = cli(
        "import", manifest, "--store-id", store, "--role-arn", role_arn(),
        "--endpoint-url", emulator.omics_endpoint_url, "--journal", journal_path,
        "--staging", "us-east-1=s3://catalog-staging/refs/",
        "--s3-endpoint-url", emulator.s3_endpoint_url, "--json",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    [item] = run.json()["items"]
    assert item["source_file"].startswith("s3://catalog-staging/refs/") and item["uri"]
    doc = cli("catalog", "--journal", journal_path).json()
    [entry] = doc["references"]["local-genome"]
    assert entry["original_source"] == str(local)
    assert entry["uri"] == item["uri"] and entry["fasta_uri"] == item["uri"] + "/source"


@pytest.mark.slow
def test_the_catalog_of_a_dynamodb_journal(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    moto_endpoint: str,
) -> None:
    env = {"AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}
    url = f"dynamodb://refimport-catalog-{uuid.uuid4().hex[:8]}"
    assert cli("journal", "init", url, "--region", "us-east-1", env=env).code == 0
    store = create_store(emulator)
    uri = s3_fasta("ddb/1.fa", make_fasta("chr1", 200, seed=1))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{uri},GRCh38.p14\n")
    run = cli(
        "import", manifest, "--store-id", store, "--role-arn", role_arn(),
        "--endpoint-url", emulator.omics_endpoint_url, "--journal", url, "--json", env=env,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    [item] = run.json()["items"]
    snippet = cli("catalog", "--journal", url, "--format", "nextflow", env=env)
    assert snippet.code == 0, snippet.stderr
    params = parse_config(snippet.stdout)["params"]
    assert params["refimport"] == {"us-east-1": {"GRCh38.p14": item["uri"] + "/source"}}
    assert item["arn"] == emulator_arns(emulator, store, "us-east-1")["GRCh38.p14"]


@pytest.mark.slow
def test_one_manifest_into_two_regions_is_one_name_with_two_stores(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    emulator.configure(same_region=True)
    east, west = create_store(emulator, "us-east-1"), create_store(emulator, "us-west-2")
    s3_fasta("stage/.keep", ">x\nACGT\n", bucket="catalog-west-stage", region="us-west-2")
    source = s3_fasta("east/GRCh38.fa", make_fasta("chr1", 300, seed=3), bucket="catalog-east")
    targets = tmp_path / "targets.csv"
    targets.write_text(
        "store_id,region,role_arn,endpoint_url,staging\n"
        f"{east},us-east-1,{role_arn()},{emulator.omics_endpoint_url},\n"
        f"{west},us-west-2,{role_arn()},{emulator.omics_endpoint_url},"
        "s3://catalog-west-stage/refs/\n"
    )
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{source},GRCh38\n")
    run = cli(
        "import", manifest, "--targets", targets, "--journal", journal_path,
        "--s3-endpoint-url", emulator.s3_endpoint_url,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    doc = cli("catalog", "--journal", journal_path).json()
    entries = {e["region"]: e for e in doc["references"]["GRCh38"]}
    assert set(entries) == {"us-east-1", "us-west-2"}
    assert entries["us-east-1"]["store_id"] == east and entries["us-west-2"]["store_id"] == west
    # The west store imported a staged copy; the catalog names the manifest's source for both.
    assert {e["original_source"] for e in entries.values()} == {source}
    for region, store in (("us-east-1", east), ("us-west-2", west)):
        assert entries[region]["arn"] == emulator_arns(emulator, store, region)["GRCh38"]
    params = parse_config(cli("catalog", "--journal", journal_path, "--format", "nextflow").stdout)
    assert params["params"]["refimport"] == {
        region: {"GRCh38": entry["fasta_uri"]} for region, entry in entries.items()
    }
