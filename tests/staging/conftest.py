"""Fixtures of the staging tests: the counting moto S3 server, a staging area, a Stager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from async_refimport.staging import Stager, StagingArea
from tests.helpers.staging_s3 import SMALL, StagingS3


@pytest.fixture(scope="session")
def staging_s3() -> Iterator[StagingS3]:
    """One counting moto S3 server for the session (tests keep apart by their own buckets)."""
    pytest.importorskip("moto.server", reason="needs the emulator extra")
    with StagingS3() as server:
        yield server


@pytest.fixture
def area(staging_s3: StagingS3) -> StagingArea:
    """A staging area in eu-west-1 of a bucket of its own, under ``staged/``."""
    return StagingArea("eu-west-1", staging_s3.bucket("eu-west-1"), "staged/")


@pytest.fixture
async def stager(tmp_path: Path) -> AsyncIterator[Stager]:
    """A Stager with small parts, its ledger in the test's directory."""
    async with Stager(tmp_path / "ledger.sqlite", limits=SMALL) as opened:
        yield opened
