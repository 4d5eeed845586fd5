from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.common import (
    expected_length,
)
from tests.helpers.sources import SourceServer

# The emulator's fixtures are opt-in (no pytest11 entry point): this suite asks for them.
pytest_plugins = ("async_refimport.emulator.pytest_plugin",)


@pytest.fixture(autouse=True)
def _isolated_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Dummy credentials, no user config and no user state: tests never reach, nor depend on, a
    real account or the user's journal."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEMULATORTESTKEY0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator-secret-not-real")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_OMICS", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    # A command run without --journal writes under the test's own directory, never the user's
    # (tests run in parallel: a shared default journal would couple them).
    monkeypatch.delenv("REFIMPORT_JOURNAL", raising=False)
    # Nor do the user's own option defaults (REFIMPORT_STORE_ID, REFIMPORT_CONFIG, ...) reach them.
    for name in [n for n in os.environ if n.startswith("REFIMPORT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server on 127.0.0.1 for the session: DynamoDB, SQS, S3 and EventBridge.

    Point a client at it with ``endpoint_url`` or the standard ``AWS_ENDPOINT_URL_<SERVICE>``
    variables. Tests keep apart by naming their own tables and queues.
    """
    server_mod = pytest.importorskip(
        "moto.server", reason="needs the emulator extra: pip install 'async-refimport[emulator]'"
    )
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def source_server() -> Iterator[SourceServer]:
    """A local HTTP file server for the test (tests.helpers.sources): HTTPS-like sources."""
    with SourceServer() as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest tests first (a stable sort: otherwise collection order).

    Under pytest-xdist (``make unit``) workers take tests one by one in this order, so the long
    ones start at once and overlap, and the many short ones fill in around them instead of
    leaving one worker alone with the fleet test at the end.
    """
    items.sort(key=expected_length)
