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

import statistics
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
    GENOME_BASES,
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
    """Run every peer and this project on one workload; ratios are peer / project.

    The one-source script (a) is a chain of identical jobs, so it runs on the first rows of each
    store only and its makespan and calls are scaled up to the whole workload (stated in RESULTS).
    """
    time_scale = 0.05 if quick else 0.1
    stores, per_store, a_rows = (2, 100, 4) if quick else (2, 300, 20)
    repeats = 1 if quick else 3
    section = "Peers"
    job = (30 + 100 * GENOME_BASES / 20e6) * time_scale
    note = (
        f"{stores} stores x {per_store} references of {GENOME_BASES / 1e6:g} Mbases; time_scale "
        f"{time_scale} (a 100-source job lasts {job:.2f} s + S3 reads; the waiter's delay "
        f"{30 * time_scale:.2f} s; the 1 s poll {time_scale:g} s; TPS limit "
        f"{5 / time_scale:.0f}/s); script (a) ran on {a_rows} references per store, its makespan "
        f"and calls scaled x{per_store // a_rows} (a chain of identical one-source jobs)"
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
            plan: list[tuple[str, int, Callable[[Workload], Run]]] = [
                (PROJECT, per_store, lambda w: run_project(emu, w, settings)),
                (
                    "packed (b)",
                    per_store,
                    lambda w: run_script(emu, w, pack=100, poll=None, peer="packed (b)"),
                ),
                (
                    "packed+1s poll (c)",
                    per_store,
                    lambda w: run_script(emu, w, pack=100, poll=1.0, peer="packed+1s poll (c)"),
                ),
            ]
            if rep == 0:
                plan.append(
                    (
                        "script (a)",
                        a_rows,
                        lambda w: run_script(emu, w, pack=1, poll=None, peer="script (a)"),
                    )
                )
            for peer, rows, runner in plan:
                emu.reset()
                workload = Workload.build(emu.create_stores(stores), rows, pool, f"r{rep}")
                run = runner(workload)
                if rows != per_store:
                    factor = per_store / rows
                    run.makespan *= factor
                    run.calls = round(run.calls * factor)
                    run.references = round(run.references * factor)
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
    base_makespan = statistics.median(r.makespan for r in project)
    base_calls = statistics.median(r.calls for r in project)
    for peer in PEERS:
        for run in runs.get(peer, []):
            fig(f"makespan ratio {peer} / {PROJECT}", "x").add(run.makespan / base_makespan)
            fig(f"API calls ratio {peer} / {PROJECT}", "x").add(run.calls / base_calls)
    for run in project:
        fig(f"makespan / lower bound: {PROJECT}", "x").add(run.makespan / run.lower_bound)
    bad = sum(r.failures + r.overlaps for rs in runs.values() for r in rs)
    fig("failed rows + overlapping jobs (all peers)", "count").add(bad)
    chart = {
        "timelines": {
            (peer if peer != "script (a)" else f"{peer}, first {a_rows} rows per store"): rs[
                0
            ].timelines
            for peer, rs in runs.items()
        },
        "makespans": {peer: [r.makespan for r in rs] for peer, rs in runs.items()},
    }
    return list(figures.values()), chart
