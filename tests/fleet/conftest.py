"""Fixtures for the SQS intake and the result sender, run in-process against moto's server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.fleet import (
    Queues,
)
from tests.helpers.integration import create_store


@pytest.fixture
def queues(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queues]:
    """A request queue and a results queue of their own; SQS and S3 clients find moto by the
    standard endpoint variables, as a worker would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    tag = uuid.uuid4().hex[:10]
    requests = sqs.create_queue(QueueName=f"requests-{tag}")["QueueUrl"]
    results = sqs.create_queue(QueueName=f"results-{tag}")["QueueUrl"]
    yield Queues(moto_endpoint, requests, results)
    for url in (requests, results):
        try:
            sqs.delete_queue(QueueUrl=url)
        except sqs.exceptions.QueueDoesNotExist:
            pass


@pytest.fixture
def store(emulator: EmulatorThread) -> str:
    return create_store(emulator, emulator.region)
