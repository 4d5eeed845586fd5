"""A big store at the gateway seam (issue 25): the set-up bound covers the first page only, a few
rows are checked by name instead of a whole listing, many rows start before the listing ends, and
whether one of our jobs made a reference is asked (creationJobId), not inferred."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from async_refimport import Importer, RowState, StoreRef, TransientServiceError
from async_refimport._settings import ImporterSettings
from async_refimport.engine.presence import StoreNames, held_references
from async_refimport.engine.setup import first_listing, first_page, rest_of_listing
from async_refimport.gateway.base import LIST_REFS, JobSnapshot, ReferencePage, SourceStatus
from async_refimport.testing import MemoryGateway
from tests.unit.test_importer_logic import FAST, requests

STORE = StoreRef("1234567890", "us-east-1")


def big(size: int, *, page_size: int = 10, prefix: str = "other") -> MemoryGateway:
    """A store already holding ``size`` references of another client's."""
    existing = {f"{prefix}-{i}": str(2_000_000_000 + i) for i in range(size)}
    return MemoryGateway(existing=existing, page_size=page_size)


class SlowPages(MemoryGateway):
    """Every page after the first answers only after ``delay`` seconds."""

    delay: float = 0.05

    async def list_references_page(
        self, store: StoreRef, next_token: str | None = None
    ) -> ReferencePage:
        if next_token is not None:
            await anyio.sleep(self.delay)
        return await super().list_references_page(store, next_token)


# -- the gateway seam -----------------------------------------------------------------------------


async def test_memory_pages_cover_the_store_once_in_order() -> None:
    gateway = big(25)
    page, names = await gateway.list_references_page(STORE), []
    while True:
        names += [r.name for r in page.references]
        if page.last:
            break
        page = await gateway.list_references_page(STORE, page.next_token)
    assert names == [f"other-{i}" for i in range(25)]
    assert gateway.calls["list_references"] == 3


async def test_memory_creation_job_names_the_job_that_made_the_reference(
    journal_path: Path,
) -> None:
    gateway = MemoryGateway(existing={"theirs": "1"})
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        [result] = await imp.wait(await imp.submit(requests(1)))
    [job] = gateway.jobs.values()
    assert result.reference_id is not None
    assert await gateway.reference_creation_job(STORE, result.reference_id) == job.job_id
    assert await gateway.reference_creation_job(STORE, "1") is None  # put there, not imported


# -- the set-up bound ------------------------------------------------------------------------------


async def test_the_setup_bound_covers_the_first_page_only() -> None:
    # 40 pages, each later one slow: the listing takes far longer than the bound, and that is
    # a big store, not an endpoint that does not answer.
    gateway = SlowPages(existing={f"n{i}": str(i) for i in range(40)}, page_size=1)
    refs = await first_listing(
        gateway, STORE, setup_timeout=0.2, retry_wait=0.01, answered=lambda s: False
    )
    assert len(refs) == 40


async def test_the_first_page_says_whether_more_follow() -> None:
    page = await first_page(
        big(15), STORE, setup_timeout=5, retry_wait=0.01, answered=lambda s: False
    )
    assert len(page.references) == 10 and not page.last


async def test_a_later_page_that_fails_for_a_while_is_read_again() -> None:
    refused = TransientServiceError(
        "busy", code="ThrottlingException", operation=LIST_REFS, status=429
    )
    gateway = big(30)
    first = await gateway.list_references_page(STORE)
    gateway.list_faults = [refused, refused]
    refs = await rest_of_listing(gateway, STORE, first, wait=0.01)
    assert len(refs) == 30


# -- which names a big store holds -----------------------------------------------------------------


def names_of(gateway: MemoryGateway, clock: list[float] | None = None) -> StoreNames:
    now = clock or [0.0]
    return StoreNames(
        gateway,
        STORE,
        ImporterSettings(busy_wait=0.01),
        clock=lambda: now[0],
        sleep=anyio.sleep,
        pause=lambda error: None,
    )


async def test_a_few_names_are_asked_by_name_without_listing_the_store() -> None:
    gateway = big(10_000)  # 1,000 pages
    names = names_of(gateway)
    names.seed(await gateway.list_references_page(STORE), 0.0)
    wanted = ["other-7000", "new-1", "new-2"]

    async def queued() -> int:
        return len(wanted)

    async with anyio.create_task_group() as tg:
        held = await names.present(wanted, queued=queued, spawn=tg)
    assert held == {"other-7000": "2000007000"}
    # The first page, then one filtered call per name: no listing of the other 999 pages.
    assert gateway.calls["list_references"] == 1 + 3
    assert not names.complete


async def test_many_rows_list_the_rest_of_the_store_in_the_background() -> None:
    gateway = big(2_000)  # 200 pages
    names = names_of(gateway)
    names.seed(await gateway.list_references_page(STORE), 0.0)
    pack = ["other-1500", *(f"new-{i}" for i in range(9))]

    async def queued() -> int:
        return 1_000  # many packs follow: the listing serves them all

    async with anyio.create_task_group() as tg:
        held = await names.present(pack, queued=queued, spawn=tg)
        assert held == {"other-1500": "2000001500"}
        with anyio.fail_after(30):
            while not names.complete:  # noqa: ASYNC110 - the listing is the lane's task, not ours
                await anyio.sleep(0.01)
        # Once listed, a pack is decided by the listing alone.
        calls = gateway.calls["list_references"]
        held = await names.present(["other-1999", "new-99"], queued=queued, spawn=tg)
    assert held == {"other-1999": "2000001999"}
    assert gateway.calls["list_references"] == calls
    assert names.references == 2_000


async def test_a_listing_older_than_existence_ttl_is_read_again() -> None:
    gateway = MemoryGateway(existing={"a": "1"})
    clock = [0.0]
    names = names_of(gateway, clock)
    names.seed(await gateway.list_references_page(STORE), 0.0)
    gateway.existing["b"] = "2"  # another client, after the listing
    clock[0] = ImporterSettings().existence_ttl + 1

    async def queued() -> int:
        return 1

    async with anyio.create_task_group() as tg:
        assert await names.present(["b"], queued=queued, spawn=tg) == {"b": "2"}


async def test_a_failed_name_check_is_asked_again_never_taken_for_absent() -> None:
    gateway = big(500)
    names = names_of(gateway)
    names.seed(await gateway.list_references_page(STORE), 0.0)
    refused = TransientServiceError(
        "busy", code="ThrottlingException", operation=LIST_REFS, status=429
    )
    original = gateway.list_references
    failures = {"left": 3}

    async def flaky(store: StoreRef, name: str | None = None) -> list[object]:
        if failures["left"]:
            failures["left"] -= 1
            raise refused
        return await original(store, name)  # type: ignore[return-value]

    gateway.list_references = flaky  # type: ignore[method-assign,assignment]

    async def queued() -> int:
        return 1

    async with anyio.create_task_group() as tg:
        held = await names.present(["other-400"], queued=queued, spawn=tg)
    assert held == {"other-400": "2000000400"}
    assert failures["left"] == 0


# -- the engine over a big store -------------------------------------------------------------------


async def test_a_big_store_imports_a_few_rows_in_a_handful_of_calls(journal_path: Path) -> None:
    gateway = big(100_000, page_size=100)
    gateway.existing["ref1"] = "7777777777"  # one of ours is there already, far down the list
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests(10)))
    assert [r.state for r in results].count(RowState.IMPORTED) == 9
    assert results[1].state is RowState.ALREADY_PRESENT
    assert results[1].reference_id == "7777777777"
    [job] = gateway.jobs.values()
    assert "ref1" not in [s.name for s in job.sources]  # never sent
    assert gateway.calls["list_references"] <= 1 + 10  # not the 1,001 pages of a listing
    assert imp.setup_errors == ()


async def test_many_rows_into_a_big_store_send_no_name_it_holds(journal_path: Path) -> None:
    gateway = big(3_000, page_size=10)
    taken = {f"ref{i}" for i in range(0, 250, 7)}
    gateway.existing.update({name: str(3_000_000_000 + i) for i, name in enumerate(taken)})
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests(250)))
    present = {r.name for r in results if r.state is RowState.ALREADY_PRESENT}
    assert present == taken
    assert {r.state for r in results if r.name not in taken} == {RowState.IMPORTED}
    sent = [s.name for job in gateway.jobs.values() for s in job.sources]
    assert not taken & set(sent) and len(sent) == len(set(sent)) == 250 - len(taken)


class LostThenTaken(MemoryGateway):
    """The first job makes its references but is reported FAILED as a whole (its rows are
    queued again); the next job's sources then fail because their names exist."""

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot:
        snapshot = await super().get_import(store, job_id)
        if not snapshot.done:
            return snapshot
        if job_id == min(self.jobs):
            return replace(snapshot, status="FAILED", message="internal error", sources=())
        sources = tuple(
            SourceStatus(s.name, s.source_file, "FAILED", None, "Reference name exists")
            for s in snapshot.sources
        )
        return replace(snapshot, status="COMPLETED_WITH_FAILURES", sources=sources)


async def test_a_reference_made_by_an_earlier_job_of_ours_is_imported_not_present(
    journal_path: Path,
) -> None:
    gateway = LostThenTaken()
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests(2)))
    first = min(gateway.jobs)
    assert [r.state for r in results] == [RowState.IMPORTED, RowState.IMPORTED]
    assert [r.reference_id for r in results] == [gateway.existing["ref0"], gateway.existing["ref1"]]
    assert {gateway.creators[r.reference_id or ""] for r in results} == {first}
    assert gateway.calls["metadata"] >= 1  # asked, not inferred


async def test_a_name_held_before_the_run_is_already_present_without_asking(
    journal_path: Path,
) -> None:
    gateway = MemoryGateway(existing={"ref0": "9"})
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests(1)))
    assert [r.state for r in results] == [RowState.ALREADY_PRESENT]
    assert gateway.calls.get("metadata", 0) == 0  # never sent before: nothing to ask


@pytest.mark.parametrize("size", [0, 99, 100, 101])
async def test_page_edges(size: int, journal_path: Path) -> None:
    gateway = big(size, page_size=100)
    async with Importer(journal_path, gateway=gateway, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    assert {r.state for r in results} == {RowState.IMPORTED}


async def test_a_small_store_listed_again_after_existence_ttl_costs_one_call() -> None:
    gateway = MemoryGateway(existing={"a": "1"})
    clock = [0.0]
    names = names_of(gateway, clock)
    names.seed(await gateway.list_references_page(STORE), 0.0)
    clock[0] = ImporterSettings().existence_ttl + 1
    before = gateway.calls["list_references"]
    pack = ["a", "b", "c", "d"]

    async def queued() -> int:
        return len(pack)

    async with anyio.create_task_group() as tg:
        assert await names.present(pack, queued=queued, spawn=tg) == {"a": "1"}
    # One page read again, not one filtered call per name.
    assert gateway.calls["list_references"] == before + 1


async def test_a_pack_does_not_wait_for_a_listing_that_keeps_failing() -> None:
    gateway = big(5_000)
    names = names_of(gateway)
    names.seed(await gateway.list_references_page(STORE), 0.0)
    refused = TransientServiceError(
        "busy", code="ServiceUnavailableException", operation=LIST_REFS, status=503
    )

    async def failing(store: StoreRef, next_token: str | None = None) -> ReferencePage:
        raise refused

    gateway.list_references_page = failing  # type: ignore[method-assign]

    async def queued() -> int:
        return 1_000

    async with anyio.create_task_group() as tg:
        with anyio.fail_after(30):
            held = await names.present(["other-4000", "new"], queued=queued, spawn=tg)
        tg.cancel_scope.cancel()
    assert held == {"other-4000": "2000004000"}  # decided by name, the listing stuck


async def test_a_dry_run_sees_the_names_it_needs_of_a_big_store() -> None:
    gateway = big(5_000)
    page = await gateway.list_references_page(STORE)
    refs = await held_references(gateway, STORE, page, ["other-4321", "new"], 0.01)
    assert "other-4321" in {r.name for r in refs}
    assert gateway.calls["list_references"] == 1 + 2 + 2  # 2 pages ahead, then each name


async def test_a_dry_run_lists_a_small_store_whole() -> None:
    gateway = big(30)
    page = await gateway.list_references_page(STORE)
    refs = await held_references(gateway, STORE, page, [f"n{i}" for i in range(5)], 0.01)
    assert len(refs) == 30
    assert gateway.calls["list_references"] == 3
