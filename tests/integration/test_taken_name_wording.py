"""A source that failed because its name is taken ends the same way whatever its words say.

Issue 19/25: no decision may rest on a message's wording. A source whose name another tool took
between our check of the store and our Start fails with the service's message, and AWS documents
no wording for it; the reference it collides with may not be listed yet. The row must end
ALREADY_PRESENT with that reference's id under any wording (the emulator's ``taken_message``),
and a source failing for another reason must still fail, with its message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import anyio.to_thread
import boto3
import pytest

from async_refimport import (
    Importer,
    ImporterSettings,
    PollingPolicy,
    RetryPolicy,
    RowState,
    StoreRef,
)
from async_refimport._pacing import Pacer
from async_refimport.emulator import EmulatorThread, Unknowns
from async_refimport.gateway.aws import AwsGateway, SourceSpec
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import create_store, genomes, requests_for

FAST = ImporterSettings(
    retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.3, max_elapsed=60),
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.3),
    busy_wait=0.05,
    lease_ttl=2.0,
    # Real seconds the engine lets reads catch up: the List's lag below is 1.5 s of real time.
    consistency_grace=5.0,
)
WORDINGS = {
    "emulator-default": None,
    "other-english": "Duplicate reference: {name} is held by {reference}",
    "no-name-at-all": "Conflict",
    "japanese": "参照名は既に使用されています",
}


def _import_as_another_tool(emu: EmulatorThread, store_id: str, name: str, uri: str) -> str:
    """Import one reference with plain boto3 and wait for its job to end; returns the job id."""
    kwargs = emu.client_kwargs()
    # The importer signs with the environment's credentials: the other tool is in that account.
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    kwargs["region_name"] = "us-east-1"
    omics = boto3.client("omics", **kwargs)
    job = str(
        omics.start_reference_import_job(
            referenceStoreId=store_id, roleArn=ROLE_ARN, sources=[{"sourceFile": uri, "name": name}]
        )["id"]
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = omics.get_reference_import_job(referenceStoreId=store_id, id=job)
        if got["status"] in ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"):
            return job
        time.sleep(0.01)
    raise AssertionError(f"the other tool's job {job} did not end")


@pytest.mark.parametrize("words", list(WORDINGS.values()), ids=list(WORDINGS))
async def test_a_name_taken_before_our_start_is_already_present_in_any_wording(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path, words: str | None
) -> None:
    emulator.configure(
        time_scale=0.05,
        job_overhead=1.0,
        unknowns=Unknowns(list_lag=30.0, taken_message=words),  # listed 1.5 s (real) late
    )
    store_id = create_store(emulator, "us-east-1")
    items = genomes(s3_fasta, 3, "wording")
    taken_name, taken_uri = items[1]
    their_job: list[str] = []

    class TakenJustBeforeOurStart(AwsGateway):
        """Another tool imports one of our names after our check of the store, before our job."""

        async def start_import(
            self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
        ) -> str:
            if not their_job:
                their_job.append(
                    await anyio.to_thread.run_sync(
                        _import_as_another_tool, emulator, store_id, taken_name, taken_uri
                    )
                )
            return await super().start_import(store, role_arn, sources, client_token)

    requests = requests_for(emulator, store_id, "us-east-1", items)
    async with TakenJustBeforeOurStart(pacer=Pacer()) as gateway:
        async with Importer(journal_path, settings=FAST, gateway=gateway) as imp:
            results = await imp.wait(await imp.submit(requests))
    stats = emulator.stats()
    [theirs] = [r for r in stats["references"][store_id] if r["job_id"] == their_job[0]]
    by_name = {r.name: r for r in results}
    taken = by_name.pop(taken_name)
    assert taken.state is RowState.ALREADY_PRESENT, taken
    assert taken.reference_id == theirs["id"]
    assert {r.state for r in by_name.values()} == {RowState.IMPORTED}
    assert stats["name_conflicts"] == 1  # our job met the name, in the words configured
    ours = [r for r in stats["references"][store_id] if r["name"] == taken_name]
    assert len(ours) == 1  # one reference of that name: theirs


async def test_a_source_failing_for_another_reason_still_fails_with_its_message(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    # Words that would have read as "name taken" to a pattern: they change nothing here.
    emulator.configure(
        time_scale=0.05,
        job_overhead=1.0,
        unknowns=Unknowns(list_lag=30.0, taken_message="Name already exists"),
    )
    store_id = create_store(emulator, "us-east-1")
    good = genomes(s3_fasta, 1, "reason")
    bad = ("reason-broken", s3_fasta("reason/broken.fa", "this is not FASTA\n", bucket="genomes"))
    requests = requests_for(emulator, store_id, "us-east-1", [*good, bad])
    async with Importer(journal_path, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests))
    assert [r.state for r in results] == [RowState.IMPORTED, RowState.FAILED]
    assert results[1].message and "already" not in results[1].message
    assert emulator.stats()["name_conflicts"] == 0
