"""A worker given rows for a store of 100,000 references (issue 25) imports them and never marks
the store failed: the set-up bound covers the store's first answer, not a listing of 1,000 pages
(at 5 TPS, 200 s: it used to log ``store.setup_failed kind=endpoint`` for ever)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import genomes
from tests.helpers.worker import WorkerProcess, wait_for


def test_worker_imports_into_a_store_of_100000_references(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    items = genomes(s3_fasta, 4, "big-worker")
    others = [f"elsewhere-{i:06d}" for i in range(99_999)]
    emulator.add_references(store_id, [*others[:80_000], items[1][0], *others[80_000:]])
    journal = str(tmp_path / "j.sqlite")
    # AWS's own pace (the fixture's is 50 TPS): the listing the old check waited for is 200 s.
    worker = start_worker(
        "--http-port", "0", "--journal", journal, "--store-id", store_id, "--api-rate", "5"
    )
    body = {"requests": [{"name": n, "source_file": u} for n, u in items]}
    status, answer, _ = worker.request("POST", "/v1/imports", body)
    assert status == 202, answer
    ids = answer["ids"]

    def final() -> list[dict[str, Any]] | None:
        rows = [worker.request("GET", f"/v1/imports/{i}")[1] for i in ids]
        return rows if all(r["final"] for r in rows) else None

    rows = wait_for(final, 120)
    states = {r["name"]: r["status"] for r in rows}
    assert states == {n: "ALREADY_PRESENT" if n == items[1][0] else "IMPORTED" for n, _ in items}
    assert not [e for e in worker.logs() if e.get("event") == "store.setup_failed"]
    assert worker.request("GET", "/readyz")[0] == 200
    assert emulator.stats()["calls"]["ListReferences"] <= 1 + len(items) + 2
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
