"""The engine against the emulator, over real HTTP with the real SDK (aioboto3)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport import (
    Importer,
    ImporterSettings,
    ImportRequest,
    PollingPolicy,
    RetryPolicy,
    RowState,
    SetupError,
)
from async_refimport.emulator import EmulatorThread, Faults
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import (
    REGIONS,
    create_store,
    genomes,
    overlapping_jobs,
    references_by_store,
    requests_for,
)

FAST = ImporterSettings(
    retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.5, max_elapsed=60),
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.5),
    busy_wait=0.05,
    lookup_margin=5.0,
    consistency_grace=2.0,
)


def setup_stores(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], per_store: int
) -> tuple[list[ImportRequest], dict[str, str]]:
    requests: list[ImportRequest] = []
    stores: dict[str, str] = {}
    for region in REGIONS:
        store_id = create_store(emulator, region)
        stores[store_id] = region
        items = genomes(s3_fasta, per_store, f"g-{region}")
        requests += requests_for(emulator, store_id, region, items)
    return requests, stores


def assert_exactly_once(emulator: EmulatorThread, results: list, expected_names: set[str]) -> None:
    stats = emulator.stats()
    assert stats["rejected_concurrent_starts"] == 0
    assert stats["name_conflicts"] == 0
    assert overlapping_jobs(stats) == []
    for store, names in references_by_store(stats).items():
        duplicates = [n for n, c in Counter(names).items() if c > 1]
        assert duplicates == [], f"store {store} has duplicate references {duplicates}"
    imported = {r.name for r in results if r.state in (RowState.IMPORTED, RowState.ALREADY_PRESENT)}
    assert imported == expected_names


@pytest.mark.slow
async def test_hundreds_of_rows_over_several_stores(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    requests, stores = setup_stores(emulator, s3_fasta, per_store=120)
    # Two broken sources and a pre-existing reference in the first store.
    first = next(iter(stores))
    broken = [
        ImportRequest(
            first,
            ROLE_ARN,
            s3_fasta("bad/not-fasta.fa", "this is not a genome\n", bucket="genomes"),
            "broken-text",
            region=stores[first],
            endpoint_url=emulator.omics_endpoint_url,
        ),
        ImportRequest(
            first,
            ROLE_ARN,
            s3_fasta("bad/dups.fa", ">a\nACGT\n>a\nACGT\n", bucket="genomes"),
            "broken-dups",
            region=stores[first],
            endpoint_url=emulator.omics_endpoint_url,
        ),
    ]
    # One genome was imported earlier by someone else (another journal): ALREADY_PRESENT below.
    async with Importer(journal_path.with_name("someone-else.sqlite"), settings=FAST) as imp:
        await imp.wait(await imp.submit(requests[:1]))
    async with Importer(journal_path, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests + broken))
    states = Counter(r.state for r in results)
    assert states[RowState.FAILED] == 2
    assert states[RowState.ALREADY_PRESENT] == 1
    assert states[RowState.IMPORTED] == len(requests) - 1
    failed = {r.name: r.message for r in results if r.state is RowState.FAILED}
    assert set(failed) == {"broken-text", "broken-dups"}
    assert all(failed.values())
    assert_exactly_once(emulator, results, {r.name for r in requests})
    stats = emulator.stats()
    # Full packing: 120 rows per store → 2 jobs each (plus the one-row job and the broken pair's).
    starts = stats["calls"].get("StartReferenceImportJob", 0)
    assert starts <= 3 * 2 + 2
    # The emulator's reference ids are what the journal recorded.
    by_name = {ref["name"]: ref["id"] for refs in stats["references"].values() for ref in refs}
    assert all(by_name[r.name] == r.reference_id for r in results if r.state is RowState.IMPORTED)


@pytest.mark.slow
async def test_faults_change_nothing_for_the_user(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    requests, _ = setup_stores(emulator, s3_fasta, per_store=80)
    emulator.configure(
        faults=Faults(tps=5.0, p_timeout=0.15, p_500=0.1, p_drop=0.05, p_drop_after=0.05, seed=7)
    )
    async with Importer(journal_path, settings=FAST, max_sources_per_job=25) as imp:
        results = await imp.wait(await imp.submit(requests))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert_exactly_once(emulator, results, {r.name for r in requests})
    stats = emulator.stats()
    injected = sum(stats["faults"].values()) + sum(stats["throttled"].values())
    assert injected > 0, "the faults must actually have been exercised"


@pytest.mark.slow
async def test_rerun_of_finished_submission_creates_no_job(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    requests, _ = setup_stores(emulator, s3_fasta, per_store=20)
    async with Importer(journal_path, settings=FAST) as imp:
        await imp.wait(await imp.submit(requests))
    jobs_before = len(emulator.stats()["jobs"])
    async with Importer(journal_path, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(emulator.stats()["jobs"]) == jobs_before


async def test_rerun_with_a_fresh_journal_finds_names_already_present(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    requests, _ = setup_stores(emulator, s3_fasta, per_store=10)
    async with Importer(tmp_path / "a.sqlite", settings=FAST) as imp:
        await imp.wait(await imp.submit(requests))
    jobs_before = len(emulator.stats()["jobs"])
    async with Importer(tmp_path / "b.sqlite", settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests))
    assert {r.state for r in results} == {RowState.ALREADY_PRESENT}
    assert len(emulator.stats()["jobs"]) == jobs_before


async def test_unknown_store_is_a_setup_error_and_its_rows_wait(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    items = genomes(s3_fasta, 2, "nostore")
    requests = requests_for(emulator, "9999999999", "us-east-1", items)
    async with Importer(journal_path, settings=FAST) as imp:
        assert [e.kind for e in await imp.verify_setup(requests)] == ["store"]
        ids = await imp.submit(requests)
        with pytest.raises(SetupError, match="no such reference store") as caught:
            await imp.wait(ids)
        results = await imp.results(ids)
    assert "ResourceNotFoundException" in str(caught.value.cause)
    # Not the rows' fault: none failed, they wait for the set-up to be fixed.
    assert {r.state for r in results} == {RowState.QUEUED}
