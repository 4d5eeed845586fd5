"""ClientPool.release of one account's clients (issue 23): taken out at once, closed after the
linger (or at once when the releasing task is cancelled), the other accounts' left alone; and
clients of one service sharing botocore's generated class and endpoint rules."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_refimport.aws.clients import ClientPool

ENDPOINT = "http://127.0.0.1:9"  # nobody listens: no test here sends a request


@pytest.fixture(autouse=True)
def two_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config").write_text(
        "[profile a]\nregion = eu-west-1\n\n[profile b]\nregion = us-west-2\n"
    )
    (tmp_path / "credentials").write_text(
        "[a]\naws_access_key_id = AKIATESTA\naws_secret_access_key = x\n\n"
        "[b]\naws_access_key_id = AKIATESTB\naws_secret_access_key = y\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


async def test_release_takes_one_accounts_clients_out_at_once_and_closes_them_after_the_linger() -> (
    None
):
    async with ClientPool() as pool:
        made = {
            (service, profile): await pool.client(service, profile=profile, endpoint_url=ENDPOINT)
            for service in ("omics", "s3", "sqs")
            for profile in ("a", "b")
        }
        named = {id(client): key for key, client in made.items()}
        closed: list[tuple[str, str]] = []
        close = pool._close

        async def closing(clients: Iterable[tuple[Any, Any]]) -> None:
            clients = list(clients)
            closed.extend(named[id(client)] for client, _ in clients if id(client) in named)
            await close(clients)

        pool._close = closing  # type: ignore[method-assign,assignment]
        assert pool.clients() == 6
        assert pool.clients(profiles=["a"], services=["omics", "s3"]) == 2
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: pool.release(profile="a", services=["omics", "s3"], linger=60))
            await anyio.wait_all_tasks_blocked()
            # Out of the pool before the linger ends: counted no more, and asked for again, new;
            # still open while lingering (a request in flight on one would end as usual).
            assert pool.clients(profiles=["a"]) == 1  # its SQS client is not a lane's: kept
            assert pool.clients(profiles=["b"]) == 3
            again = await pool.client("omics", profile="a", endpoint_url=ENDPOINT)
            assert again is not made[("omics", "a")]
            assert closed == []
            tg.cancel_scope.cancel()  # the releasing task stopped: its clients closed all the same
        assert sorted(closed) == [("omics", "a"), ("s3", "a")]
        assert pool.clients(profiles=["a"]) == 2  # its SQS client and the new omics one
    assert pool.clients() == 0 and len(closed) == 6


async def test_clients_of_one_service_share_one_generated_class_and_endpoint_rules() -> None:
    async with ClientPool() as pool:
        a = await pool.client("omics", profile="a", region="eu-west-1", endpoint_url=ENDPOINT)
        b = await pool.client("omics", profile="b", region="us-west-2", endpoint_url=ENDPOINT)
        s3 = await pool.client("s3", profile="a", endpoint_url=ENDPOINT)
        assert type(a) is type(b) and type(s3) is not type(a)
        assert a._ruleset_resolver._provider is b._ruleset_resolver._provider
        # Each client keeps its own identity: Region, credentials, handlers.
        assert a.meta.region_name == "eu-west-1" and b.meta.region_name == "us-west-2"
        assert a.meta.events is not b.meta.events
        keys = [(await c._request_signer._credentials.get_frozen_credentials()) for c in (a, b)]
        assert [k.access_key for k in keys] == ["AKIATESTA", "AKIATESTB"]
