"""``python -m benchmarks.journal_cost [--rows N]``: what the DynamoDB journal costs per imported row.

The engine imports N rows (one store, jobs of 100) against the emulator, once on a SQLite journal and
once on a DynamoDB journal served by moto. moto reports no real consumed capacity, so a counting
wrapper prices every DynamoDB request by the service's on-demand rules, from the items themselves
(read back, uncounted, before and after each write):

* a write costs ceil(size / 1 KB) write units for the larger of the old and new item; a write inside
  a transaction costs twice that (ConditionCheck included);
* each write that puts an item into the index, changes its index entry or removes it costs the index
  one more write unit per entry touched (a changed key is a delete plus a put);
* a strongly consistent read costs ceil(size / 4 KB) read units per item, an eventually consistent
  one (index queries) half of it; a query is priced on the total size it returns.

Writes ``benchmarks/results/journal_cost.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import boto3

from async_refimport import (
    DynamoJournal,
    Importer,
    ImporterSettings,
    ImportRequest,
    PollingPolicy,
    RetryPolicy,
    RowState,
    SQLiteJournal,
)
from async_refimport.emulator import EmulatorThread, Faults, make_fasta
from async_refimport.journal.dynamo import INDEX, create_table

ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"
RESULTS = Path(__file__).parent / "results" / "journal_cost.json"
FAST = ImporterSettings(
    retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.5, max_elapsed=60),
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.5),
    busy_wait=0.05,
)


def _value_size(value: dict[str, Any]) -> int:
    (kind, v), *_ = value.items()
    if kind == "S":
        return len(str(v).encode())
    if kind == "N":
        return len(str(v).lstrip("-").replace(".", "")) // 2 + 2
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_value_size(x) + 1 for x in v)
    return len(str(v))


def item_size(item: dict[str, Any] | None) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _index_entry(item: dict[str, Any] | None) -> tuple[str, str] | None:
    if not item or "gpk" not in item:
        return None
    return item["gpk"]["S"], item.get("gsk", {}).get("S", "")


class CostMeter:
    """Prices the DynamoDB requests of one journal (see the module docstring)."""

    def __init__(self, raw: Any, table: str) -> None:
        self.raw = raw
        self.table = table
        self.write_units = 0.0
        self.index_write_units = 0.0
        self.read_units = 0.0
        self.requests: Counter[str] = Counter()

    async def _item(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = await self.raw.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return dict(item) if item else None

    def _price_write(
        self, before: dict[str, Any] | None, after: dict[str, Any] | None, factor: float
    ) -> None:
        size = max(item_size(before), item_size(after))
        self.write_units += factor * max(1, math.ceil(size / 1024))
        old, new = _index_entry(before), _index_entry(after)
        if old == new and old is not None and before != after:
            self.index_write_units += max(1, math.ceil(item_size(after) / 1024))
        elif old != new:
            self.index_write_units += (old is not None) + (new is not None)

    async def call(self, operation: str, kwargs: dict[str, Any], send: Any) -> Any:
        self.requests[operation] += 1
        if operation in ("put_item", "update_item"):
            key = kwargs.get("Key") or {
                "pk": kwargs["Item"]["pk"],
                "sk": kwargs["Item"]["sk"],
            }
            before = await self._item(key)
            try:
                return await send()
            finally:
                self._price_write(before, await self._item(key), 1.0)
        if operation == "transact_write_items":
            keys = []
            for entry in kwargs["TransactItems"]:
                (kind, op), *_ = entry.items()
                keys.append(
                    (kind, op.get("Key") or {"pk": op["Item"]["pk"], "sk": op["Item"]["sk"]})
                )
            befores = [await self._item(k) for _, k in keys]
            try:
                return await send()
            finally:
                for (kind, key), before in zip(keys, befores, strict=True):
                    after = before if kind == "ConditionCheck" else await self._item(key)
                    self._price_write(before, after, 2.0)
        response = await send()
        if operation == "get_item":
            self.read_units += max(1, math.ceil(item_size(response.get("Item")) / 4096))
        elif operation == "batch_get_item":
            for item in response.get("Responses", {}).get(self.table, []):
                self.read_units += max(1, math.ceil(item_size(item) / 4096))
        elif operation in ("query", "scan"):
            size = sum(item_size(i) for i in response.get("Items", []))
            consistent = 1.0 if kwargs.get("ConsistentRead") else 0.5
            if kwargs.get("IndexName") == INDEX:
                consistent = 0.5
            self.read_units += consistent * max(1, math.ceil(size / 4096))
        return response


class MeteredDynamoJournal(DynamoJournal):
    """A DynamoJournal whose every request goes through a :class:`CostMeter`."""

    meter: CostMeter

    async def open(self) -> None:
        await super().open()
        self.meter = CostMeter(self._client, self.table)

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        meter = getattr(self, "meter", None)
        if meter is None:
            return await super()._call(operation, **kwargs)
        result: dict[str, Any] = await meter.call(
            operation, kwargs, lambda: super(MeteredDynamoJournal, self)._call(operation, **kwargs)
        )
        return result


def _requests(emu: EmulatorThread, rows: int, region: str) -> list[ImportRequest]:
    kwargs = emu.client_kwargs()
    s3 = boto3.client("s3", **emu.client_kwargs("s3"))
    bucket = f"cost-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    kwargs["region_name"] = region
    omics = boto3.client("omics", **kwargs)
    store = str(omics.create_reference_store(name="cost")["id"])
    out = []
    for i in range(rows):
        key = f"g/genome-{i:05d}.fa"
        s3.put_object(Bucket=bucket, Key=key, Body=make_fasta(f"chr{i}", 200, seed=i).encode())
        out.append(
            ImportRequest(
                store,
                ROLE_ARN,
                f"s3://{bucket}/{key}",
                f"genome-{i:05d}",
                description="synthetic genome for the journal cost benchmark",
                tags={"bench": "journal-cost"},
                region=region,
                endpoint_url=emu.omics_endpoint_url,
            )
        )
    return out


async def _run(journal: Any, requests: list[ImportRequest]) -> float:
    started = time.perf_counter()
    async with Importer(journal=journal, settings=FAST) as imp:
        results = await imp.wait(await imp.submit(requests))
    assert all(r.state is RowState.IMPORTED for r in results), "benchmark rows must import"
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="AKIABENCHMARK0000000",
        AWS_SECRET_ACCESS_KEY="benchmark-secret-not-real",
        AWS_REGION="us-east-1",
    )
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://{host}:{port}"
    figures: dict[str, Any] = {"rows": args.rows, "sources_per_job": 100}
    try:
        with EmulatorThread(time_scale=0.0005, faults=Faults.none()) as emu:
            sqlite_requests = _requests(emu, args.rows, "eu-west-1")
            with tempfile.TemporaryDirectory() as tmp:
                sqlite = SQLiteJournal(Path(tmp) / "journal.sqlite")
                figures["sqlite_seconds"] = anyio.run(_run, sqlite, sqlite_requests)
            dynamo_requests = _requests(emu, args.rows, "us-east-1")
            table = f"cost-{uuid.uuid4().hex[:8]}"
            anyio.run(lambda: create_table(table, region="us-east-1"))
            journal = MeteredDynamoJournal(table, region="us-east-1")
            figures["dynamodb_seconds"] = anyio.run(_run, journal, dynamo_requests)
    finally:
        moto.stop()
    meter = journal.meter
    rows = args.rows
    figures.update(
        write_units_per_row=round(meter.write_units / rows, 3),
        index_write_units_per_row=round(meter.index_write_units / rows, 3),
        total_write_units_per_row=round((meter.write_units + meter.index_write_units) / rows, 3),
        read_units_per_row=round(meter.read_units / rows, 3),
        requests_per_row=round(sum(meter.requests.values()) / rows, 3),
        requests=dict(meter.requests),
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print("| figure | value |\n|---|---|")
    for name, value in figures.items():
        if name != "requests":
            print(f"| {name} | {value} |")
    print(f"| requests by operation | {dict(meter.requests)} |")


if __name__ == "__main__":
    main()
