"""This project against the scripts people write, same workload, same emulator, same run.

Peers (one thread per store each, which is generous to them):

- (a) ``script``: boto3, one source per job, the stock ``reference_import_job_completed`` waiter;
- (b) ``packed``: the same with 100 sources per job;
- (c) ``packed+1s``: (b) polling GetReferenceImportJob every second instead of the waiter.

The emulator compresses time by ``time_scale``; so that the comparison stays fair, every duration
is compressed alike (the waiter's 30 s delay, the 1 s poll, this project's polling policy) and the
5 TPS limit is raised by the same factor.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from async_refimport import Importer, ImporterSettings, RowState

from ._common import (
    FINAL,
    ROLE_ARN,
    EmulatorProcess,
    Figure,
    Interval,
    Workload,
    api_calls,
    job_timelines,
    lower_bound,
    overlapping,
    project_settings,
    utilization,
)

PROJECT = "async_refimport"
PEERS = ("script (a)", "packed (b)", "packed+1s poll (c)")


@dataclass
class Run:
    """One peer's run over a workload."""

    peer: str
    makespan: float
    calls: int
    references: int
    timelines: dict[str, list[Interval]]
    failures: int = 0
    overlaps: int = 0

    @property
    def utilization(self) -> float:
        return utilization(self.timelines)[0]

    @property
    def lower_bound(self) -> float:
        return lower_bound(self.timelines)


def run_project(
    emu: EmulatorProcess,
    workload: Workload,
    settings: ImporterSettings,
    *,
    during: Callable[[], Any] | None = None,
) -> Run:
    """Import ``workload`` with this project; ``during`` runs in a thread meanwhile (and must
    return once the module-level ``STOP`` event is set)."""
    requests = workload.requests(emu.omics_endpoint_url)

    async def main(journal: Path) -> tuple[float, list[RowState]]:
        t0 = time.perf_counter()
        async with Importer(journal, region=next(iter(workload.stores)), settings=settings) as imp:
            results = await imp.wait(await imp.submit(requests))
        return time.perf_counter() - t0, [r.state for r in results]

    with tempfile.TemporaryDirectory() as tmp:
        makespan, states = anyio.run(main, Path(tmp) / "journal.sqlite")
    stats = emu.stats()
    timelines = job_timelines(stats)
    return Run(
        PROJECT,
        makespan,
        api_calls(stats),
        len(requests),
        timelines,
        failures=sum(1 for s in states if s is not RowState.IMPORTED),
        overlaps=overlapping(timelines),
    )


def run_script(
    emu: EmulatorProcess, workload: Workload, *, pack: int, poll: float | None, peer: str
) -> Run:
    """The script people write, one thread per store. ``poll`` None: the stock waiter."""
    s = emu.time_scale
    failures = [0]

    def one_store(region: str) -> None:
        omics = emu.client("omics", region)
        store_id = workload.stores[region]
        items = workload.rows[region]
        for i in range(0, len(items), pack):
            chunk = items[i : i + pack]
            job = omics.start_reference_import_job(
                referenceStoreId=store_id,
                roleArn=ROLE_ARN,
                sources=[{"sourceFile": uri, "name": name} for name, uri in chunk],
            )
            if poll is None:
                waiter = omics.get_waiter("reference_import_job_completed")
                try:
                    waiter.wait(
                        referenceStoreId=store_id,
                        id=job["id"],
                        # The stock delay, compressed like the jobs; the stock attempt count.
                        WaiterConfig={"Delay": 30 * s, "MaxAttempts": 20},
                    )
                except Exception:
                    failures[0] += len(chunk)
            else:
                while True:
                    status = omics.get_reference_import_job(referenceStoreId=store_id, id=job["id"])
                    if status["status"] in FINAL:
                        if status["status"] != "COMPLETED":
                            failures[0] += len(chunk)
                        break
                    time.sleep(poll * s)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one_store, args=(region,)) for region in workload.rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    makespan = time.perf_counter() - t0
    stats = emu.stats()
    timelines = job_timelines(stats)
    return Run(
        peer,
        makespan,
        api_calls(stats),
        workload.size,
        timelines,
        failures=failures[0],
        overlaps=overlapping(timelines),
    )


def bench(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    """Run every peer and this project on one workload; ratios are peer / project."""
    time_scale = 0.01 if quick else 0.02
    stores, per_store = (2, 50) if quick else (2, 300)
    repeats = 1 if quick else 3
    section = "Peers"
    note = (
        f"{stores} stores x {per_store} references of 5 Mbases; time_scale {time_scale} "
        f"(a 100-source job lasts {55 * time_scale:.2f} s + S3 reads; the waiter's delay "
        f"{30 * time_scale:.2f} s; TPS limit {5 / time_scale:.0f}/s)"
    )
    figures: dict[str, Figure] = {}

    def fig(name: str, unit: str, goal: str | None = None) -> Figure:
        if name not in figures:
            figures[name] = Figure(section, name, unit, goal=goal, note=note)
        return figures[name]

    runs: dict[str, list[Run]] = {}
    settings = project_settings(time_scale, rates_scaled=True)
    with EmulatorProcess(time_scale=time_scale, tps=5 / time_scale) as emu:
        pool = emu.upload_genomes(50)
        for rep in range(repeats):
            plan: list[tuple[str, Callable[[Workload], Run]]] = [
                (PROJECT, lambda w: run_project(emu, w, settings)),
                (
                    "packed (b)",
                    lambda w: run_script(emu, w, pack=100, poll=None, peer="packed (b)"),
                ),
                (
                    "packed+1s poll (c)",
                    lambda w: run_script(emu, w, pack=100, poll=1.0, peer="packed+1s poll (c)"),
                ),
            ]
            if rep == 0:
                # The one-source script is slow by nature (that is the point): run it once.
                plan.append(
                    (
                        "script (a)",
                        lambda w: run_script(emu, w, pack=1, poll=None, peer="script (a)"),
                    )
                )
            for peer, runner in plan:
                emu.reset()
                workload = Workload.build(emu.create_stores(stores), per_store, pool, f"r{rep}")
                run = runner(workload)
                runs.setdefault(peer, []).append(run)
                print(
                    f"  peers: {peer:<20} makespan {run.makespan:7.2f} s  calls {run.calls:5d}  "
                    f"utilization {run.utilization:.3f}  failures {run.failures}",
                    flush=True,
                )
    for peer, peer_runs in runs.items():
        for run in peer_runs:
            fig(f"makespan: {peer}", "s").add(run.makespan)
            fig(f"API calls per reference: {peer}", "calls").add(run.calls / run.references)
            fig(f"lane utilization: {peer}", "share").add(run.utilization)
    project = runs[PROJECT]
    base_makespan = sorted(r.makespan for r in project)[len(project) // 2]
    base_calls = sorted(r.calls for r in project)[len(project) // 2]
    for peer in PEERS:
        for run in runs.get(peer, []):
            fig(f"makespan ratio {peer} / {PROJECT}", "x").add(run.makespan / base_makespan)
            fig(f"API calls ratio {peer} / {PROJECT}", "x").add(run.calls / base_calls)
    for run in project:
        fig(f"makespan / lower bound: {PROJECT}", "x").add(run.makespan / run.lower_bound)
    bad = sum(r.failures + r.overlaps for rs in runs.values() for r in rs)
    fig("failed rows + overlapping jobs (all peers)", "count").add(bad)
    chart = {
        "timelines": {peer: peer_runs[0].timelines for peer, peer_runs in runs.items()},
        "makespans": {peer: [r.makespan for r in rs] for peer, rs in runs.items()},
    }
    return list(figures.values()), chart
