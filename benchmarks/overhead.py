"""The importer's own cost: CPU, memory, journal writes, resume, and how they scale.

The service is a fake at the gateway seam (:class:`FakeService`: one job at a time per store,
each lasting ``job_seconds``), so that what is measured is this process alone. Every measurement
runs in a fresh child process (``python -m benchmarks.overhead MODE ...`` prints one JSON line),
so that peak memory and CPU belong to that measurement only.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import psutil  # type: ignore[import-untyped]  # no stubs installed

from async_refimport import Importer, ImportRequest, SQLiteJournal, StoreBusyError, StoreRef
from async_refimport._models import RowState
from async_refimport.gateway.aws import (
    ExistingReference,
    JobSnapshot,
    JobSummary,
    ReferencePage,
    SourceSpec,
    SourceStatus,
)
from async_refimport.journal.base import Settlement

from ._common import ROLE_ARN, Figure, project_settings, quiet_logs

REGION = "us-east-1"
ENDPOINT = "http://fake.invalid"


class FakeService:
    """An in-memory HealthOmics at the gateway seam: jobs end ``job_seconds`` after their Start."""

    def __init__(self, job_seconds: float) -> None:
        self.job_seconds = job_seconds
        self._ids = itertools.count(1_000_000_001)
        self.jobs: dict[str, tuple[str, float, tuple[SourceSpec, ...]]] = {}
        self.active: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.first_call: float | None = None
        self.first_start: float | None = None
        self.started = anyio.Event()

    def _call(self, operation: str) -> float:
        now = time.time()
        self.calls[operation] += 1
        if self.first_call is None:
            self.first_call = time.perf_counter()
        return now

    def add_running(self, store: StoreRef, job_id: str, sources: Sequence[SourceSpec]) -> None:
        self.jobs[job_id] = (store.key, time.time(), tuple(sources))
        self.active[store.key] = job_id

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        now = self._call("StartReferenceImportJob")
        if self.first_start is None:
            self.first_start = time.perf_counter()
            self.started.set()
        active = self.active.get(store.key)
        if active is not None and now < self.jobs[active][1] + self.job_seconds:
            raise StoreBusyError(
                "busy", code="ServiceQuotaExceededException", operation="StartReferenceImportJob"
            )
        job_id = str(next(self._ids))
        self.add_running(store, job_id, sources)
        return job_id

    async def get_import(self, store: StoreRef, job_id: str) -> JobSnapshot:
        now = self._call("GetReferenceImportJob")
        _, created, sources = self.jobs[job_id]
        done = now >= created + self.job_seconds
        statuses = tuple(
            SourceStatus(
                s.name,
                s.source_file,
                "FINISHED" if done else "NOT_STARTED",
                reference_id=f"{job_id}{i:03d}" if done else None,
            )
            for i, s in enumerate(sources)
        )
        return JobSnapshot(
            job_id,
            "COMPLETED" if done else "IN_PROGRESS",
            None,
            datetime.fromtimestamp(created, UTC),
            datetime.fromtimestamp(created + self.job_seconds, UTC) if done else None,
            statuses,
        )

    async def list_imports(
        self, store: StoreRef, created_after: datetime | None = None, status: str | None = None
    ) -> list[JobSummary]:
        now = self._call("ListReferenceImportJobs")
        # Only the busy-store check asks (by status): the running job, if any.
        active = self.active.get(store.key)
        if status != "IN_PROGRESS" or active is None:
            return []
        created = self.jobs[active][1]
        if now >= created + self.job_seconds:
            return []
        return [JobSummary(active, "IN_PROGRESS", datetime.fromtimestamp(created, UTC))]

    async def list_references(
        self, store: StoreRef, name: str | None = None
    ) -> list[ExistingReference]:
        self._call("ListReferences")
        return []

    async def list_references_page(
        self, store: StoreRef, next_token: str | None = None
    ) -> ReferencePage:
        self._call("ListReferences")
        return ReferencePage(())

    async def reference_creation_job(self, store: StoreRef, reference_id: str) -> str | None:
        self._call("GetReferenceMetadata")
        return None

    async def reference_checksums(
        self, store: StoreRef, created_after: datetime | None
    ) -> dict[str, str]:
        self._call("ListReferences")
        return {}

    def timelines(self) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {}
        for key, created, _ in self.jobs.values():
            out.setdefault(key, []).append((created, created + self.job_seconds))
        return {k: sorted(v) for k, v in out.items()}


def requests_for(rows: int, stores: int) -> list[ImportRequest]:
    return [
        ImportRequest(
            f"{1_000_000_000 + i % stores}",
            ROLE_ARN,
            f"s3://bench-genomes/pool/g{i % 1000:04d}.fa",
            f"genome-{i:07d}",
            region=REGION,
            endpoint_url=ENDPOINT,
        )
        for i in range(rows)
    ]


class PeakRss:
    """Samples this process's RSS every few milliseconds in a thread; keeps the peak."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def now(self) -> int:
        rss = int(self._proc.memory_info().rss)
        self.peak = max(self.peak, rss)
        return rss

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# -- child modes ----------------------------------------------------------------------------------


def child_run(rows: int, stores: int, job_seconds: float) -> dict[str, Any]:
    """Import ``rows`` over ``stores`` end to end against the fake; CPU, memory, makespan."""
    fake = FakeService(job_seconds)
    # The fake job stands for a 55 s job: compress the engine's waits alike.
    settings = project_settings(job_seconds / 55, rates_scaled=True)
    out: dict[str, Any] = {"rows": rows, "stores": stores, "job_seconds": job_seconds}

    async def main(journal: Path, mem: PeakRss) -> None:
        gc.collect()
        rss0 = mem.now()
        async with Importer(journal, region=REGION, settings=settings, gateway=fake) as imp:
            requests = requests_for(rows, stores)
            out["request_list_bytes_per_row"] = (mem.now() - rss0) / rows
            cpu0, t0 = time.process_time(), time.perf_counter()
            await imp.submit(requests)
            out["submit_s"] = time.perf_counter() - t0
            del requests
            gc.collect()
            out["retained_bytes_per_queued_row"] = (mem.now() - rss0) / rows
            await imp.drain()
            out["makespan_s"] = time.perf_counter() - t0
            out["cpu_s"] = time.process_time() - cpu0
        out["peak_bytes_per_row"] = (mem.peak - rss0) / rows

    with tempfile.TemporaryDirectory() as tmp, PeakRss() as mem:
        anyio.run(main, Path(tmp) / "journal.sqlite", mem)
    timelines = fake.timelines()
    busiest = max(sum(e - s for s, e in jobs) for jobs in timelines.values())
    busy = sum(e - s for jobs in timelines.values() for s, e in jobs)
    span = sum(jobs[-1][1] - jobs[0][0] for jobs in timelines.values())
    out["lower_bound_s"] = busiest
    out["utilization"] = busy / span
    out["jobs"] = len(fake.jobs)
    out["calls"] = sum(fake.calls.values())
    return out


async def _build_journal(path: Path, rows: int, stores: int) -> tuple[StoreRef, list[SourceSpec]]:
    """A journal of ``rows`` queued rows, the first 100 in a job the service is running."""
    async with SQLiteJournal(path) as journal:
        resolved = [(r.store(REGION), r) for r in requests_for(rows, stores)]
        await journal.add_rows(resolved)
        store = resolved[0][0]
        batch = await journal.queued_rows(store, 100)
        job = await journal.begin_job(store, batch, "resume-token")
        await journal.record_job_id(job, "999999999")
    return store, [SourceSpec(r.source_file, r.name) for r in batch]


def child_resume(rows: int, stores: int) -> dict[str, Any]:
    """Time from opening an Importer on a journal of ``rows`` rows (one job in flight) to its first
    API call (polling the recovered job) and to its first new Start."""
    fake = FakeService(0.0)
    settings = project_settings(0.001, rates_scaled=True)
    out: dict[str, Any] = {"rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.sqlite"
        store, sources = anyio.run(_build_journal, path, rows, stores)
        out["journal_bytes_per_row"] = path.stat().st_size / rows
        fake.add_running(store, "999999999", sources)

        async def main() -> None:
            t0 = time.perf_counter()
            async with Importer(path, region=REGION, settings=settings, gateway=fake) as imp:
                await fake.started.wait()
                assert fake.first_call is not None and fake.first_start is not None
                out["first_call_s"] = fake.first_call - t0
                out["first_start_s"] = fake.first_start - t0
                imp.stop()

        anyio.run(main)
    return out


def child_journal(rows: int) -> dict[str, Any]:
    """Journal write throughput: queue rows, then cycle them through jobs of 100 (write-ahead,
    job id, settlement), as lanes do, each step one committed transaction."""

    async def main(path: Path) -> dict[str, Any]:
        resolved = [(r.store(REGION), r) for r in requests_for(rows, 1)]
        store = resolved[0][0]
        async with SQLiteJournal(path) as journal:
            t0 = time.perf_counter()
            for i in range(0, rows, 1000):
                await journal.add_rows(resolved[i : i + 1000])
            t_add = time.perf_counter() - t0
            t0 = time.perf_counter()
            jobs = 0
            while batch := await journal.queued_rows(store, 100):
                job = await journal.begin_job(store, batch, f"token-{jobs}")
                job = await journal.record_job_id(job, str(1_000_000_000 + jobs))
                await journal.finish_job(
                    job,
                    [Settlement(r.row_id, RowState.IMPORTED, f"ref{r.row_id}") for r in batch],
                    status="COMPLETED",
                )
                jobs += 1
            t_cycle = time.perf_counter() - t0
        return {
            "rows": rows,
            "queue_rows_per_s": rows / t_add,
            # Each row goes QUEUED → SUBMITTED → IMPORTED: two transitions in the job cycle.
            "job_transitions_per_s": 2 * rows / t_cycle,
            "job_commits_per_s": 3 * jobs / t_cycle,
            "lifecycle_rows_per_s": rows / (t_add + t_cycle),
        }

    with tempfile.TemporaryDirectory() as tmp:
        result: dict[str, Any] = anyio.run(main, Path(tmp) / "journal.sqlite")
    return result


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.overhead", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmarks.overhead {args} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the benchmark --------------------------------------------------------------------------------


def bench(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    figures: list[Figure] = []
    big = 20_000 if quick else 100_000
    repeats = 1 if quick else 3
    section = "Overhead"

    def new(name: str, unit: str, goal: str | None = None, note: str = "") -> Figure:
        f = Figure(section, name, unit, goal=goal, note=note)
        figures.append(f)
        return f

    note = f"{big} rows, 10 stores, fake service at the gateway seam, jobs of 0.1 s"
    cpu = new(f"CPU seconds, {big} rows end to end", "s", note=note)
    cpu_per_1k = new("CPU seconds per 1,000 rows", "s", note=note)
    retained = new(
        "memory retained per queued row", "bytes", "< 1024", note=note + "; RSS after submit"
    )
    peak = new("peak memory growth per row", "bytes", note=note + "; includes the caller's list")
    submit = new(f"submit() of {big} rows", "s", note=note)
    for _ in range(repeats):
        r = _child(["run", "--rows", str(big), "--stores", "10", "--job-seconds", "0.1"])
        print(f"  overhead/run: {r}", flush=True)
        cpu.add(r["cpu_s"])
        cpu_per_1k.add(r["cpu_s"] / big * 1000)
        retained.add(r["retained_bytes_per_queued_row"])
        peak.add(r["peak_bytes_per_row"])
        submit.add(r["submit_s"])
    retained.holds = retained.median < 1024

    jnote = f"{big} rows, SQLite WAL, synchronous=FULL, jobs of 100"
    queue_rate = new("journal: rows queued per second", "rows/s", note=jnote)
    transitions = new(
        "journal: row transitions per second (job cycle)", "transitions/s", note=jnote
    )
    commits = new("journal: job commits per second", "commits/s", note=jnote)
    lifecycle = new("journal: full row lifecycle", "rows/s", note=jnote)
    for _ in range(repeats):
        r = _child(["journal", "--rows", str(big)])
        print(f"  overhead/journal: {r}", flush=True)
        queue_rate.add(r["queue_rows_per_s"])
        transitions.add(r["job_transitions_per_s"])
        commits.add(r["job_commits_per_s"])
        lifecycle.add(r["lifecycle_rows_per_s"])

    rnote = f"journal of {big} queued rows over 10 stores, one job in flight"
    first_call = new("resume: open → first API call", "s", "< 2", note=rnote)
    first_start = new("resume: open → first new Start", "s", "< 2", note=rnote)
    size = new("journal file size per row", "bytes", note=rnote)
    for _ in range(repeats):
        r = _child(["resume", "--rows", str(big), "--stores", "10"])
        print(f"  overhead/resume: {r}", flush=True)
        first_call.add(r["first_call_s"])
        first_start.add(r["first_start_s"])
        size.add(r["journal_bytes_per_row"])
    first_call.holds = first_call.median < 2
    first_start.holds = first_start.median < 2

    # Scaling: rows x stores, one repeat each (the 100k-row single-store point is the slow one).
    rows_grid = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    stores_grid = (1, 10) if quick else (1, 10, 50)
    job_seconds = 0.05 if quick else 0.1
    scaling: list[dict[str, Any]] = []
    snote = f"fake service, jobs of {job_seconds} s, one run per point"
    for rows in rows_grid:
        for stores in stores_grid:
            r = _child(
                [
                    *("run", "--rows", str(rows), "--stores", str(stores)),
                    *("--job-seconds", str(job_seconds)),
                ]
            )
            print(f"  overhead/scaling: {r}", flush=True)
            scaling.append(r)
            tag = f"{rows} rows, {stores} stores"
            new(f"scaling {tag}: makespan / lower bound", "x", note=snote).add(
                r["makespan_s"] / r["lower_bound_s"]
            )
            jobs_per_lane = r["jobs"] / stores
            new(f"scaling {tag}: store idle time per job", "ms", note=snote).add(
                (r["makespan_s"] - r["lower_bound_s"]) / jobs_per_lane * 1000
            )
            new(f"scaling {tag}: CPU seconds", "s", note=snote).add(r["cpu_s"])
            new(f"scaling {tag}: peak memory per row", "bytes", note=snote).add(
                r["peak_bytes_per_row"]
            )
    return figures, {"scaling": scaling}


def main() -> None:
    quiet_logs()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead")
    parser.add_argument("mode", choices=["run", "resume", "journal"])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--job-seconds", type=float, default=0.1)
    args = parser.parse_args()
    if args.mode == "run":
        result = child_run(args.rows, args.stores, args.job_seconds)
    elif args.mode == "resume":
        result = child_resume(args.rows, args.stores)
    else:
        result = child_journal(args.rows)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
