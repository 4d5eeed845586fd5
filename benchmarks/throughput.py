"""Thousands of references over several stores, against the service's own limit.

Lane utilization, API calls per imported reference, and makespan against the lower bound (the sum
of job durations on the busiest store), first on a quiet service, then with faults: the real 5 TPS
limit per (account, Region, operation) shared with a noisy neighbour (a second client of the same
account hammering Get and List in every Region) and ambiguous 408s after Start and Get ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

from async_refimport.emulator import Faults

from ._common import GENOME_BASES, EmulatorProcess, Figure, Workload, project_settings, utilization
from .peers import run_project

NEIGHBOUR_TPS = 4.5
"""Calls per second per operation and Region of the noisy neighbour (the limit is 5)."""


class NoisyNeighbour:
    """Another client of the same account, in its own process (so that it never competes with the
    measured importer for the GIL): hammers GetReferenceImportJob and ListReferenceImportJobs in
    every Region at ``tps`` each, ignoring every error."""

    def __init__(self, emu: EmulatorProcess, stores: dict[str, str], tps: float) -> None:
        self._args = [
            sys.executable,
            "-m",
            "benchmarks.throughput",
            json.dumps({"endpoints": emu.endpoints, "stores": stores, "tps": tps}),
        ]
        self._proc: subprocess.Popen[str] | None = None
        self.calls = 0

    def __enter__(self) -> NoisyNeighbour:
        self._proc = subprocess.Popen(
            self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        self._proc.stdout.readline()  # "ready": it hammers from now on
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._proc is not None
        # Closing its stdin tells the neighbour to stop and report its call count.
        out, _ = self._proc.communicate(timeout=60)
        self.calls = int(out.strip().splitlines()[-1])


def _neighbour_main(spec: dict[str, Any]) -> None:
    emu = EmulatorProcess(time_scale=1.0)
    emu.endpoints = spec["endpoints"]
    stop = threading.Event()
    calls = [0]
    lock = threading.Lock()

    def hammer(region: str, store_id: str) -> None:
        omics = emu.client("omics", region, retries={"mode": "standard", "total_max_attempts": 1})
        interval = 1.0 / float(spec["tps"])
        next_at = time.monotonic()
        while not stop.is_set():
            for operation in ("get", "list"):
                try:
                    if operation == "get":
                        omics.get_reference_import_job(referenceStoreId=store_id, id="1234567890")
                    else:
                        omics.list_reference_import_jobs(referenceStoreId=store_id, maxResults=1)
                except Exception:
                    pass  # a throttled or failed call still took the bucket's token
                with lock:
                    calls[0] += 1
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))

    threads = [
        threading.Thread(target=hammer, args=item, daemon=True) for item in spec["stores"].items()
    ]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join()
    print(calls[0])


def bench(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    time_scale = 0.02 if quick else 0.1
    stores, per_store = (3, 300) if quick else (5, 800)
    repeats = 1 if quick else 3
    job = (30 + 100 * GENOME_BASES / 20e6) * time_scale
    figures: dict[str, Figure] = {}
    chart: dict[str, Any] = {}
    with EmulatorProcess(time_scale=time_scale) as emu:
        pool = emu.upload_genomes(100)
        for scenario in ("quiet", "faults"):
            section = f"Throughput ({scenario})"
            note = (
                f"{stores} stores (one per Region) x {per_store} references = "
                f"{stores * per_store}; full packs of 100; time_scale {time_scale} "
                f"(a 100-source job lasts {job:.2f} s + S3 reads)"
            )
            if scenario == "faults":
                note += (
                    f"; 5 TPS per operation and Region (not scaled), a noisy neighbour at "
                    f"{NEIGHBOUR_TPS:g} TPS on Get and List in every Region, 20% ambiguous 408s "
                    "on Start and Get"
                )

            def fig(
                name: str, unit: str, goal: str | None = None, *, s: str = section, n: str = note
            ) -> Figure:
                key = f"{s}/{name}"
                if key not in figures:
                    figures[key] = Figure(s, name, unit, goal=goal, note=n)
                return figures[key]

            settings = project_settings(time_scale, rates_scaled=False)
            # The goals are set for a quiet service; under faults the figures are reported as is.
            goal_util = "≥ 0.99" if scenario == "quiet" else None
            goal_calls = "≤ 0.04" if scenario == "quiet" else None
            for rep in range(repeats):
                emu.reset()
                faults = Faults.none()
                if scenario == "faults":
                    faults = Faults(
                        tps=5.0,
                        p_timeout=0.2,
                        operations=frozenset({"StartReferenceImportJob", "GetReferenceImportJob"}),
                        seed=rep,
                    )
                emu.configure(faults=_faults_json(faults))
                workload = Workload.build(emu.create_stores(stores), per_store, pool, f"t{rep}")
                neighbour_calls = 0
                if scenario == "faults":
                    with NoisyNeighbour(emu, workload.stores, NEIGHBOUR_TPS) as neighbour:
                        run = run_project(emu, workload, settings)
                    neighbour_calls = neighbour.calls
                else:
                    run = run_project(emu, workload, settings)
                stats = emu.stats()
                own_calls = run.calls - neighbour_calls
                util, worst = utilization(run.timelines)
                print(
                    f"  throughput/{scenario}: makespan {run.makespan:6.2f} s  lower bound "
                    f"{run.lower_bound:6.2f} s  utilization {util:.4f} (worst {worst:.4f})  "
                    f"calls/ref {own_calls / run.references:.4f}  failures {run.failures}",
                    flush=True,
                )
                fig("lane utilization (all lanes)", "share", goal_util).add(util)
                fig("lane utilization (worst lane)", "share").add(worst)
                # Each lane's first job is polled blind (nothing predicts its end yet).
                steady = {store: jobs[1:] for store, jobs in run.timelines.items() if len(jobs) > 1}
                fig("lane utilization, each lane's first job left out", "share", goal_util).add(
                    utilization(steady)[0]
                )
                fig("API calls per imported reference", "calls", goal_calls).add(
                    own_calls / run.references
                )
                fig("makespan", "s").add(run.makespan)
                fig("lower bound (busiest store)", "s").add(run.lower_bound)
                fig("makespan / lower bound", "x").add(run.makespan / run.lower_bound)
                fig("failed rows + overlapping jobs", "count").add(run.failures + run.overlaps)
                if scenario == "faults":
                    injected = sum(stats["faults"].values())
                    fig("throttled calls (all clients)", "calls").add(
                        sum(stats["throttled"].values())
                    )
                    fig("injected 408s", "calls").add(injected)
                if rep == 0:
                    chart[scenario] = run.timelines
    for f in figures.values():
        if f.goal == "≥ 0.99":
            f.holds = f.median >= 0.99
        elif f.goal == "≤ 0.04":
            f.holds = f.median <= 0.04
    return list(figures.values()), chart


def _faults_json(faults: Faults) -> dict[str, Any]:
    data: dict[str, Any] = faults.to_json()
    return data


if __name__ == "__main__":
    _neighbour_main(json.loads(sys.argv[1]))
