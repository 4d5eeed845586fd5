"""Acceptance of the fleet: three workers share the work through SQS and survive losing any of them.

Three ``refimport worker`` processes, each in a directory of its own, share only the journal, the
SQS queues (moto's server) and the HealthOmics emulator. 600 rows over 6 stores arrive as 30 SQS
messages; meanwhile a random worker is SIGKILLed and restarted at least ten times, and one is
SIGSTOPped past its lease, then resumed. Every row must end IMPORTED exactly once, no Start may be
refused for a busy store, no two jobs of a store may overlap, and every message must get its
result document.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest

from async_refimport import RowResult, RowState
from async_refimport.emulator import EmulatorThread
from async_refimport.journal.dynamo import DynamoJournal, create_table
from tests.helpers.common import ROLE_ARN
from tests.helpers.fleet_harness import (
    Chaos,
    Fleet,
    FleetSettings,
    ResultCollector,
    create_queues,
    send_messages,
)
from tests.helpers.integration import create_store, genomes, overlapping_jobs
from tests.helpers.moto_server import MotoProcess

STORES = 6
ROWS_PER_STORE = 100
ROWS_PER_MESSAGE = 20
LEASE_TTL = 2.0

# About 100 s alone on an idle machine; well over 200 s beside four other test runs on two cores
# (moto's serialised DynamoDB is the bound): the budget is for the loaded case.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def dynamo_table() -> str:
    """A fresh journal table on moto's server (what ``refimport journal init`` creates)."""
    table = f"fleet-{uuid.uuid4().hex[:10]}"
    assert anyio.run(lambda: create_table(table, region="us-east-1"))
    return table


async def journal_rows(table: str) -> list[RowResult]:
    async with DynamoJournal(table, region="us-east-1") as journal:
        return await journal.results()


def workload(
    emulator: EmulatorThread, s3_fasta: Callable[..., str]
) -> tuple[dict[str, set[str]], list[dict[str, Any]]]:
    """Six stores, 100 genomes each; rows of every store spread over every message."""
    emulator.configure(store_quota=STORES)
    expected: dict[str, set[str]] = {}
    rows: list[dict[str, Any]] = []
    for s in range(STORES):
        store = create_store(emulator, emulator.region, name=f"fleet-{s}")
        items = genomes(s3_fasta, ROWS_PER_STORE, f"fleet-{s}")
        expected[store] = {n for n, _ in items}
        rows += [{"store_id": store, "name": n, "source_file": u} for n, u in items]
    random.Random(9).shuffle(rows)
    bodies = [
        {"requests": rows[i : i + ROWS_PER_MESSAGE]} for i in range(0, len(rows), ROWS_PER_MESSAGE)
    ]
    return expected, bodies


def as_manifest(body: dict[str, Any], endpoint: str, key: str) -> dict[str, Any]:
    """The same rows as a CSV manifest in S3, and a message pointing at it."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = "fleet-manifests"
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    lines = ["store_id,name,source_file"]
    lines += [f"{r['store_id']},{r['name']},{r['source_file']}" for r in body["requests"]]
    s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    return {"manifest": f"s3://{bucket}/{key}"}


@pytest.fixture
def fleet_aws(tmp_path: Path) -> Iterator[str]:
    """A moto server of the test's own, DynamoDB requests serialised as DynamoDB serialises them."""
    with MotoProcess(log=tmp_path / "moto.log") as endpoint:
        yield endpoint


def test_three_workers_killed_and_paused_import_every_row_exactly_once(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    fleet_aws: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_endpoint = fleet_aws
    # Jobs of 10 sources last ~0.9 s: every store runs ten of them in turn, long enough for the
    # kills to land mid-job, short enough for the whole run to take well under a minute.
    emulator.configure(time_scale=0.03)
    expected, bodies = workload(emulator, s3_fasta)
    bodies[0] = as_manifest(bodies[0], moto_endpoint, "fleet/first.csv")
    bodies[1] = as_manifest(bodies[1], moto_endpoint, "fleet/second.csv")
    queue_url, results_url = create_queues(moto_endpoint, "us-east-1", uuid.uuid4().hex[:8])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    table = dynamo_table()
    journal = f"dynamodb://{table}"
    settings = FleetSettings(
        journal=journal,
        queue_url=queue_url,
        results_url=results_url,
        omics_endpoint=emulator.omics_endpoint_url,
        region=emulator.region,
        aws_endpoint=moto_endpoint,
        role_arn=ROLE_ARN,
        lease_ttl=LEASE_TTL,
    )
    fleet = Fleet(tmp_path, settings, size=3)
    chaos = Chaos(
        fleet, random.Random(20261129), every=(1.0, 2.0), pause_for=3 * LEASE_TTL, pause_after=2
    )
    collector = ResultCollector(moto_endpoint, "us-east-1", results_url)
    try:
        fleet.start_all()
        message_ids = send_messages(moto_endpoint, "us-east-1", queue_url, bodies)
        collector.wait_for(message_ids, timeout=360, on_tick=chaos.tick)
        # The work may end before the quota of kills: go on killing (there is nothing left to lose,
        # but every restart must still come up and leave the journal consistent).
        while chaos.kills < chaos.min_kills or not chaos.pause_done:
            chaos.tick()
            collector.poll(wait=0)
        chaos.finish()
        rows = anyio.run(journal_rows, table)
        assert fleet.stop_all() == [0, 0, 0]
    except BaseException:
        print(fleet.tail())
        raise
    finally:
        fleet.close()

    assert chaos.kills >= 10 and chaos.pause_done

    # Every row IMPORTED exactly once, as the emulator's references say.
    stats = emulator.stats()
    assert stats["rejected_concurrent_starts"] == 0, "a Start was refused for a busy store"
    assert overlapping_jobs(stats) == []
    assert stats["name_conflicts"] == 0
    for store, names in expected.items():
        refs = Counter(r["name"] for r in stats["references"].get(store, []))
        assert set(refs) == names, f"store {store}: missing {len(names - set(refs))}"
        assert max(refs.values()) == 1, f"store {store}: imported twice"
    by_name = {r["name"]: r["id"] for refs in stats["references"].values() for r in refs}
    assert len(rows) == STORES * ROWS_PER_STORE
    assert {r.state for r in rows} == {RowState.IMPORTED}
    assert all(by_name[r.name] == r.reference_id for r in rows)

    # Every message got its result document (copies are allowed: at least once).
    assert set(collector.documents) == set(message_ids)
    for message_id, body in zip(message_ids, bodies, strict=True):
        doc = collector.documents[message_id]
        assert doc["summary"]["imported"] == ROWS_PER_MESSAGE, doc["summary"]
        if "requests" in body:
            assert {i["name"] for i in doc["items"]} == {r["name"] for r in body["requests"]}
