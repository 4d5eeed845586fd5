"""kill -9 at random moments while ``refimport import --targets`` stages multi-part sources (issue
22's acceptance, end to end): the CLI as a subprocess, the emulator (same-Region rule on) reading
a counting moto S3 with small parts allowed, a local HTTP server sending slowly. After 20 kills
and a last run: every row imported exactly once per store, from the staging bucket of its own
Region, no object uploaded or completed twice (counted by the S3 server), no multipart upload
left open."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread, account_for, make_fasta
from tests.helpers.cli import create_store, run_cli
from tests.helpers.sources import SourceServer
from tests.helpers.staging_s3 import StagingS3

KILLS = 20
REGIONS = ("us-west-2", "eu-central-1")


def fasta(bases: int, seed: int) -> bytes:
    return make_fasta(f"chr{seed}", bases, seed=seed).encode()


@pytest.fixture
def counting_s3() -> Iterator[StagingS3]:
    pytest.importorskip("moto.server", reason="needs the emulator extra")
    with StagingS3() as server:
        yield server


def count(path: Path, sql: str) -> int:
    """One count from a SQLite file, read as another process would (0 before it exists)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # killed before it made the tables
    finally:
        conn.close()


def staging_rows(journal: Path) -> int:
    """How many rows the journal holds STAGING."""
    return count(journal, "SELECT count(*) FROM rows WHERE state = 'STAGING'")


def parts_staged(journal: Path) -> int:
    """How many parts of multipart uploads the Stager's ledger (beside the journal) recorded."""
    return count(journal.with_name(journal.name + ".staging"), "SELECT count(*) FROM staging_parts")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_while_staging_then_every_row_imported_once_per_store(
    counting_s3: StagingS3,
    emulator_factory: Callable[..., EmulatorThread],
    source_server: SourceServer,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    from async_refimport.emulator._faults import Faults

    emulator = emulator_factory(
        s3_endpoint_url=counting_s3.endpoint,
        same_region=True,
        time_scale=0.001,
        faults=Faults.none(),
    )
    role = f"arn:aws:iam::{account_for(os.environ['AWS_ACCESS_KEY_ID'])}:role/OmicsImport"
    # Sources: a slow HTTP file of many parts, a file on disk of many parts, an object in a
    # bucket of another Region, and small HTTP files.
    web = fasta(6_000_000, 1)  # 95 parts of 64 KiB, sent slowly: kills land mid-download
    disk = fasta(2_000_000, 2)
    copied = fasta(500_000, 3)
    (tmp_path / "disk.fa").write_bytes(disk)
    central = counting_s3.bucket("us-east-1")
    counting_s3.client("us-east-1").put_object(Bucket=central, Key="c/copied.fa", Body=copied)
    rows = [
        f"{source_server.add('/slow/web.fa', web, chunk_delay=0.25)},web-ref,",
        f"{tmp_path / 'disk.fa'},disk-ref,{hashlib.md5(disk).hexdigest()}",
        f"s3://{central}/c/copied.fa,copied-ref,",
    ]
    small = {f"small-{i}": fasta(5_000, 10 + i) for i in range(3)}
    rows += [f"{source_server.add(f'/{n}.fa', b)},{n}," for n, b in small.items()]
    manifest = tmp_path / "refs.csv"
    manifest.write_text("source_file,name,md5\n" + "\n".join(rows) + "\n")
    stores = {region: create_store(emulator, region) for region in REGIONS}
    buckets = {region: counting_s3.bucket(region) for region in REGIONS}
    targets = tmp_path / "targets.csv"
    targets.write_text(
        "store_id,region,role_arn,endpoint_url,staging\n"
        + "".join(
            f"{stores[r]},{r},{role},{emulator.omics_endpoint_url},s3://{buckets[r]}/stage/\n"
            for r in REGIONS
        )
    )
    args = [
        "import", str(manifest), "--targets", str(targets), "--journal", str(journal_path),
        "--s3-endpoint-url", counting_s3.endpoint, "--staging-part-size", "64KiB", "--quiet",
        "--staging-retry-delay", "0.01",
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    rng = random.Random(22)
    during_staging = 0
    trace = []
    first = True
    for _ in range(KILLS):
        parts = parts_staged(journal_path)
        proc = subprocess.Popen(
            [sys.executable, "-m", "async_refimport", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        # A random moment once this run is staging (a part more in the ledger than before it
        # started: start-up takes seconds under load), else (all staged) while it imports.
        if first or staging_rows(journal_path):
            deadline = time.monotonic() + 60
            while parts_staged(journal_path) == parts and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        else:
            time.sleep(rng.uniform(0.5, 3.0))
        first = False
        proc.kill()
        proc.wait(60)
        trace.append(staging_rows(journal_path))  # rows left STAGING by the kill
        during_staging += trace[-1] > 0
    assert during_staging >= 3, trace  # the kills did land while rows were staging

    last = run_cli(*args, "--json", timeout=300)
    assert last.code == 0, last.stderr
    items = last.json()["items"]
    names = {"web-ref", "disk-ref", "copied-ref", *small}
    assert {(i["store_id"], i["name"], i["status"]) for i in items} == {
        (stores[r], n, "IMPORTED") for r in REGIONS for n in names
    }
    stats = emulator.stats()
    writes = counting_s3.writes()
    expected = {"web-ref": web, "disk-ref": disk, "copied-ref": copied, **small}
    for region, store in stores.items():
        refs = stats["references"][store]
        assert sorted(r["name"] for r in refs) == sorted(names)  # each exactly once
        s3 = counting_s3.client(region)
        for ref in refs:
            assert ref["source_region"] == region
            bucket, key = ref["source_file"].removeprefix("s3://").split("/", 1)
            assert bucket == buckets[region]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert body == expected[ref["name"]]  # the whole object, never a half-staged one
            made = writes["put"].get(f"{bucket}/{key}", 0) + writes["complete"].get(
                f"{bucket}/{key}", 0
            )
            assert made == 1, (ref["name"], made)  # uploaded or completed once
        assert s3.list_multipart_uploads(Bucket=buckets[region]).get("Uploads", []) == []
    again = run_cli(*args, "--json")
    assert again.code == 0 and len(again.json()["items"]) == len(items)
    assert counting_s3.writes() == writes  # a re-run stages nothing
