"""Set-up problems at a store's first call: told apart from data problems and passing faults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from async_refimport import (
    CredentialsError,
    Importer,
    PermanentServiceError,
    RowState,
    SetupError,
    StorePaused,
    StoreRef,
    TransientServiceError,
)
from async_refimport.engine.setup import first_listing
from async_refimport.gateway.aws import LIST_REFS
from async_refimport.testing import MemoryGateway
from tests.unit.test_importer_logic import FAST, requests

STORE = StoreRef("1234567890", "us-east-1")


def refused(status: int | None) -> TransientServiceError:
    code = "ConnectionError" if status is None else "ThrottlingException"
    return TransientServiceError("no", code=code, operation=LIST_REFS, status=status)


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (
            CredentialsError("x", code="ProfileNotFound", operation=LIST_REFS),
            "credentials",
            "unknown AWS profile",
        ),
        (
            CredentialsError("x", code="NoCredentialsError", operation=LIST_REFS),
            "credentials",
            "no AWS credentials",
        ),
        (
            PermanentServiceError(
                "not authorized", code="AccessDeniedException", operation=LIST_REFS, status=403
            ),
            "access",
            "iam:PassRole",
        ),
        (
            PermanentServiceError(
                "no store", code="ResourceNotFoundException", operation=LIST_REFS, status=404
            ),
            "store",
            "list-reference-stores",
        ),
    ],
)
async def test_a_refused_first_call_is_a_setup_error_naming_the_fix(
    error: PermanentServiceError, kind: str, words: str
) -> None:
    with pytest.raises(SetupError) as caught:
        await first_listing(
            MemoryGateway(list_faults=[error]),
            STORE,
            setup_timeout=5,
            retry_wait=0.01,
            answered=lambda s: False,
        )
    assert caught.value.kind == kind
    assert words in str(caught.value)
    assert caught.value.cause is error


async def test_no_answer_at_all_gives_up_after_the_setup_timeout() -> None:
    gateway = MemoryGateway(list_faults=[refused(None)] * 1000)
    began = anyio.current_time()
    with pytest.raises(SetupError) as caught:
        await first_listing(
            gateway, STORE, setup_timeout=0.3, retry_wait=0.05, answered=lambda s: False
        )
    assert caught.value.kind == "endpoint"
    assert 0.3 <= anyio.current_time() - began < 2


async def test_a_service_that_answers_is_waited_for_past_the_setup_timeout() -> None:
    # Throttled for longer than the bound: the endpoint is there, so it is no set-up problem.
    gateway = MemoryGateway(list_faults=[refused(429)] * 8, existing={"a": "1"})
    refs = await first_listing(
        gateway, STORE, setup_timeout=0.05, retry_wait=0.02, answered=lambda s: False
    )
    assert [r.name for r in refs] == ["a"]


async def test_a_run_parks_the_store_with_its_rows_queued_and_a_resubmission_tries_again(
    journal_path: Path,
) -> None:
    denied = PermanentServiceError(
        "not authorized", code="AccessDeniedException", operation=LIST_REFS, status=403
    )
    fake = MemoryGateway(list_faults=[denied])
    async with Importer(journal_path, gateway=fake, settings=FAST) as imp:
        ids = await imp.submit(requests(3))
        with pytest.raises(SetupError, match="access denied"):
            await imp.wait(ids)
        assert {r.state for r in await imp.results(ids)} == {RowState.QUEUED}
        assert fake.calls.get("start", 0) == 0
        [status] = (await imp.status()).stores
        assert status.setup_error is not None and status.setup_error.kind == "access"
        # Fixed meanwhile (the fault is spent): submitting again tries the store anew.
        assert await imp.submit(requests(3)) == ids
        results = await imp.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert imp.setup_errors == ()


async def test_a_service_keeps_trying_the_store_and_is_not_ready_meanwhile(
    journal_path: Path,
) -> None:
    missing = CredentialsError("x", code="NoCredentialsError", operation=LIST_REFS)
    fake = MemoryGateway(list_faults=[missing, missing])
    settings = replace(FAST, stop_on_setup_failure=False)
    paused: list[str] = []
    async with Importer(journal_path, gateway=fake, settings=settings) as imp:
        async with imp.subscribe() as events, anyio.create_task_group() as tg:

            async def follow() -> None:
                async for event in events:
                    if isinstance(event, StorePaused):
                        paused.append(event.reason)

            tg.start_soon(follow)
            results = await imp.wait(await imp.submit(requests(2)))
            tg.cancel_scope.cancel()
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert len(paused) == 2 and all("no AWS credentials found" in p for p in paused)
    assert imp.setup_errors == ()
