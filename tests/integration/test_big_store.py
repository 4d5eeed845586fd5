"""A store of 100,000 references over HTTP (issue 25): a few rows import after a handful of
ListReferences calls, with no set-up error and no name the store holds sent again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from async_refimport import Importer, RowState
from async_refimport.emulator import EmulatorThread
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
