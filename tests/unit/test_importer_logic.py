"""The engine's decisions, against an in-memory fake at the gateway seam (no HTTP, no sleeping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_refimport import (
    CredentialsError,
    Importer,
    ImporterClosedError,
    ImporterSettings,
    ImportRequest,
    PermanentServiceError,
    PollingPolicy,
    RequestValidationError,
    RetryPolicy,
    RowState,
    SQLiteJournal,
    StorePaused,
    StoreRef,
    TransientServiceError,
)
from tests.helpers.common import ROLE_ARN, STORE_ID
from tests.helpers.fakes import FakeOmics, transient

FAST = ImporterSettings(
    retry=RetryPolicy(attempts=5, initial=0.001, max_backoff=0.01),
    polling=PollingPolicy(first_poll=0.001, min_interval=0.001, max_interval=0.01),
    busy_wait=0.01,
    consistency_grace=0.05,
)
STORE = StoreRef(STORE_ID, "us-east-1")


def requests(n: int, prefix: str = "ref") -> list[ImportRequest]:
    return [
        ImportRequest(
            STORE_ID, ROLE_ARN, f"s3://genomes/{prefix}{i}.fa", f"{prefix}{i}", region="us-east-1"
        )
        for i in range(n)
    ]


def importer(journal: Path, fake: FakeOmics, **kw: object) -> Importer:
    return Importer(journal, gateway=fake, settings=FAST, **kw)  # type: ignore[arg-type]


async def test_rows_are_packed_into_full_jobs_one_at_a_time(journal_path: Path) -> None:
    fake = FakeOmics(polls_to_finish=2)
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(250)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert sorted(len(j.sources) for j in fake.jobs.values()) == [50, 100, 100]
    assert fake.max_active == 1
    assert fake.calls["start"] == 3
    assert len({r.reference_id for r in results}) == 250


async def test_max_sources_per_job_is_honoured(journal_path: Path) -> None:
    fake = FakeOmics()
    async with importer(journal_path, fake, max_sources_per_job=7) as imp:
        await imp.wait(await imp.submit(requests(20)))
    assert sorted(len(j.sources) for j in fake.jobs.values()) == [6, 7, 7]


async def test_existing_names_are_already_present_without_a_job(journal_path: Path) -> None:
    fake = FakeOmics(existing={"ref0": "4444444444", "ref1": "5555555555"})
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    assert [r.state for r in results] == [
        RowState.ALREADY_PRESENT,
        RowState.ALREADY_PRESENT,
        RowState.IMPORTED,
    ]
    assert results[0].reference_id == "4444444444"
    [job] = fake.jobs.values()
    assert [s.name for s in job.sources] == ["ref2"]
    assert fake.calls["list_references"] == 1  # in bulk, not once per row


async def test_failed_sources_carry_the_service_message(journal_path: Path) -> None:
    fake = FakeOmics(fail_names={"ref1"})
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    assert [r.state for r in results] == [RowState.IMPORTED, RowState.FAILED, RowState.IMPORTED]
    assert results[1].message == "not FASTA"


async def test_ambiguous_timeout_after_creation_reuses_the_job(journal_path: Path) -> None:
    fake = FakeOmics(start_faults=[transient()], create_before_fault=True)
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(5)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1


async def test_ambiguous_timeout_is_resolved_even_if_the_token_is_forgotten(
    journal_path: Path,
) -> None:
    fake = FakeOmics(start_faults=[transient()], create_before_fault=True)
    original = fake.start_import

    async def forgetful_start(*args: object) -> str:
        fake.tokens.clear()
        return await original(*args)  # type: ignore[arg-type]

    fake.start_import = forgetful_start  # type: ignore[method-assign]
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(5)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1  # found by its sources, not started twice
    assert fake.calls["list_imports"] >= 1


async def test_permanent_start_error_fails_the_rows_with_its_message(journal_path: Path) -> None:
    fake = FakeOmics(
        start_faults=[
            PermanentServiceError(
                "no such store", code="ResourceNotFoundException", operation="Start"
            )
        ]
    )
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(2)))
    assert {r.state for r in results} == {RowState.FAILED}
    assert "ResourceNotFoundException: no such store" in (results[0].message or "")


async def test_recovery_adopts_a_pending_job_the_service_created(journal_path: Path) -> None:
    fake = FakeOmics()
    # A crashed run: the job was written ahead and started, but its id never reached the journal.
    async with SQLiteJournal(journal_path) as j:
        ids = await j.add_rows([(STORE, r) for r in requests(4)])
        job = await j.begin_job(STORE, await j.queued_rows(STORE, 100), "token-crash")
    from async_refimport.gateway.aws import SourceSpec

    await fake.start_import(
        STORE, ROLE_ARN, [SourceSpec(r.source_file, r.name) for r in job.rows], "token-crash"
    )
    fake.tokens.clear()  # and the service has forgotten the token since
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1 and fake.calls["start"] == 1


async def test_recovery_starts_a_pending_job_that_never_reached_the_service(
    journal_path: Path,
) -> None:
    fake = FakeOmics()
    async with SQLiteJournal(journal_path) as j:
        ids = await j.add_rows([(STORE, r) for r in requests(4)])
        await j.begin_job(STORE, await j.queued_rows(STORE, 100), "token-lost")
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert list(fake.tokens) == ["token-lost"]  # sent with the written-ahead token


async def test_rerun_of_a_finished_submission_sends_nothing(journal_path: Path) -> None:
    fake = FakeOmics()
    async with importer(journal_path, fake) as imp:
        first = await imp.wait(await imp.submit(requests(10)))
    starts = fake.calls["start"]
    async with importer(journal_path, fake) as imp:
        again = await imp.wait(await imp.submit(requests(10)))
    assert [r.row_id for r in again] == [r.row_id for r in first]
    assert fake.calls["start"] == starts


async def test_invalid_submission_journals_nothing(journal_path: Path) -> None:
    fake = FakeOmics()
    bad = [*requests(2), ImportRequest(STORE_ID, ROLE_ARN, "not-s3", "x", region="us-east-1")]
    async with importer(journal_path, fake) as imp:
        with pytest.raises(RequestValidationError) as info:
            await imp.submit(bad)
        assert await imp.results() == []
    assert {e.field for e in info.value.errors} == {"source_file", "name"}


async def test_closed_importer_refuses_reuse(journal_path: Path) -> None:
    imp = importer(journal_path, FakeOmics())
    async with imp:
        pass
    with pytest.raises(ImporterClosedError):
        async with imp:
            pass
    with pytest.raises(ImporterClosedError):
        await imp.submit(requests(1))


async def test_500_after_creation_is_resolved_by_lookup_not_a_second_job(
    journal_path: Path,
) -> None:
    error = TransientServiceError(
        "oops", code="InternalServerException", operation="Start", status=500, ambiguous=True
    )
    fake = FakeOmics(start_faults=[error], create_before_fault=True)
    original = fake.start_import

    async def forgetful_start(*args: object) -> str:
        fake.tokens.clear()
        return await original(*args)  # type: ignore[arg-type]

    fake.start_import = forgetful_start  # type: ignore[method-assign]
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(5)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1


async def test_a_403_while_polling_pauses_instead_of_losing_the_job(journal_path: Path) -> None:
    fake = FakeOmics(polls_to_finish=2)
    original = fake.get_import
    denied = [CredentialsError("expired", code="ExpiredTokenException", operation="Get")]

    async def flaky_get(*args: object) -> object:
        if denied and fake.calls.get("get", 0) >= 1:
            raise denied.pop()
        return await original(*args)  # type: ignore[arg-type]

    fake.get_import = flaky_get  # type: ignore[method-assign]
    paused = []
    async with importer(journal_path, fake) as imp:
        async with imp.subscribe() as events:
            ids = await imp.submit(requests(3))
            results = await imp.wait(ids)
            while True:
                event = events.receive_nowait()  # type: ignore[attr-defined]
                if isinstance(event, StorePaused):
                    paused.append(event)
                    break
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1
    assert "expired" in paused[0].reason


async def test_permanent_lookup_error_after_an_ambiguous_start_keeps_the_job(
    journal_path: Path,
) -> None:
    fake = FakeOmics(start_faults=[transient()], create_before_fault=True)
    original = fake.list_imports
    denied = [PermanentServiceError("no", code="AccessDeniedException", operation="List")]

    async def flaky_list(*args: object) -> object:
        if denied:
            raise denied.pop()
        return await original(*args)  # type: ignore[arg-type]

    fake.list_imports = flaky_list  # type: ignore[method-assign]
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1


async def test_same_name_from_another_source_is_refused(journal_path: Path) -> None:
    fake = FakeOmics()
    async with importer(journal_path, fake) as imp:
        await imp.wait(await imp.submit(requests(1)))
        other = ImportRequest(
            STORE_ID, ROLE_ARN, "s3://genomes/elsewhere.fa", "ref0", region="us-east-1"
        )
        with pytest.raises(RequestValidationError) as info:
            await imp.submit([other])
    [error] = info.value.errors
    assert error.field == "source_file" and "s3://genomes/ref0.fa" in error.reason
