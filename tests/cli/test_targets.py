"""``refimport import --targets`` with staging, run as a subprocess against the emulator (its
same-Region rule on, moto S3 with buckets in several Regions) and a local HTTP server: one manifest
of sources from another Region's bucket, the HTTP server and local disk, imported into stores of
three Regions, each from a bucket of its own Region; a re-run stages and imports nothing new; and
each way staging can go wrong is one clear row error or set-up line, nothing imported from a bad
object."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from async_refimport.emulator import EmulatorThread, account_for, make_fasta
from tests.helpers.cli import Run, create_store, starts
from tests.helpers.sources import SourceServer

REGIONS = ("us-east-1", "us-west-2", "eu-central-1")
SOURCE_REGION = "eu-west-1"  # the central bucket: another Region than every store's


def role_arn() -> str:
    """A role of the account the CLI's credentials are in."""
    return f"arn:aws:iam::{account_for(os.environ['AWS_ACCESS_KEY_ID'])}:role/OmicsImport"


def s3(emulator: EmulatorThread) -> Any:
    return boto3.client("s3", **emulator.client_kwargs("s3"))


def make_bucket(emulator: EmulatorThread, bucket: str, region: str) -> None:
    where: dict[str, Any] = {}
    if region != "us-east-1":
        where["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client = s3(emulator)
    try:
        client.create_bucket(Bucket=bucket, **where)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass


def staged_objects(emulator: EmulatorThread, bucket: str) -> dict[str, str]:
    """Every object of ``bucket``: key -> ETag."""
    listed = s3(emulator).list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


def import_args(
    emulator: EmulatorThread, manifest: Path, journal: str | Path, *extra: str | Path
) -> list[str | Path]:
    return [
        "import", manifest, "--journal", journal, "--json",
        "--s3-endpoint-url", emulator.s3_endpoint_url,
        "--staging-retry-delay", "0.01",  # a retried source never sleeps for real
        *extra,
    ]  # fmt: skip


def write_targets(
    path: Path, emulator: EmulatorThread, stores: dict[str, str], staging: dict[str, str]
) -> Path:
    lines = ["store_id,region,role_arn,endpoint_url,staging"]
    for region, store in stores.items():
        area = staging.get(region, "")
        lines.append(f"{store},{region},{role_arn()},{emulator.omics_endpoint_url},{area}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def regional(emulator: EmulatorThread) -> EmulatorThread:
    """The emulator with HealthOmics' same-Region rule on."""
    emulator.configure(same_region=True)
    return emulator


@pytest.mark.slow
def test_one_manifest_into_three_regions_each_from_its_own_region(
    cli: Callable[..., Run],
    regional: EmulatorThread,
    s3_fasta: Callable[..., str],
    source_server: SourceServer,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    emulator = regional
    rows = ["source_file,name,md5"]
    for i in range(30):
        fasta = make_fasta(f"chr{i}", 300, seed=i).encode()
        md5 = hashlib.md5(fasta).hexdigest()
        if i % 3 == 0:
            uri = s3_fasta(f"central/g{i}.fa", fasta, bucket="central-refs", region=SOURCE_REGION)
        elif i % 3 == 1:
            uri = source_server.add(f"/pub/g{i}.fa", fasta)
        else:
            local = tmp_path / "disk" / f"g{i}.fa"
            local.parent.mkdir(exist_ok=True)
            local.write_bytes(fasta)
            uri = str(local) if i % 2 else local.as_uri()
        rows.append(f"{uri},genome-{i:02d},{md5 if i % 4 else ''}")
    manifest = tmp_path / "refs.csv"
    manifest.write_text("\n".join(rows) + "\n")
    stores = {region: create_store(emulator, region) for region in REGIONS}
    staging = {region: f"s3://stage-{region}/refimport/" for region in REGIONS}
    for region in REGIONS:
        make_bucket(emulator, f"stage-{region}", region)
    targets = write_targets(tmp_path / "targets.csv", emulator, stores, staging)

    run = cli(*import_args(emulator, manifest, journal_path, "--targets", targets), timeout=300)
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["summary"]["imported"] == 90 and doc["summary"]["total"] == 90
    items = doc["items"]
    # Grouped by store: each store's 30 rows together, in the targets file's order.
    assert [i["store_id"] for i in items] == [s for s in stores.values() for _ in range(30)]
    stats = emulator.stats()
    for region, store in stores.items():
        refs = stats["references"][store]
        assert sorted(r["name"] for r in refs) == [f"genome-{i:02d}" for i in range(30)]
        for ref in refs:  # imported from the staging bucket of the store's own Region
            assert ref["source_region"] == region, ref
            assert ref["source_file"].startswith(f"s3://stage-{region}/refimport/"), ref
        for job in (j for j in stats["jobs"] if j["store_id"] == store):
            for source in job["source_statuses"]:  # every job's sources, as the service saw
                assert source["bucket_region"] == region, source
                assert source["source_file"].startswith(f"s3://stage-{region}/"), source
        # Staged once per Region: one object per source (content-addressed keys).
        assert len(staged_objects(emulator, f"stage-{region}")) == 30
    by_name = {(i["store_id"], i["name"]): i for i in items}
    assert by_name[(stores["us-west-2"], "genome-01")]["status"] == "IMPORTED"
    hits = len(source_server.hits())
    before = {r: staged_objects(emulator, f"stage-{r}") for r in REGIONS}
    jobs = starts(emulator)

    again = cli(*import_args(emulator, manifest, journal_path, "--targets", targets))
    assert again.code == 0, again.stderr
    assert again.json()["summary"]["imported"] == 90
    assert starts(emulator) == jobs  # nothing imported anew
    assert len(source_server.hits()) == hits  # nothing downloaded anew
    assert {r: staged_objects(emulator, f"stage-{r}") for r in REGIONS} == before


@pytest.mark.slow
def test_each_way_staging_fails_is_one_clear_line(
    cli: Callable[..., Run],
    regional: EmulatorThread,
    source_server: SourceServer,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    emulator = regional
    good = make_fasta("chr1", 400, seed=1).encode()
    source_server.add("/ok.fa", good)
    source_server.add("/cut.fa", make_fasta("chr2", 4000, seed=2).encode(), truncate_at=100)
    source_server.status("/gone.fa", 404)
    wrong_md5 = hashlib.md5(b"something else").hexdigest()
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "source_file,name,md5\n"
        f"{source_server.url('/ok.fa')},ok-ref,{hashlib.md5(good).hexdigest()}\n"
        f"{source_server.url('/cut.fa')},truncated-ref,\n"
        f"{source_server.url('/ok.fa')}?again,md5-ref,{wrong_md5}\n"
        f"{source_server.url('/gone.fa')},missing-ref,\n"
    )
    east = create_store(emulator, "us-east-1")
    make_bucket(emulator, "stage-east", "us-east-1")
    run = cli(
        *import_args(emulator, manifest, journal_path),
        "--store-id", east, "--role-arn", role_arn(), "--region", "us-east-1",
        "--endpoint-url", emulator.omics_endpoint_url,
        "--staging", "us-east-1=s3://stage-east/refs/",
    )  # fmt: skip
    assert run.code == 1, run.stderr  # rows failed, the others imported
    items = {i["name"]: i for i in run.json()["items"]}
    assert items["ok-ref"]["status"] == "IMPORTED"
    assert items["truncated-ref"]["status"] == "FAILED"
    assert "content-length announced" in items["truncated-ref"]["message"].lower()
    assert items["md5-ref"]["status"] == "FAILED" and "md5" in items["md5-ref"]["message"].lower()
    assert items["missing-ref"]["status"] == "FAILED"
    assert (
        "404" in items["missing-ref"]["message"]
        or "not found" in items["missing-ref"]["message"].lower()
    )
    # Nothing imported from a bad object: one reference, one object staged.
    [ref] = emulator.stats()["references"][east]
    assert ref["name"] == "ok-ref"
    assert len(staged_objects(emulator, "stage-east")) == 1

    # A staging bucket in the wrong Region: a set-up line for the store, nothing journaled.
    west = create_store(emulator, "us-west-2")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"source_file,name\n{source_server.url('/ok.fa')},west-ref\n")
    wrong = cli(
        *import_args(emulator, bad, tmp_path / "wrong.sqlite"),
        "--store-id", west, "--role-arn", role_arn(), "--region", "us-west-2",
        "--endpoint-url", emulator.omics_endpoint_url,
        "--staging", "us-west-2=s3://stage-east/refs/",
    )  # fmt: skip
    assert wrong.code == 3, wrong.stderr
    assert "staging area us-west-2=s3://stage-east/refs/" in wrong.stderr
    assert "us-east-1" in wrong.stderr  # where the bucket really is
    assert emulator.stats()["references"].get(west, []) == []

    # No staging area for a row that needs one: a row error up front, nothing journaled.
    nowhere = cli(
        *import_args(emulator, bad, tmp_path / "nowhere.sqlite"),
        "--store-id", west, "--role-arn", role_arn(), "--region", "us-west-2",
        "--endpoint-url", emulator.omics_endpoint_url,
        "--staging", "us-east-1=s3://stage-east/refs/",
    )  # fmt: skip
    assert nowhere.code == 2, nowhere.stderr
    assert "no staging area is given for us-west-2" in nowhere.stderr
    status = cli("status", "--journal", tmp_path / "nowhere.sqlite", "--json")
    assert status.code != 0 or status.json()["stores"] == []


def test_a_target_without_a_role_and_a_row_setting_a_target_field(
    cli: Callable[..., Run], emulator: EmulatorThread, tmp_path: Path, journal_path: Path
) -> None:
    targets = tmp_path / "targets.csv"
    targets.write_text(
        f"store_id,region,role_arn\n1234567890,us-east-1,{role_arn()}\n2345678901,us-west-2,\n"
    )
    manifest = tmp_path / "m.csv"
    manifest.write_text("source_file,name\ns3://b/x.fa,xxx\n")
    run = cli(*import_args(emulator, manifest, journal_path, "--targets", targets))
    assert run.code == 2 and run.stdout == ""
    assert f"{targets}:3: role_arn:" in run.stderr
    assert not journal_path.exists()

    targets.write_text(f"store_id,region,role_arn\n1234567890,us-east-1,{role_arn()}\n")
    manifest.write_text("source_file,name,region\ns3://b/x.fa,xxx,us-west-2\n")
    run = cli(*import_args(emulator, manifest, journal_path, "--targets", targets))
    assert run.code == 2, run.stderr
    assert f"{manifest}:2: region: is decided by the targets file" in run.stderr
    assert not journal_path.exists()


def test_a_target_failing_set_up_does_not_hold_the_others_back(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    east = create_store(emulator, "us-east-1")
    uri = s3_fasta("t/a.fa", make_fasta("chr1", 200, seed=3), bucket="targets-east")
    targets = tmp_path / "targets.csv"
    targets.write_text(
        "store_id,region,role_arn,endpoint_url\n"
        f"{east},us-east-1,{role_arn()},{emulator.omics_endpoint_url}\n"
        f"9999999999,us-east-1,{role_arn()},{emulator.omics_endpoint_url}\n"
    )
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{uri},aaa-ref\n")
    run = cli(*import_args(emulator, manifest, journal_path, "--targets", targets))
    assert run.code == 3, run.stderr  # as today: a store whose set-up is wrong
    assert "9999999999" in run.stderr
    [item] = run.json()["items"]
    assert (item["store_id"], item["status"]) == (east, "IMPORTED")


def test_a_dynamodb_journal_refuses_rows_to_stage_up_front(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    source_server: SourceServer,
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    env = {"AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}
    url = f"dynamodb://refimport-staging-{uuid.uuid4().hex[:8]}"
    assert cli("journal", "init", url, "--region", "us-east-1", env=env).code == 0
    store = create_store(emulator, "us-east-1")
    make_bucket(emulator, "stage-ddb", "us-east-1")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{source_server.url('/w.fa')},web-ref\n")
    run = cli(
        *import_args(emulator, manifest, url),
        "--store-id", store, "--role-arn", role_arn(), "--region", "us-east-1",
        "--endpoint-url", emulator.omics_endpoint_url,
        "--staging", "us-east-1=s3://stage-ddb/refs/", env=env,
    )  # fmt: skip
    assert run.code == 2, run.stderr
    assert "staging needs a SQLite journal" in run.stderr
    assert source_server.hits() == [] and starts(emulator) == 0


def test_a_dry_run_plans_rows_to_stage_without_staging_them(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    source_server: SourceServer,
    tmp_path: Path,
) -> None:
    stores = {region: create_store(emulator, region) for region in REGIONS[:2]}
    targets = write_targets(tmp_path / "targets.csv", emulator, stores, {})
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "source_file,name\n"
        + "".join(f"{source_server.url(f'/d{i}.fa')},dry-{i}\n" for i in range(3))
    )
    run = cli(
        "import", manifest, "--targets", targets, "--dry-run", "--json",
        "--staging", "us-east-1=s3://stage-a/p/", "--staging", "us-west-2=s3://stage-b/p/",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    plans = {p["store_id"]: p for p in run.json()["stores"]}
    assert set(plans) == set(stores.values())
    for plan in plans.values():
        assert (plan["rows"], plan["to_import"], plan["jobs"]) == (3, 3, 1)
        assert "missing_sources" not in plan
    assert "6 row(s) have a source that is staged first" in run.stderr
    assert source_server.hits() == [] and starts(emulator) == 0


def test_an_s3_source_of_another_region_with_nowhere_to_stage_is_a_row_error(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    east = create_store(emulator, "us-east-1")
    far = s3_fasta(
        "x/far.fa", make_fasta("chr1", 200, seed=4), bucket="far-src", region="eu-west-1"
    )
    near = s3_fasta("x/near.fa", make_fasta("chr2", 200, seed=5), bucket="near-src")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{far},far-ref\n{near},near-ref\n")
    run = cli(
        *import_args(emulator, manifest, journal_path),
        "--store-id", east, "--role-arn", role_arn(), "--region", "us-east-1",
        "--endpoint-url", emulator.omics_endpoint_url,
    )  # fmt: skip
    assert run.code == 2, run.stderr
    [line] = [x for x in run.stderr.splitlines() if "far-ref" in x]
    assert "eu-west-1" in line and "us-east-1" in line
    assert "--staging us-east-1=s3://" in line
    assert "near-ref" not in run.stderr  # its bucket is the store's Region
    assert starts(emulator) == 0
    status = cli("status", "--journal", journal_path, "--json")
    assert status.code != 0 or status.json()["stores"] == []


def test_a_target_naming_no_endpoint_takes_the_runs_endpoint_url(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    east = create_store(emulator, "us-east-1")
    uri = s3_fasta("t/e.fa", make_fasta("chr1", 200, seed=6), bucket="targets-endpoint")
    targets = tmp_path / "targets.csv"
    targets.write_text(f"store_id,region,role_arn\n{east},us-east-1,{role_arn()}\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{uri},endpoint-ref\n")
    run = cli(
        *import_args(emulator, manifest, journal_path, "--targets", targets),
        "--endpoint-url", emulator.omics_endpoint_url,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    [item] = run.json()["items"]
    assert (item["store_id"], item["status"]) == (east, "IMPORTED")
    assert [r["name"] for r in emulator.stats()["references"][east]] == ["endpoint-ref"]


def test_a_target_with_nowhere_to_stage_is_one_setup_line_and_the_others_go_on(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    source_server: SourceServer,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    stores = {r: create_store(emulator, r) for r in ("us-east-1", "us-west-2")}
    make_bucket(emulator, "stage-only-east", "us-east-1")
    targets = write_targets(
        tmp_path / "targets.csv", emulator, stores, {"us-east-1": "s3://stage-only-east/refs/"}
    )
    rows = ["source_file,name"]
    for i in range(3):
        url = source_server.add(f"/n{i}.fa", make_fasta(f"c{i}", 300, seed=i).encode())
        rows.append(f"{url},n{i}-ref")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    run = cli(*import_args(emulator, manifest, journal_path, "--targets", targets), timeout=300)
    assert run.code == 3, run.stderr  # as for a target failing its set-up check
    assert run.stderr.count("no staging area is given for us-west-2") == 1, run.stderr
    assert stores["us-west-2"] in run.stderr
    items = run.json()["items"]
    assert {(i["store_id"], i["status"]) for i in items} == {(stores["us-east-1"], "IMPORTED")}
    assert len(items) == 3
    assert emulator.stats()["references"].get(stores["us-west-2"], []) == []
