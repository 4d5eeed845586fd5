"""A journal that cannot be written stops the run with its reason, loses nothing, and a re-run
resumes; the lane also checks that it still holds its store before it sends a Start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from async_refimport import Importer, JobStarted, JournalError, RowState
from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import create_store, genomes, requests_for
from tests.integration.test_engine import FAST

# The stopped run's lease stays in the journal; this process is alive, so the re-run (in the
# same process) waits it out rather than taking it over at once: keep it short.
SHORT_LEASE = replace(FAST, lease_ttl=1.0)


async def test_a_journal_deleted_mid_run_stops_the_run_and_a_rerun_resumes(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    store = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store, "us-east-1", genomes(s3_fasta, 12, "gone"))
    path = tmp_path / "journal.sqlite"
    with pytest.raises(JournalError, match="deleted or replaced"):
        async with Importer(journal=path, max_sources_per_job=4, settings=SHORT_LEASE) as imp:
            async with imp.subscribe() as events:
                ids = await imp.submit(requests)
                async for event in events:
                    if isinstance(event, JobStarted):
                        moved = path.with_suffix(".moved")
                        path.rename(moved)  # as a user or a clean-up script might
                        break
            with anyio.fail_after(60):
                await imp.wait(ids)
    # The run stopped instead of importing what it could no longer record. Put the journal
    # back: the re-run recovers the job in flight and imports every row exactly once.
    moved.rename(path)
    async with Importer(journal=path, settings=SHORT_LEASE) as again:
        results = await again.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    refs = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(refs) == sorted(r.name for r in requests)
