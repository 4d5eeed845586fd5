"""The journal contract runs on every backend: a fresh SQLite file or a fresh DynamoDB table (on the
session's moto server), so the two implementations cannot drift."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from async_refimport import Journal
from async_refimport.journal.dynamo import DynamoJournal, create_table
from async_refimport.journal.sqlite import SQLiteJournal
from tests.helpers.journal import (
    JournalFactory,
)


@pytest.fixture(scope="session")
def serialized_moto() -> Iterator[str]:
    """moto in a process of its own, DynamoDB requests one at a time: moto's threaded server is
    not safe for concurrent conditional writes (two can both pass), DynamoDB itself is."""
    from tests.helpers.moto_server import MotoProcess

    with MotoProcess() as endpoint:
        yield endpoint


@pytest.fixture
def dynamo_table(serialized_moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", serialized_moto)
    table = f"journal-{uuid.uuid4().hex[:12]}"
    created = anyio.run(lambda: create_table(table, region="us-east-1"))
    assert created
    yield table


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def journal_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """What a user passes as --journal for this backend."""
    if backend == "sqlite":
        return str(tmp_path / "journal.sqlite")
    table = request.getfixturevalue("dynamo_table")
    return f"dynamodb://{table}"


@pytest.fixture
def journal_factory(backend: str, journal_url: str) -> JournalFactory:
    def make(clock: Callable[[], float] | None = None) -> Journal:
        extra = {"clock": clock} if clock is not None else {}
        if backend == "sqlite":
            return SQLiteJournal(journal_url, **extra)
        return DynamoJournal(journal_url.removeprefix("dynamodb://"), region="us-east-1", **extra)

    return make
