"""The sources' pre-flight against the emulator's S3 (real aioboto3 HEAD requests to moto)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from async_refimport import (
    Importer,
    ImporterSettings,
    ImportRequest,
    PollingPolicy,
    PreflightPolicy,
    RowState,
)
from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import run_cli
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import create_store, genomes, requests_for
from tests.helpers.logcapture import capture_logs

SETTINGS = ImporterSettings(
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.3),
    busy_wait=0.05,
    consistency_grace=3.0,
)


def with_s3(emulator: EmulatorThread, **policy: object) -> ImporterSettings:
    # The emulator is a custom HealthOmics endpoint: the check needs the S3 it reads.
    return dataclasses.replace(
        SETTINGS,
        preflight=PreflightPolicy(s3_endpoint_url=emulator.s3_endpoint_url, **policy),  # type: ignore[arg-type]
    )


def broken_requests(emulator: EmulatorThread, store_id: str) -> list[ImportRequest]:
    return [
        ImportRequest(
            store_id,
            ROLE_ARN,
            uri,
            name,
            region="us-east-1",
            endpoint_url=emulator.omics_endpoint_url,
        )
        for name, uri in (
            ("no-such-key", "s3://genomes/nowhere/missing.fa"),
            ("no-such-bucket", "s3://no-such-bucket-refimport/missing.fa"),
        )
    ]


async def test_a_missing_object_fails_its_row_before_any_start(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    good = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 4, "pf"))
    async with Importer(journal_path, settings=with_s3(emulator)) as imp:
        results = await imp.wait(await imp.submit(good + broken_requests(emulator, store_id)))
    by_name = {r.name: r for r in results}
    for name in ("no-such-key", "no-such-bucket"):
        assert by_name[name].state is RowState.FAILED
        assert by_name[name].job_id is None  # never part of a job
        assert "not found in S3 (404)" in (by_name[name].message or "")
    assert {by_name[r.name].state for r in good} == {RowState.IMPORTED}
    [job] = emulator.stats()["jobs"]
    assert job["sources"] == 4  # the missing ones cost no slot


async def test_an_object_over_the_size_limit_fails_its_row(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    big = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 1, "big", length=5000))
    small = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 1, "small", length=50))
    # A limit of 1 kB stands for the service's 15 GB.
    async with Importer(journal_path, settings=with_s3(emulator, max_bytes=1000)) as imp:
        results = await imp.wait(await imp.submit(big + small))
    assert results[0].state is RowState.FAILED
    assert "over the service's limit of 1000 bytes" in (results[0].message or "")
    assert results[1].state is RowState.IMPORTED


async def test_s3_out_of_reach_never_fails_a_row(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 6, "unreach"))
    # Nothing listens on port 9: every HEAD is refused, as from a host that cannot reach S3.
    settings = dataclasses.replace(
        SETTINGS, preflight=PreflightPolicy(s3_endpoint_url="http://127.0.0.1:9")
    )
    with capture_logs() as logs:
        async with Importer(journal_path, settings=settings, max_sources_per_job=3) as imp:
            results = await imp.wait(await imp.submit(requests))
    assert {r.state for r in results} == {RowState.IMPORTED}
    warnings = [e for e in logs if e["event"] == "preflight.off"]
    assert len(warnings) == 1  # said once, then the check is off for the run
    assert "S3 cannot be reached" in warnings[0]["reason"]


async def test_a_dry_run_lists_missing_sources(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    good = requests_for(emulator, store_id, "us-east-1", genomes(s3_fasta, 3, "dry"))
    # Checked in a dry run even with the check otherwise off.
    settings = with_s3(emulator, enabled=False)
    async with Importer(journal_path, settings=settings) as imp:
        [plan] = await imp.plan(good + broken_requests(emulator, store_id))
    assert sorted(plan.missing) == ["no-such-bucket", "no-such-key"]
    assert plan.jobs == 1
    assert emulator.stats()["calls"]["StartReferenceImportJob"] == 0


def test_the_cli_dry_run_lists_missing_sources(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    store_id = create_store(emulator, "us-east-1")
    rows = [{"name": n, "source_file": u} for n, u in genomes(s3_fasta, 2, "clidry")]
    rows.append({"name": "no-such-key", "source_file": "s3://genomes/nowhere/gone.fa"})
    manifest = tmp_path / "refs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--store-id", store_id, "--role-arn", ROLE_ARN, "--region", "us-east-1"]
    common += ["--endpoint-url", emulator.omics_endpoint_url]
    common += ["--s3-endpoint-url", emulator.s3_endpoint_url, "--journal", tmp_path / "j.sqlite"]
    run = run_cli("import", manifest, "--dry-run", "--json", *common)
    assert run.code == 0, run.stderr
    [store] = json.loads(run.stdout)["stores"]
    assert store["missing_sources"] == [
        {"name": "no-such-key", "reason": "s3://genomes/nowhere/gone.fa: not found in S3 (404)"}
    ]
    assert store["to_import"] == 2
    text = run_cli("import", manifest, "--dry-run", *common)
    assert "Missing source (the row would fail): no-such-key" in text.stdout
