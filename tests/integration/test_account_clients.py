"""An account done lets its clients go (issue 23): over real HTTP, the emulator, two profiles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio
import boto3

from async_refimport import (
    Importer,
    ImporterSettings,
    ImportRequest,
    JobStarted,
    PollingPolicy,
    PreflightPolicy,
    RetryPolicy,
    RowState,
)
from async_refimport.aws.clients import ClientPool
from async_refimport.emulator import EmulatorThread
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import genomes

SETTINGS = ImporterSettings(
    retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.5, max_elapsed=60),
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.5),
    busy_wait=0.05,
    lookup_margin=5.0,
    consistency_grace=2.0,
)
# The emulator takes a 12-digit access key id as its account: one account per profile.
ACCOUNTS = {"acct-a": "100000000001", "acct-b": "100000000002"}


def write_profiles(config: Path, credentials: Path) -> None:
    config.write_text("".join(f"[profile {p}]\nregion = us-east-1\n\n" for p in ACCOUNTS))
    credentials.write_text(
        "".join(
            f"[{p}]\naws_access_key_id = {key}\naws_secret_access_key = not-a-secret\n\n"
            for p, key in ACCOUNTS.items()
        )
    )


def account_store(emulator: EmulatorThread, profile: str) -> str:
    kwargs = emulator.client_kwargs()
    kwargs.update(aws_access_key_id=ACCOUNTS[profile], region_name="us-east-1")
    return str(boto3.client("omics", **kwargs).create_reference_store(name=profile)["id"])


async def until(what: Callable[[], bool]) -> None:
    # A wait for something to happen, never a timing assertion: up to a minute (a loaded machine).
    for _ in range(6000):
        if what():
            return
        await anyio.sleep(0.01)
    raise AssertionError("it never happened")


async def test_an_account_done_lets_its_clients_go_and_gets_new_ones_for_more_work(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path, tmp_path: Path
) -> None:
    write_profiles(tmp_path / "aws-config", tmp_path / "aws-credentials")
    stores = {p: account_store(emulator, p) for p in ACCOUNTS}
    items = genomes(s3_fasta, 6, "acct")

    def rows(profile: str, part: slice) -> list[ImportRequest]:
        return [
            ImportRequest(
                stores[profile],
                ROLE_ARN,
                uri,
                name,
                region="us-east-1",
                endpoint_url=emulator.omics_endpoint_url,
                profile=profile,
            )
            for name, uri in items[part]
        ]

    # The sources are checked in the emulator's S3: each account gets an S3 client too.
    settings = replace(
        SETTINGS, preflight=PreflightPolicy(s3_endpoint_url=emulator.s3_endpoint_url)
    )
    async with Importer(journal_path, region="us-east-1", settings=settings) as imp:
        pool: ClientPool = imp._pool
        seen_while_b_works: list[tuple[int, int]] = []

        def account_clients(profile: str) -> int:
            return pool.clients(profiles=[profile])

        async with imp.subscribe() as events, anyio.create_task_group() as tg:

            async def watch() -> None:
                async for event in events:
                    if isinstance(event, JobStarted) and event.store.profile == "acct-b":
                        seen = (account_clients("acct-a"), account_clients("acct-b"))
                        seen_while_b_works.append(seen)

            tg.start_soon(watch)
            first = await imp.wait(await imp.submit(rows("acct-a", slice(0, 3))))
            assert {r.state for r in first} == {RowState.IMPORTED}
            # acct-a's only store is done: its omics and S3 clients are let go.
            await until(lambda: account_clients("acct-a") == 0)

            second = await imp.wait(await imp.submit(rows("acct-b", slice(3, 5))))
            assert {r.state for r in second} == {RowState.IMPORTED}
            await until(lambda: account_clients("acct-b") == 0)
            assert pool.clients(services=["omics", "s3"]) == 0

            # More work for acct-a later: new clients, and it imports as before.
            third = await imp.wait(await imp.submit(rows("acct-a", slice(5, 6))))
            assert {r.state for r in third} == {RowState.IMPORTED}
            tg.cancel_scope.cancel()

    # While acct-b worked, acct-a held no client and acct-b its own (omics and S3).
    assert seen_while_b_works and all(a == 0 and b == 2 for a, b in seen_while_b_works)
    assert {r.reference_id for r in first + second + third} == {
        r.reference_id for r in first + second + third if r.reference_id
    }
