"""Fleet: workers fed through SQS and sharing a DynamoDB journal, against one worker; and failover.

Every scenario starts the emulator (its own process, compressed clock) and moto's server (its own
process, DynamoDB requests serialised as DynamoDB serialises writes), then ``refimport worker``
processes, each in a directory of its own, sharing only the ``dynamodb://`` journal and the queues.
The rows of every store are spread over every SQS message, so each message's result document
depends on every worker.

* **Throughput**: the same workload on one worker and on three; the makespan runs from the first
  message sent to the last result document received, and is compared with the service's own
  bound (the busiest store's job time, back to back).
* **Failover**: mid-run, the worker driving the most stores is SIGKILLed. For each store it drove,
  the failover time runs from the kill to the moment another worker takes the store over (its
  lease acquired and the store's recovery begun: its first call for the store follows at once);
  the goal is one lease period plus one poll of a waiting lane (a third of the lease). The store
  time lost is the idle gap the kill opened on those stores (from the end of the job running at
  the kill, or the kill if later, to the next job's creation), as a share of all store time.

    .venv/bin/python -m benchmarks.fleet [--quick]

Writes ``benchmarks/results/fleet.json`` and the "Fleet" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import anyio

from async_refimport.journal.dynamo import create_table
from benchmarks._common import (
    GENOME_BASES,
    ROLE_ARN,
    EmulatorProcess,
    Figure,
    isolate_aws_environment,
    job_timelines,
    lower_bound,
    overlapping,
    section_lines,
    splice_section,
)
from tests.helpers.fleet_harness import (
    Fleet,
    FleetSettings,
    ResultCollector,
    create_queues,
    dynamodb_usage,
    epoch,
    send_messages,
)
from tests.helpers.moto_server import MotoProcess

HERE = Path(__file__).parent
SECTION = "Fleet"
LEASE_TTL = 3.0
PER_JOB = 10
# Events by which a worker shows it has taken a store over (its first calls for it follow at once).
_TAKEOVER = frozenset(
    {"import_job.recovering", "import_job.started", "store.checked", "import_job.adopted"}
)


def _http(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return json.loads(resp.read())


def scenario(
    *, workers: int, kill: bool, stores: int, per_store: int, time_scale: float, root: Path
) -> dict[str, Any]:
    """One run; returns its measures."""
    root.mkdir(parents=True, exist_ok=True)
    with (
        EmulatorProcess(time_scale=time_scale) as emu,
        MotoProcess(log=root / "moto.log") as aws,
    ):
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = aws

        table = f"bench-{uuid.uuid4().hex[:8]}"
        anyio.run(lambda: create_table(table, region="us-east-1"))
        by_region = emu.create_stores(stores)
        pool = emu.upload_genomes(50, bases=GENOME_BASES // 10)
        rows = [
            {"store_id": store, "region": region, "name": f"{region}-{i:05d}", "source_file": uri}
            for region, store in by_region.items()
            for i, uri in zip(range(per_store), pool * (per_store // len(pool) + 1), strict=False)
        ]
        random.Random(3).shuffle(rows)
        bodies = [{"requests": rows[i : i + 20]} for i in range(0, len(rows), 20)]
        queue_url, results_url = create_queues(aws, "us-east-1", uuid.uuid4().hex[:8])
        settings = FleetSettings(
            journal=f"dynamodb://{table}",
            queue_url=queue_url,
            results_url=results_url,
            omics_endpoint=emu.omics_endpoint_url,
            region="us-east-1",
            aws_endpoint=aws,
            role_arn=ROLE_ARN,
            lease_ttl=LEASE_TTL,
            max_sources_per_job=PER_JOB,
        )
        fleet = Fleet(root, settings, size=workers)
        collector = ResultCollector(aws, "us-east-1", results_url)
        killed: dict[str, Any] = {}
        try:
            fleet.start_all()
            began = time.time()
            ids = send_messages(aws, "us-east-1", queue_url, bodies)

            def tick() -> None:
                if not kill or killed:
                    return
                try:
                    views = {
                        w.name: _http(w.current.announced["http"] + "/v1/stores")["stores"]
                        for w in fleet.workers
                    }
                except OSError:  # a worker slow to answer under load: look again next tick
                    return
                # A third of the way: every store is busy, and most of the work is still ahead.
                imported = sum(s["rows"]["IMPORTED"] for s in views[fleet.workers[0].name])
                if imported < len(rows) // 3:
                    return
                # The worker driving the most stores right now, and those stores.
                driving = {
                    name: [s["store_id"] for s in stores if s["active_job"]]
                    for name, stores in views.items()
                }
                victim = max(fleet.workers, key=lambda w: len(driving[w.name]))
                killed.update(
                    worker=victim.name, stores=driving[victim.name], at=fleet.kill(victim)
                )

            collector.wait_for(ids, timeout=900, on_tick=tick)
            ended = max(collector.arrived.values())
            logs = fleet.logs()
            usage = dynamodb_usage(aws)
            codes = fleet.stop_all(60)
            assert all(code == 0 for code in codes), codes
        finally:
            fleet.close()
        stats = emu.stats()
    timelines = job_timelines(stats)
    out: dict[str, Any] = {
        "workers": workers,
        "rows": len(rows),
        "makespan": ended - began,
        "lower_bound": lower_bound(timelines),
        "overlapping": overlapping(timelines),
        "busy_rejections": stats["rejected_concurrent_starts"],
        "documents": len(collector.documents),
        "copies": sum(collector.copies.values()),
        "dynamodb": usage,
    }
    if killed:
        out.update(failover(killed, logs, timelines, stats))
    return out


def failover(
    killed: dict[str, Any],
    logs: list[dict[str, Any]],
    timelines: dict[str, list[tuple[float, float]]],
    stats: dict[str, Any],
) -> dict[str, Any]:
    at: float = killed["at"]
    takeovers: list[float] = []
    gaps: list[float] = []
    for store in killed["stores"]:
        seen = [
            epoch(e["timestamp"])
            for e in logs
            if e.get("store_id") == store
            and e["worker"] != killed["worker"]
            and e.get("event") in _TAKEOVER
            and epoch(e["timestamp"]) > at
        ]
        if seen:
            takeovers.append(min(seen) - at)
        jobs = timelines.get(store, [])
        before = [end for start, end in jobs if start <= at]
        after = [start for start, _ in jobs if start > at]
        if before and after:
            gaps.append(max(0.0, min(after) - max(at, max(before))))
    spans = sum(jobs[-1][1] - jobs[0][0] for jobs in timelines.values() if jobs)
    return {
        "killed_stores": len(killed["stores"]),
        "failover": takeovers,
        "idle_gap": gaps,
        "lost_share": sum(gaps) / spans if spans else float("nan"),
    }


# -- the suite ---------------------------------------------------------------------------------


def bench(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    # Jobs of ~3 s: long enough that the service, not moto's DynamoDB, bounds the run.
    time_scale = 0.03 if quick else 0.1
    stores, per_store = (6, 40) if quick else (6, 100)
    repeats = 1 if quick else 3
    job = (30 + PER_JOB * GENOME_BASES / 10 / 20e6) * time_scale
    note = (
        f"{stores} stores x {per_store} rows = {stores * per_store}, sent as SQS messages of 20 "
        f"rows mixing every store; jobs of {PER_JOB} sources lasting {job:.2f} s "
        f"(time_scale {time_scale}); journal dynamodb:// on moto's server (one process, DynamoDB "
        f"requests one at a time); lease {LEASE_TTL:g} s"
    )
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        for name, workers, kill in (("one", 1, False), ("three", 3, False), ("kill", 3, True)):
            with tempfile.TemporaryDirectory() as tmp:
                r = scenario(
                    workers=workers,
                    kill=kill,
                    stores=stores,
                    per_store=per_store,
                    time_scale=time_scale,
                    root=Path(tmp),
                )
            print(f"  {name}: {json.dumps(r)}", flush=True)
            runs.append({"scenario": name, **r})
    return figures_from_runs(runs, note), {"runs": runs, "note": note}


def figures_from_runs(runs: list[dict[str, Any]], note: str) -> list[Figure]:
    """The section's figures from the runs (in repeats of one, three, kill)."""
    figs = {
        key: Figure(SECTION, name, unit, goal=goal, note=note)
        for key, name, unit, goal in [
            ("one", "makespan: 1 worker", "s", None),
            ("three", "makespan: 3 workers", "s", None),
            ("ratio", "makespan ratio 3 workers / 1 worker", "x", None),
            ("bound1", "makespan / service bound: 1 worker", "x", None),
            ("bound3", "makespan / service bound: 3 workers", "x", None),
            ("busy1", "moto's DynamoDB busy, share of the makespan: 1 worker", "share", None),
            ("busy3", "moto's DynamoDB busy, share of the makespan: 3 workers", "share", None),
            ("copies", "result documents received per message: 3 workers", "x", None),
            ("fail", "failover: SIGKILL → store taken over", "s", f"≤ {LEASE_TTL * 4 / 3:g}"),
            ("gap", "store idle gap opened by the kill", "s", None),
            ("lost", "store time lost to the kill", "share", None),
            ("bad", "overlapping jobs + Starts refused as busy (all runs)", "count", "= 0"),
        ]
    }

    def busy(r: dict[str, Any]) -> float:
        return sum(float(t) for _, t in r["dynamodb"].values()) / float(r["makespan"])

    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_name.setdefault(r["scenario"], []).append(r)
    for one, three, killed in zip(by_name["one"], by_name["three"], by_name["kill"], strict=True):
        figs["one"].add(one["makespan"])
        figs["three"].add(three["makespan"])
        figs["ratio"].add(three["makespan"] / one["makespan"])
        figs["bound1"].add(one["makespan"] / one["lower_bound"])
        figs["bound3"].add(three["makespan"] / three["lower_bound"])
        figs["busy1"].add(busy(one))
        figs["busy3"].add(busy(three))
        for r in (three, killed):
            figs["copies"].add(r["copies"] / r["documents"])
        for value in killed.get("failover", []):
            figs["fail"].add(value)
        for value in killed.get("idle_gap", []):
            figs["gap"].add(value)
        if "lost_share" in killed:
            figs["lost"].add(killed["lost_share"])
    bad = sum(int(r["overlapping"]) + int(r["busy_rejections"]) for r in runs)
    figs["bad"].add(bad)
    figs["fail"].holds = bool(figs["fail"].values) and max(figs["fail"].values) <= LEASE_TTL * 4 / 3
    figs["bad"].holds = bad == 0
    return list(figs.values())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small workload, one repeat")
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="no run: render the section again from benchmarks/results/fleet.json",
    )
    args = parser.parse_args()
    saved = HERE / "results" / "fleet.json"
    if args.from_json:
        data = json.loads(saved.read_text())
        figures = figures_from_runs(data["runs"], data["note"])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            isolate_aws_environment(tmp)
            figures, chart = bench(args.quick)
        saved.parent.mkdir(exist_ok=True)
        saved.write_text(
            json.dumps(
                {"figures": [f.to_json() for f in figures], **chart, "quick": args.quick},
                indent=2,
            )
            + "\n"
        )
    lines = section_lines(SECTION, figures)
    splice_section(HERE / "RESULTS.md", SECTION, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
