"""A store of 100,000 references over HTTP (issue 25): a few rows import after a handful of
ListReferences calls, with no set-up error and no name the store holds sent again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from async_refimport import Importer, RowState
from async_refimport._pacing import Pacer
from async_refimport.emulator import EmulatorThread
from async_refimport.gateway.aws import AwsGateway
from tests.helpers.integration import create_store, genomes, requests_for
from tests.integration.test_engine import FAST

BIG = 100_000


def calls(emulator: EmulatorThread, operation: str) -> int:
    return int(emulator.stats()["calls"].get(operation, 0))


async def test_a_store_of_100000_references_imports_ten_rows_in_a_handful_of_listings(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store = create_store(emulator, emulator.region)
    items = genomes(s3_fasta, 10, "big")
    # Another client's references, one of them bearing a name of ours, far down the listing.
    others = [f"other-{i:06d}" for i in range(BIG - 1)]
    assert emulator.add_references(store, [*others[:70_000], items[3][0], *others[70_000:]]) == BIG
    requests = requests_for(emulator, store, emulator.region, items)
    async with Importer(journal_path, settings=FAST) as imp:
        assert await imp.verify_setup(requests) == ()  # the CLI's check: one page, not 1,000
        results = await imp.wait(await imp.submit(requests))
        assert imp.setup_errors == ()
    by_name = {r.name: r for r in results}
    assert by_name[items[3][0]].state is RowState.ALREADY_PRESENT
    assert {r.state for n, r in by_name.items() if n != items[3][0]} == {RowState.IMPORTED}
    [job] = emulator.stats()["jobs"]
    assert job["store_id"] == store
    assert calls(emulator, "StartReferenceImportJob") == 1
    # Before the Start: the first page and one name-filtered call per row; after the job: one
    # listing of its new references' checksums. A listing of the store would be 1,000 calls.
    assert calls(emulator, "ListReferences") <= 1 + len(items) + 2


async def test_the_gateway_pages_a_store_and_asks_which_job_made_a_reference(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    store_id = create_store(emulator, emulator.region)
    emulator.add_references(store_id, [f"put-{i:03d}" for i in range(250)])
    items = genomes(s3_fasta, 1, "made")
    requests = requests_for(emulator, store_id, emulator.region, items)
    store = requests[0].store()
    async with AwsGateway(pacer=Pacer()) as gateway:
        sizes, page = [], await gateway.list_references_page(store)
        while True:
            sizes.append(len(page.references))
            if page.last:
                break
            page = await gateway.list_references_page(store, page.next_token)
        assert sizes == [100, 100, 50]  # maxResults 100, every page once
        put = page.references[0].reference_id
        assert await gateway.reference_creation_job(store, put) is None  # no job made it
        async with Importer(journal_path, settings=FAST, gateway=gateway) as imp:
            [result] = await imp.wait(await imp.submit(requests))
        assert result.state is RowState.IMPORTED and result.reference_id is not None
        [job] = emulator.stats()["jobs"]
        assert await gateway.reference_creation_job(store, result.reference_id) == job["job_id"]
