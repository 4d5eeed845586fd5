"""pytest fixtures for the HealthOmics emulator, opt-in: ``pytest_plugins = ("async_refimport.emulator.pytest_plugin",)`` in a conftest, or ``pytest -p async_refimport.emulator.pytest_plugin``.

Fixtures:
    emulator_session: one thread-hosted emulator for the whole session (time_scale 0.001,
        throttling off, no faults).
    emulator: the session emulator, reset before the test (state dropped, settings restored);
        change settings in a test with ``emulator.configure(...)``.
    emulator_environ: the ``emulator``'s environment (access key, Region, endpoints) set for
        the test and undone after it, so code that reads its credentials from the environment
        is the same account as ``emulator.client_kwargs()``; returns the whole environment.
    emulator_factory: ``emulator_factory(**Emulator kwargs) -> EmulatorThread``; each one is
        stopped after the test. It shares the session emulator's S3 unless told otherwise.
    s3_fasta: ``s3_fasta(key, data, *, bucket="refimport-test", metadata=None, region=None)
        -> "s3://..."`` uploads bytes or text to the emulator's S3, creating the bucket when
        needed (in ``region``: us-east-1 when None).
    events_queue: ``events_queue(region="us-east-1") -> queue URL``: an SQS queue in the
        emulator's moto fed by an EventBridge rule of that Region matching HealthOmics' reference
        import job events, as a user sets them up on AWS; removed after the test.

Imports stay light: the emulator is imported only when a fixture is used. Without the
``emulator`` extra (moto), a test that uses a fixture is skipped with the one-line hint that
says what to install, instead of erroring.
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
    _require_extra()
    from ._faults import Faults
    from ._thread import EmulatorThread

    with EmulatorThread(faults=Faults.none(), **SESSION_SETTINGS) as emu:
        yield emu


def _require_extra() -> None:
    """Skip the test, with the hint, when the ``emulator`` extra is not installed."""
    from ._extra import MissingExtraError, require_extra

    try:
        require_extra()
    except MissingExtraError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def emulator(emulator_session: EmulatorThread) -> EmulatorThread:
    """The session emulator with fresh state and its session settings restored."""
    emulator_session.reset(settings=True)
    return emulator_session


@pytest.fixture
def emulator_environ(emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The ``emulator``'s environment, applied for the test and undone after it.

    Clients configured from the environment (an ``Importer``, ``boto3.client("omics")``, a
    child process) are then the caller of ``emulator.client_kwargs()``, in the same emulated
    account. Returns the whole environment, for ``subprocess.run(..., env=...)``.
    """
    from ._environment import CONFLICTING

    for name in CONFLICTING:
        monkeypatch.delenv(name, raising=False)
    for name, value in emulator.environ(base={}).items():
        monkeypatch.setenv(name, value)
    return emulator.environ()


@pytest.fixture
def emulator_factory(
    emulator_session: EmulatorThread,
) -> Iterator[Callable[..., EmulatorThread]]:
    """Build emulators with custom settings; all are stopped after the test."""
    from ._thread import EmulatorThread

    made: list[EmulatorThread] = []

    def make(**kwargs: Any) -> EmulatorThread:
        kwargs.setdefault("s3_endpoint_url", emulator_session.s3_endpoint_url)
        kwargs.setdefault("events_endpoint_url", emulator_session.events_endpoint_url)
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
        region: str | None = None,
    ) -> str:
        if bucket not in buckets:
            where: dict[str, Any] = {}
            if region not in (None, "us-east-1"):  # S3 refuses us-east-1 as a constraint
                where["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                client.create_bucket(Bucket=bucket, **where)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            buckets.add(bucket)
        body = data.encode() if isinstance(data, str) else data
        client.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {})
        return f"s3://{bucket}/{key}"

    return upload


@pytest.fixture
def events_queue(emulator_session: EmulatorThread) -> Iterator[Callable[..., str]]:
    """Make SQS queues fed by EventBridge rules matching the emulator's job status events."""
    import json
    import uuid

    import boto3

    from ._eventbus import DETAIL_TYPE, EVENT_SOURCE

    made: list[tuple[Any, Any, str, str]] = []

    def make(region: str = "us-east-1") -> str:
        # EventBridge is regional and delivers to a queue of its own Region: one of each per
        # Region, as on AWS.
        name = f"refimport-events-{uuid.uuid4().hex[:12]}"
        sqs = boto3.client(
            "sqs", **{**emulator_session.client_kwargs("sqs"), "region_name": region}
        )
        url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client(
            "events", **{**emulator_session.client_kwargs("events"), "region_name": region}
        )
        events.put_rule(
            Name=name,
            EventPattern=json.dumps({"source": [EVENT_SOURCE], "detail-type": [DETAIL_TYPE]}),
        )
        events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
        made.append((events, sqs, name, url))
        return url

    yield make
    for events, sqs, name, url in made:
        events.remove_targets(Rule=name, Ids=["queue"])
        events.delete_rule(Name=name)
        try:
            sqs.delete_queue(QueueUrl=url)
        except sqs.exceptions.QueueDoesNotExist:
            pass
