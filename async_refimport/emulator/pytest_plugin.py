"""pytest fixtures for the HealthOmics emulator (registered through the ``pytest11`` entry point).

Fixtures:
    emulator_session: one thread-hosted emulator for the whole session (time_scale 0.001,
        throttling off, no faults).
    emulator: the session emulator, reset before the test (state dropped, settings restored);
        change settings in a test with ``emulator.configure(...)``.
    emulator_factory: ``emulator_factory(**Emulator kwargs) -> EmulatorThread``; each one is
        stopped after the test. It shares the session emulator's S3 unless told otherwise.
    s3_fasta: ``s3_fasta(key, data, *, bucket="refimport-test", metadata=None) -> "s3://..."``
        uploads bytes or text to the emulator's S3, creating the bucket when needed.

Imports stay light: the emulator is imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._thread import EmulatorThread

#: Settings of the session emulator.
SESSION_SETTINGS: dict[str, Any] = {"time_scale": 0.001}


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[EmulatorThread]:
    """One emulator for the whole test session (prefer ``emulator``, which resets it)."""
    from ._faults import Faults
    from ._thread import EmulatorThread

    with EmulatorThread(faults=Faults.none(), **SESSION_SETTINGS) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: EmulatorThread) -> EmulatorThread:
    """The session emulator with fresh state and its session settings restored."""
    emulator_session.reset(settings=True)
    return emulator_session


@pytest.fixture
def emulator_factory(
    emulator_session: EmulatorThread,
) -> Iterator[Callable[..., EmulatorThread]]:
    """Build emulators with custom settings; all are stopped after the test."""
    from ._thread import EmulatorThread

    made: list[EmulatorThread] = []

    def make(**kwargs: Any) -> EmulatorThread:
        kwargs.setdefault("s3_endpoint_url", emulator_session.s3_endpoint_url)
        emu = EmulatorThread(**kwargs).start()
        made.append(emu)
        return emu

    yield make
    for emu in reversed(made):
        emu.stop()


@pytest.fixture
def s3_fasta(emulator_session: EmulatorThread) -> Callable[..., str]:
    """Upload FASTA bytes or text to the emulator's S3 and return the ``s3://`` URI."""
    import boto3

    client = boto3.client("s3", **emulator_session.client_kwargs("s3"))
    buckets: set[str] = set()

    def upload(
        key: str,
        data: str | bytes,
        *,
        bucket: str = "refimport-test",
        metadata: dict[str, str] | None = None,
    ) -> str:
        if bucket not in buckets:
            try:
                client.create_bucket(Bucket=bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            buckets.add(bucket)
        body = data.encode() if isinstance(data, str) else data
        client.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {})
        return f"s3://{bucket}/{key}"

    return upload
