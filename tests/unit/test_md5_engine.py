"""Every settled row carries the md5 the service reports for its reference: one listing per job
for new references, the store's listing for names already there; without it a row still settles."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from async_refimport import Importer, RowState, ServiceError, StoreRef
from async_refimport.testing import MemoryGateway
from tests.unit.test_importer_logic import FAST, requests


def md5_of(uri: str) -> str:
    return hashlib.md5(uri.encode()).hexdigest()  # MemoryGateway's stand-in checksum


async def test_imported_and_already_present_rows_carry_their_md5(journal_path: Path) -> None:
    gateway = MemoryGateway()
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        first = await imp.wait(await imp.submit(requests(150)))
    assert {r.state for r in first} == {RowState.IMPORTED}
    assert [r.md5 for r in first] == [md5_of(r.source_file) for r in first]
    assert gateway.calls["checksums"] == 2  # one listing per job, not one call per row

    # A fresh journal, the same store: the names are there, their md5 from the store's listing.
    async with Importer(
        journal_path.with_name("other.sqlite"), gateway=gateway, settings=FAST
    ) as imp:
        again = await imp.wait(await imp.submit(requests(150)))
    assert {r.state for r in again} == {RowState.ALREADY_PRESENT}
    assert [r.md5 for r in again] == [r.md5 for r in first]
    assert gateway.calls["checksums"] == 2


async def test_a_failed_checksum_listing_leaves_the_md5_unknown(journal_path: Path) -> None:
    class NoChecksums(MemoryGateway):
        async def reference_checksums(
            self, store: StoreRef, created_after: datetime | None
        ) -> dict[str, str]:
            raise ServiceError("down", code="InternalServerException", operation="ListReferences")

    async with Importer(journal_path, gateway=NoChecksums(), settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    assert [(r.state, r.md5) for r in results] == [(RowState.IMPORTED, None)] * 3


async def test_one_listing_per_job_from_the_jobs_creation_time(journal_path: Path) -> None:
    windows: list[datetime | None] = []

    class Recording(MemoryGateway):
        async def reference_checksums(
            self, store: StoreRef, created_after: datetime | None
        ) -> dict[str, str]:
            windows.append(created_after)
            found = await super().reference_checksums(store, created_after)
            assert len(found) <= 100  # this job's references, not the store's
            return found

    gateway = Recording()
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests(250)))
    assert all(r.md5 for r in results)
    assert windows == sorted(j.created for j in gateway.jobs.values())
