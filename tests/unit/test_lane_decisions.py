"""The lane's decisions: ``classify`` as a table, then each undocumented behaviour against the fake.

``classify`` is pure (error in, action out), so its cases are a table. The scenarios below use the
in-memory fake at the gateway seam, bent to answer as the real service might where AWS documents
nothing: 404s right after a Start, other codes for a busy store, jobs cancelled by someone else,
names taken while a job ran, Lists that lag.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from async_refimport import (
    CredentialsError,
    Importer,
    PermanentServiceError,
    RowState,
    ServiceError,
    StoreBusyError,
    TransientServiceError,
)
from async_refimport._retry import RetryPolicy, backoff_delay, gave_up
from async_refimport.engine.start import StartAction, classify, may_mean_busy
from async_refimport.gateway.aws import GET, LIST_JOBS, START, JobSnapshot, SourceStatus
from tests.helpers.fakes import FakeOmics
from tests.unit.test_importer_logic import FAST, requests

GRACE = FAST.consistency_grace


def permanent(code: str, message: str = "no", operation: str = START) -> PermanentServiceError:
    return PermanentServiceError(message, code=code, operation=operation, status=400)


def transient(code: str, *, ambiguous: bool, operation: str = START) -> TransientServiceError:
    return TransientServiceError("boom", code=code, operation=operation, ambiguous=ambiguous)


BUSY_400 = "Cannot start an import job while import job 123 is in progress in reference store 9"
ONE_AT_A_TIME = "Only one reference import job may run at a time in a reference store"


@pytest.mark.parametrize(
    ("error", "maybe_sent", "action"),
    [
        # A 402 is capacity (the store's job slot, or the account's import quota): never a
        # verdict on the rows, whatever its words.
        (
            StoreBusyError("busy", code="ServiceQuotaExceededException", operation=START),
            False,
            "capacity",
        ),
        (permanent("ServiceQuotaExceededException"), False, "capacity"),
        (permanent("ServiceQuotaExceededException"), True, "capacity"),
        # A 409 or a 400 to a Start the engine validated is confirmed with a List, whatever its
        # words: the decision rests on the code and on what the service shows.
        (permanent("ConflictException"), False, "confirm_busy"),
        (permanent("ConflictException"), True, "confirm_busy"),
        (permanent("ValidationException", BUSY_400), False, "confirm_busy"),
        (permanent("ValidationException", ONE_AT_A_TIME), False, "confirm_busy"),
        (
            permanent(
                "ValidationException", "Value at 'sources.1.name' failed to satisfy constraint"
            ),
            False,
            "confirm_busy",
        ),
        (permanent("ValidationException", "clientToken already used"), False, "confirm_busy"),
        (permanent("SomethingNew", "may run"), False, "confirm_busy"),  # a 400 by its status
        # ...but not a conflict on another operation.
        (permanent("ConflictException", operation=LIST_JOBS), False, "reject"),
        # Transient: resent at once, or looked for first when the Start may have worked.
        (transient("ThrottlingException", ambiguous=False), False, "retry"),
        (transient("RequestTimeoutException", ambiguous=True), False, "lookup"),
        (transient("InternalServerException", ambiguous=True), False, "lookup"),
        (transient("ConnectionClosedError", ambiguous=True), False, "lookup"),
        (transient("ThrottlingException", ambiguous=False), True, "lookup"),
        (transient("ThrottlingException", ambiguous=False, operation=LIST_JOBS), True, "lookup"),
        # The lookup listed the job but Get does not know it yet: read-after-write lag.
        (permanent("ResourceNotFoundException", operation=GET), True, "lookup"),
        # Permanent: the rows fail, unless the job may exist or the credentials lapsed.
        (permanent("ResourceNotFoundException"), False, "reject"),
        (permanent("AccessDeniedException"), False, "reject"),
        (permanent("AccessDeniedException", operation=LIST_JOBS), True, "pause"),
        (permanent("ResourceNotFoundException"), True, "pause"),
        (
            CredentialsError("expired", code="ExpiredTokenException", operation=START),
            False,
            "pause",
        ),
    ],
)
def test_classify(error: ServiceError, maybe_sent: bool, action: str) -> None:
    assert classify(error, maybe_sent=maybe_sent) is StartAction(action)


def test_classify_is_total_over_the_error_tree() -> None:
    # Every kind of ServiceError gets an action, with or without an earlier send.
    for error in (
        ServiceError("x", code="Weird", operation=START),
        transient("Weird", ambiguous=False),
        permanent("Weird"),
        CredentialsError("x", code="Weird", operation=START),
        StoreBusyError("x", code="Weird", operation=START),
    ):
        for maybe_sent in (False, True):
            assert isinstance(classify(error, maybe_sent=maybe_sent), StartAction)


def test_may_mean_busy_never_reads_the_message() -> None:
    # The same codes in any words give the same answer; the words of another code change nothing.
    for words in ("job 1 is IN_PROGRESS", ONE_AT_A_TIME, "name must be 3 characters", ""):
        assert may_mean_busy(permanent("ValidationException", words))
        assert may_mean_busy(permanent("ConflictException", words))
        assert not may_mean_busy(
            PermanentServiceError(words, code="AccessDeniedException", operation=START, status=403)
        )


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    policy = RetryPolicy(initial=0.5, max_backoff=3.0)
    assert [backoff_delay(policy, n, draw=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        3.0,
        3.0,
    ]
    assert backoff_delay(policy, 4, draw=lambda: 0.0) == 0.0
    assert gave_up(RetryPolicy(attempts=3), 3, 0.0)
    assert gave_up(RetryPolicy(max_elapsed=10), 1, 10.0)
    assert not gave_up(RetryPolicy(attempts=3, max_elapsed=10), 2, 9.0)


# -- the fake, answering as the real service might ---------------------------------------------


def importer(journal: Path, fake: FakeOmics, **settings: object) -> Importer:
    return Importer(journal, gateway=fake, settings=replace(FAST, **settings))  # type: ignore[arg-type]


def not_found(operation: str = GET) -> PermanentServiceError:
    return PermanentServiceError(
        "not found", code="ResourceNotFoundException", operation=operation, status=404
    )


async def test_a_404_right_after_start_is_waited_out(journal_path: Path) -> None:
    fake = FakeOmics(polls_to_finish=2)
    original = fake.get_import
    lagging = {"left": 3}

    async def get_with_lag(store: object, job_id: str) -> JobSnapshot:
        if lagging["left"]:
            lagging["left"] -= 1
            raise not_found()
        return await original(store, job_id)  # type: ignore[arg-type]

    fake.get_import = get_with_lag  # type: ignore[method-assign]
    async with importer(journal_path, fake, consistency_grace=30.0) as imp:
        results = await imp.wait(await imp.submit(requests(5)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1  # no job lost, none sent twice
    assert fake.calls.get("list_imports", 0) == 0  # within the grace, no List was needed


async def test_a_job_still_listed_is_never_given_up(journal_path: Path) -> None:
    fake = FakeOmics(polls_to_finish=1)
    original = fake.get_import
    lagging = {"left": 6}

    async def get_with_lag(store: object, job_id: str) -> JobSnapshot:
        if lagging["left"]:
            lagging["left"] -= 1
            raise not_found()
        return await original(store, job_id)  # type: ignore[arg-type]

    fake.get_import = get_with_lag  # type: ignore[method-assign]
    # A grace shorter than the lag: the List is asked, shows the job, and the lane keeps watching.
    async with importer(journal_path, fake, consistency_grace=0.005) as imp:
        results = await imp.wait(await imp.submit(requests(5)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(fake.jobs) == 1
    assert fake.calls["list_imports"] >= 1


async def test_a_job_neither_gettable_nor_listed_is_lost_after_the_grace(
    journal_path: Path,
) -> None:
    fake = FakeOmics()

    async def always_missing(store: object, job_id: str) -> JobSnapshot:
        fake._count("get")
        fake.jobs[job_id].status = "GONE"  # vanished: no longer holds the store either
        raise not_found()

    async def nothing_listed(*args: object, **kwargs: object) -> list[object]:
        fake._count("list_imports")
        return []

    fake.get_import = always_missing  # type: ignore[method-assign]
    fake.list_imports = nothing_listed  # type: ignore[method-assign]
    async with importer(journal_path, fake, max_attempts=2) as imp:
        results = await imp.wait(await imp.submit(requests(2)))
    # Requeued once per lost job, then failed: each verdict took a List besides the 404s.
    assert {r.state for r in results} == {RowState.FAILED}
    assert results[0].message == "the service no longer knows the import job"
    assert len(fake.jobs) == 2
    assert fake.calls["list_imports"] >= 2 and fake.calls["get"] >= 4


class BusyFake(FakeOmics):
    """Refuses a Start with ``code`` while ``others`` (someone else's jobs) run."""

    def __init__(self, code: str, message: str, *, other_running_for: int) -> None:
        super().__init__()
        self.code, self.message = code, message
        self.other_running_for = other_running_for  # Start attempts the other job outlives
        self.refused = 0

    async def start_import(self, *args: object) -> str:
        if self.other_running_for > 0:
            self.other_running_for -= 1
            self.refused += 1
            self._count("start")
            raise permanent(self.code, self.message)
        return await super().start_import(*args)  # type: ignore[arg-type]

    async def list_imports(self, store, created_after=None, status=None):  # type: ignore[no-untyped-def]
        own = await super().list_imports(store, created_after, status)
        if self.other_running_for > 0 and status == "IN_PROGRESS":
            from async_refimport.gateway.aws import JobSummary

            return [*own, JobSummary("someone-else", "IN_PROGRESS", None)]
        return own


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ServiceQuotaExceededException", "store busy"),
        ("ConflictException", "conflict"),
        ("ValidationException", BUSY_400),
        ("ValidationException", ONE_AT_A_TIME),
        ("ConflictException", ONE_AT_A_TIME),
    ],
)
async def test_a_busy_refusal_confirmed_by_the_list_waits(
    journal_path: Path, code: str, message: str
) -> None:
    fake = BusyFake(code, message, other_running_for=3)
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert fake.refused == 3 and len(fake.jobs) == 1


async def test_a_busy_looking_refusal_with_no_active_job_stands_after_the_grace(
    journal_path: Path,
) -> None:
    fake = BusyFake("ConflictException", "token reused", other_running_for=10**6)
    fake.list_imports = FakeOmics.list_imports.__get__(fake)  # type: ignore[method-assign]
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(2)))
    assert {r.state for r in results} == {RowState.FAILED}
    assert results[0].message == "ConflictException: token reused"
    assert fake.refused >= 2  # asked again while the grace ran, in case the List lagged
    assert fake.jobs == {}


@pytest.mark.parametrize("code", ["ValidationException", "ConflictException"])
async def test_a_400_or_409_that_persists_while_the_store_stays_free_fails_with_its_message(
    journal_path: Path, code: str
) -> None:
    fake = BusyFake(code, ONE_AT_A_TIME, other_running_for=10**6)
    fake.list_imports = FakeOmics.list_imports.__get__(fake)  # type: ignore[method-assign]
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(2)))
    assert {r.state for r in results} == {RowState.FAILED}
    assert results[0].message == f"{code}: {ONE_AT_A_TIME}"
    assert fake.refused >= 2 and fake.jobs == {}


async def test_a_full_account_quota_with_the_store_free_never_fails_the_rows(
    journal_path: Path,
) -> None:
    """402 for far longer than the grace, no job on the store: the rows wait, with a growing
    back-off capped at ``quota_wait_max``, then import."""
    refusals = 20
    fake = BusyFake("ServiceQuotaExceededException", "Quota exceeded", other_running_for=refusals)
    fake.list_imports = FakeOmics.list_imports.__get__(fake)  # type: ignore[method-assign]
    async with importer(journal_path, fake, quota_wait_max=GRACE) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert fake.refused == refusals and len(fake.jobs) == 1


async def test_a_job_cancelled_from_outside_fails_its_unfinished_rows(journal_path: Path) -> None:
    fake = FakeOmics(polls_to_finish=1)

    async def cancelled(store: object, job_id: str) -> JobSnapshot:
        job = fake.jobs[job_id]
        first, *rest = job.sources
        fake.existing[first.name] = "7777777777"
        return JobSnapshot(
            job_id,
            "CANCELLED",
            "stopped by ops",
            job.created,
            None,
            (
                SourceStatus(first.name, first.source_file, "FINISHED", "7777777777"),
                *(SourceStatus(s.name, s.source_file, "NOT_STARTED") for s in rest),
            ),
        )

    fake.get_import = cancelled  # type: ignore[method-assign]
    async with importer(journal_path, fake) as imp:
        results = await imp.wait(await imp.submit(requests(3)))
    [job_id] = fake.jobs
    assert [r.state for r in results] == [RowState.IMPORTED, RowState.FAILED, RowState.FAILED]
    assert results[0].reference_id == "7777777777"
    assert results[1].message == (
        f"import job {job_id} was cancelled outside async_refimport (stopped by ops)"
    )
    assert len(fake.jobs) == 1  # not sent again behind the canceller's back


async def test_a_name_taken_meanwhile_and_listed_late_is_already_present(
    journal_path: Path,
) -> None:
    fake = FakeOmics(polls_to_finish=1)
    original_get, original_list = fake.get_import, fake.list_references
    hidden = {"left": 3}

    async def taken_during_the_job(store: object, job_id: str) -> JobSnapshot:
        snapshot = await original_get(store, job_id)  # type: ignore[arg-type]
        name = fake.jobs[job_id].sources[0].name
        # Another tool imported the first name while our job ran: that source failed.
        sources = list(snapshot.sources)
        sources[0] = SourceStatus(
            name, sources[0].source_file, "FAILED", None, f"Reference name '{name}' already exists"
        )
        return replace(snapshot, status="COMPLETED_WITH_FAILURES", sources=tuple(sources))

    async def lagging_list(store: object, name: str | None = None) -> list[object]:
        if name is not None and hidden["left"]:
            hidden["left"] -= 1
            return []
        return await original_list(store, name)  # type: ignore[arg-type,return-value]

    fake.get_import = taken_during_the_job  # type: ignore[method-assign]
    fake.list_references = lagging_list  # type: ignore[method-assign]
    async with importer(journal_path, fake, consistency_grace=30.0) as imp:
        results = await imp.wait(await imp.submit(requests(2)))
    assert [r.state for r in results] == [RowState.ALREADY_PRESENT, RowState.IMPORTED]
    assert results[0].reference_id == fake.existing["ref0"]
    assert hidden["left"] == 0  # it took several looks


async def test_a_failed_source_that_names_no_conflict_is_checked_once(journal_path: Path) -> None:
    fake = FakeOmics(fail_names={"ref1"})
    async with importer(journal_path, fake, consistency_grace=30.0) as imp:
        results = await imp.wait(await imp.submit(requests(2)))
    assert [r.state for r in results] == [RowState.IMPORTED, RowState.FAILED]
    assert fake.calls["list_references"] == 2  # the store's listing, then one check
