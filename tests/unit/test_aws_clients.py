"""The one place that makes AWS clients (issue 21), and what it shares across accounts (issue 23)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ProfileNotFound
from botocore.loaders import JSONFileLoader

from async_refimport._models import StoreRef
from async_refimport._pacing import Pacer
from async_refimport.aws import _sdk, clients
from async_refimport.aws.clients import (
    ClientPool,
    configured_endpoint,
    default_region,
    endpoint_configured,
)
from async_refimport.gateway.aws import AwsGateway

PACKAGE = Path(__file__).parents[2] / "async_refimport"
ENDPOINT = "http://127.0.0.1:9"  # nobody listens: no test here sends a request

# What makes a session or a client, by its dotted name.
CONSTRUCTORS = frozenset(
    {
        "aioboto3.Session",
        "aioboto3.session.Session",
        "boto3.client",
        "boto3.resource",
        "boto3.Session",
        "boto3.session.Session",
        "botocore.session.Session",
        "botocore.session.get_session",
        "aiobotocore.session.AioSession",
        "aiobotocore.session.get_session",
    }
)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def offences(source: str) -> list[str]:
    """What ``source`` does that only aws/clients.py may: make sessions or clients."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in CONSTRUCTORS or name.endswith(".create_client"):
                found.append(f"{node.lineno}: {name}(")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in CONSTRUCTORS:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    return found


def test_only_aws_clients_makes_aws_sessions_and_clients() -> None:
    bad = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("emulator/") or relative == "aws/clients.py":
            continue
        if found := offences(path.read_text()):
            bad[relative] = found
    assert bad == {}, f"use async_refimport.aws.clients.ClientPool instead: {bad}"


@pytest.mark.parametrize(
    "source",
    [
        "import aioboto3\ns = aioboto3.Session(profile_name='x')",
        "import boto3\nc = boto3.client('s3')",
        "import botocore.session\nbotocore.session.Session().get_config_variable('region')",
        "from botocore.session import get_session",
        "session.create_client('omics')",
    ],
)
def test_the_scan_sees_every_way_of_making_one(source: str) -> None:
    assert offences(source)


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two profiles with static credentials, and a data path of their own: a fresh loader."""
    (tmp_path / "config").write_text(
        "[profile a]\nregion = eu-west-1\n\n[profile b]\nregion = us-west-2\n"
    )
    (tmp_path / "credentials").write_text(
        "[a]\naws_access_key_id = AKIATESTA\naws_secret_access_key = x\n\n"
        "[b]\naws_access_key_id = AKIATESTB\naws_secret_access_key = y\n"
    )
    data = tmp_path / "models"
    data.mkdir()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_DATA_PATH", str(data))
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


async def test_two_profiles_share_one_loader_and_each_model_is_read_once(
    profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    load_file = JSONFileLoader.load_file

    def counting(self: JSONFileLoader, file_path: str) -> Any:
        data = load_file(self, file_path)
        if data is not None:  # None: not in this search path, the next one is tried
            read.append(file_path)
        return data

    monkeypatch.setattr(JSONFileLoader, "load_file", counting)
    async with ClientPool() as pool:
        loaders = {id(pool.session(p)._session.get_component("data_loader")) for p in "ab"}
        assert len(loaders) == 1
        for profile in "ab":
            for service in ("omics", "s3"):
                await pool.client(service, profile=profile, endpoint_url=ENDPOINT)
        assert pool.clients() == 4
    models = [p for p in read if "service-2" in p or "endpoint-rule-set" in p]
    omics = [p for p in models if "/omics/" in p]
    assert len(omics) == 2  # its service model and its endpoint rules, once for both profiles
    assert len(models) == len(set(models))  # no model read twice


async def test_clients_are_reused_per_profile_region_and_endpoint(profiles: Path) -> None:
    async with ClientPool() as pool:
        a = await pool.client("omics", profile="a", endpoint_url=ENDPOINT)
        assert await pool.client("omics", profile="a", endpoint_url=ENDPOINT) is a
        assert await pool.client("omics", profile="b", endpoint_url=ENDPOINT) is not a
        elsewhere = await pool.client(
            "omics", profile="a", region="us-east-2", endpoint_url=ENDPOINT
        )
        assert elsewhere is not a
        assert a.meta.region_name == "eu-west-1"  # the profile's Region, read by botocore
        assert pool.session("a") is pool.session("a")
        assert pool.clients() == 3
        # An account done: its clients close, its session (and credentials) stay.
        assert await pool.release(profile="a", region="us-east-2") == 1
        assert await pool.release(profile="a") == 1
        assert pool.clients() == 1
        assert await pool.client("omics", profile="a", endpoint_url=ENDPOINT) is not a
    assert pool.clients() == 0


async def test_an_unknown_profile_is_said_by_the_first_client(profiles: Path) -> None:
    async with ClientPool() as pool:
        with pytest.raises(ProfileNotFound):
            await pool.client("omics", profile="nope", endpoint_url=ENDPOINT)


async def test_a_gateway_leaves_a_pool_it_was_given_open(profiles: Path) -> None:
    store = StoreRef("1234567890", "eu-west-1", profile="a", endpoint_url=ENDPOINT)
    async with ClientPool() as pool:
        async with AwsGateway(pacer=Pacer(), pool=pool) as gateway:
            client = await gateway._client(store)
            assert await gateway._client(store) is client
        assert pool.clients() == 1  # the pool's owner closes it
        await gateway.release(store)
        assert pool.clients() == 0


def test_the_region_comes_from_aws_region_then_the_sdk_chain(
    profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_region("a") == "eu-west-1"
    assert default_region("nope") is None  # said later, by the store's first call
    assert default_region() is None
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert default_region("a") == "ap-south-1"
    monkeypatch.setenv("AWS_REGION", "sa-east-1")
    assert default_region("a") == "sa-east-1"
    assert clients.configured_region() == "sa-east-1"
    assert clients.configured_region("eu-north-1") == "eu-north-1"


def test_endpoints_are_read_as_botocore_spells_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_OMICS", "AWS_ENDPOINT_URL_EVENTBRIDGE"):
        monkeypatch.delenv(name, raising=False)
    assert not endpoint_configured("omics")
    assert configured_endpoint("omics", "http://row") == "http://row"
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://events")
    assert configured_endpoint("events") == "http://events"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://all")
    assert configured_endpoint("omics") == "http://all"
    monkeypatch.setenv("AWS_ENDPOINT_URL_OMICS", "http://omics")
    assert configured_endpoint("omics") == "http://omics"


async def test_assume_role_profiles_resolve_once_each_through_the_source_profile(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "aws-config").write_text(
        "[profile source]\nregion = us-east-1\n\n"
        "[profile reader]\nrole_arn = arn:aws:iam::123456789012:role/Reader\n"
        "source_profile = source\nregion = us-east-1\n\n"
        "[profile writer]\nrole_arn = arn:aws:iam::123456789012:role/Writer\n"
        "source_profile = source\nregion = us-east-1\n"
    )
    (tmp_path / "aws-credentials").write_text(
        "[source]\naws_access_key_id = AKIASOURCEPROFILE000\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # STS and SQS: moto's
    assumed: list[str] = []
    async with ClientPool() as pool:
        for profile in ("reader", "writer"):
            session = pool.session(profile)
            session._session.register(
                "before-call.sts.AssumeRole",
                lambda params, **_: assumed.append(params["body"]["RoleArn"]),
            )
        for _ in range(3):
            for profile in ("reader", "writer"):
                sqs = await pool.client("sqs", profile=profile)
                await sqs.list_queues()
        keys = set()
        for profile in ("reader", "writer"):
            credentials = await pool.session(profile)._session.get_credentials()
            keys.add((await credentials.get_frozen_credentials()).access_key)
    # One AssumeRole per profile, its credentials kept (and refreshed) by the session.
    assert sorted(assumed) == [
        "arn:aws:iam::123456789012:role/Reader",
        "arn:aws:iam::123456789012:role/Writer",
    ]
    assert len(keys) == 2 and "AKIASOURCEPROFILE000" not in keys


async def test_every_client_shares_one_tls_context(profiles: Path) -> None:
    # aiobotocore reads the CA bundle once per client (about 40 ms of CPU): here once in all.
    async with ClientPool() as pool:
        made = [await pool.client("omics", profile=p, endpoint_url=ENDPOINT) for p in "ab"]
        made.append(await pool.client("s3", profile="a", endpoint_url=ENDPOINT))
        connectors = [c._endpoint.http_session._create_connector(None) for c in made]
        try:
            contexts = {id(c._ssl) for c in connectors}
            assert len(contexts) == 1
            assert any(connectors[0]._ssl is t for t in _sdk._TLS_CONTEXTS.values())
        finally:
            for connector in connectors:
                await connector.close()


async def test_sessions_share_one_parse_of_the_config_files_until_they_change(
    profiles: Path,
) -> None:
    async with ClientPool() as pool:
        a, b = (pool.session(p)._session for p in "ab")
        assert a.full_config is b.full_config  # one parse for every account's session
        config = profiles / "config"
        config.write_text(config.read_text() + "\n[profile c]\nregion = ap-south-1\n")
        c = pool.session("c")._session
        assert c.full_config is not a.full_config
        assert c.get_config_variable("region") == "ap-south-1"


async def test_concurrent_first_calls_make_one_client(profiles: Path) -> None:
    import anyio

    made: list[Any] = []

    async def ask(profile: str) -> None:
        made.append(await pool.client("omics", profile=profile, endpoint_url=ENDPOINT))

    async with ClientPool() as pool:
        async with anyio.create_task_group() as tg:
            for profile in "aaaabb":
                tg.start_soon(ask, profile)
        assert len({id(c) for c in made}) == 2 and pool.clients() == 2
        assert pool._making == {}  # nothing left behind


async def test_the_credentials_files_are_parsed_once_for_every_profile_until_they_change(
    profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.configloader

    credentials = profiles / "credentials"
    credentials.write_text(
        credentials.read_text()
        + "\n[c]\naws_access_key_id = AKIATESTC\naws_secret_access_key = z\n"
    )
    parsed: list[str] = []
    parse = botocore.configloader.raw_config_parse

    def counting(path: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(path)
        return parse(path, *args, **kwargs)

    monkeypatch.setattr(botocore.configloader, "raw_config_parse", counting)

    async def key(pool: ClientPool, profile: str) -> str:
        found = await pool.session(profile)._session.get_credentials()
        return str((await found.get_frozen_credentials()).access_key)

    async with ClientPool() as pool:
        assert [await key(pool, p) for p in "abc"] == ["AKIATESTA", "AKIATESTB", "AKIATESTC"]
        # The sessions' shared view of both files, and the credential providers' parse: two
        # parses for every profile (a provider per session parsed it once each before).
        assert parsed.count(str(credentials)) == 2
        credentials.write_text(
            "[d]\naws_access_key_id = AKIATESTDD\naws_secret_access_key = w\n"
        )  # another size: another version of the file
        assert await key(pool, "d") == "AKIATESTDD"


def test_a_pool_paces_each_profile_on_its_own_and_each_account_across_its_stores(
    profiles: Path,
) -> None:
    from async_refimport.gateway.base import GET

    async def paced() -> set[tuple[str, str, str]]:
        pacer = Pacer()
        stores = [
            StoreRef("1111111111", "eu-west-1", profile="a", endpoint_url=ENDPOINT),
            StoreRef("2222222222", "eu-west-1", profile="a", endpoint_url=ENDPOINT),
            StoreRef("3333333333", "eu-west-1", profile="b", endpoint_url=ENDPOINT),
            StoreRef("4444444444", "us-west-2", profile="b", endpoint_url=ENDPOINT),
        ]

        async def call(client: Any) -> dict[str, Any]:
            return {}

        async with AwsGateway(pacer=pacer) as gateway:
            for store in stores:
                await gateway._once(store, GET, call)
        return set(pacer.limiters())

    import anyio

    keys = anyio.run(paced)
    # Each account (profile) and Region its own 5 TPS; a profile's two stores share theirs.
    assert len(keys) == 3
    assert len({credentials for credentials, _region, _operation in keys}) == 2
    assert {region for _credentials, region, _operation in keys} == {"eu-west-1", "us-west-2"}


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T00:00:00Z",
        "2024-06-01T10:11:12.123Z",
        "2024-06-01T10:11:12.123456789Z",
        "2024-06-01T10:11:12+00:00",
        "2024-06-01T10:11:12.5+02:00",  # another offset: botocore's to read
        "2024-06-01 10:11:12",
        "1700000000",
        1700000000.25,
        "Sat, 01 Jun 2024 10:11:12 GMT",
    ],
)
def test_timestamps_read_as_botocore_reads_them(value: Any) -> None:
    from botocore.utils import parse_timestamp as botocore_parse

    ours, theirs = _sdk.parse_timestamp(value), botocore_parse(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


async def test_a_handler_registered_on_one_session_is_that_sessions_alone(
    profiles: Path,
) -> None:
    heard: list[str] = []
    async with ClientPool() as pool:
        pool.session("a")._session.register("refimport-test.omics", lambda **_: heard.append("a"))
        a = await pool.client("omics", profile="a", endpoint_url=ENDPOINT)
        b = await pool.client("omics", profile="b", endpoint_url=ENDPOINT)
        async with ClientPool() as other:  # another pool: another session of profile a
            c = await other.client("omics", profile="a", endpoint_url=ENDPOINT)
            for client in (a, b, c):
                await client.meta.events.emit("refimport-test.omics")
    assert heard == ["a"]
