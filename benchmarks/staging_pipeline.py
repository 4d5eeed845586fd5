"""``python -m benchmarks.staging_pipeline [--quick] [--rows 300]``: how long a store waits for
staging.

One store of the emulator (in a process of its own, its clock compressed) imports ``--rows``
references whose sources are on a local HTTP server (``tests.helpers.sources``), so every row is
staged into a bucket of the store's Region first (the staging driver, 4 sources at once per
Region), and again the same bytes already in S3 in the store's Region (no staging: the baseline):

* **wait for the first job**: from the run's start to its first job (the first sources must be
  staged first), against the same rows from S3 of the Region;
* **store idle waiting for staging after the first job**: the time the store spent with no job
  and no staged row while rows were still staging (a job ended with every staged row taken: the
  store waits until the next row is staged), from the Importer's own events (the goal: none);
* with a fast server, a slow one (each request answered after ``SLOW`` seconds) and one slower
  than the store's imports (``CRAWL``: there the store must wait, which checks the measure).

Writes ``benchmarks/results/staging_pipeline.json`` and the "Staging pipeline" section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from async_refimport._application import run_import
from async_refimport._events import Event, JobFinished, JobStarted, RowsQueued
from async_refimport._models import ImportRequest
from async_refimport.emulator import make_fasta
from async_refimport.engine.staging_driver import StagingPlan
from async_refimport.staging import StagingArea
from tests.helpers.sources import SourceServer

from ._common import (
    ROLE_ARN,
    EmulatorProcess,
    Figure,
    isolate_aws_environment,
    project_settings,
    quiet_logs,
    section_lines,
    splice_section,
)

HERE = Path(__file__).parent
SECTION = "Staging pipeline (store idle time waiting for staging)"
TIME_SCALE = 0.02
REGION = "us-east-1"
SLOW = 0.05
CRAWL = 2.0  # a server slower than the store's imports: the store must wait (the check)
NOTE = (
    f"one store, the emulator at time_scale {TIME_SCALE} (a job: 0.6 s), 20 KB FASTA sources on "
    f"a local HTTP server (fast, {SLOW} s or {CRAWL} s before each answer; the crawling one with "
    "a 25th of the rows, a check that the measure sees a wait), staged 4 at once; against the "
    "same bytes already in S3 in the store's Region"
)

JOBS_NOTE = (
    "jobs: a lane starts a job with whatever is staged (the first one often with a single row), so "
    "that the store never waits; staging here is slow beside the emulator's 0.6 s jobs, hence "
    "more, smaller jobs than from S3 of the Region (on AWS a job takes minutes, and a run's rows "
    "are mostly staged while its first job runs)"
)


def _requests(store: str, endpoint: str, sources: list[str], tag: str) -> list[ImportRequest]:
    return [
        ImportRequest(store, ROLE_ARN, uri, f"{tag}-{i:05d}", region=REGION, endpoint_url=endpoint)
        for i, uri in enumerate(sources)
    ]


class _Recorder:
    """An import observer that keeps the time each event reached it (monotonic seconds)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []

    def expect(self, row_ids: Any) -> None:
        """The run's rows (not needed)."""

    def add_rows(self, results: Any) -> None:
        """The run's rows as journaled (not needed)."""

    def handle(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))

    async def run(self, events: Any) -> None:
        async for event in events:
            self.handle(event)


def _waits(recorded: list[tuple[float, Event]], began: float) -> tuple[float, float, int]:
    """(wait for the first job, time the store waited for staging after its first job, jobs).

    The store waits for staging when a job of it ends with no row queued (every staged row
    taken) while rows are still staging: until the next row is staged (a ``RowsQueued``).
    """
    queued, jobs, first, waited = 0, 0, None, 0.0
    ended: float | None = None  # a job ended with nothing queued: the store waits from then
    for at, event in recorded:
        if isinstance(event, RowsQueued):
            queued += event.count
            if ended is not None:
                waited += at - ended
                ended = None
        elif isinstance(event, JobStarted):
            jobs += 1
            first = at if first is None else first
            queued -= event.rows
            ended = None
        elif isinstance(event, JobFinished):
            queued += event.requeued
            ended = at if queued <= 0 else None
    return (first or began) - began, waited, jobs


def _one(emu: EmulatorProcess, server: SourceServer, rows: int, delay: float, tmp: Path) -> Any:
    """Import ``rows`` staged from the HTTP server, then the same bytes from S3 of the Region."""
    s3 = emu.client("s3", REGION)
    for bucket in ("bench-stage", "bench-local"):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    tag = f"d{int(delay * 1000)}-{time.monotonic_ns()}"
    urls, local = [], []
    for i in range(rows):
        body = make_fasta(f"{tag}-{i}", 20_000, seed=i).encode()
        urls.append(server.add(f"/{tag}/g{i:05d}.fa", body, delay=delay))
        s3.put_object(Bucket="bench-local", Key=f"{tag}/g{i:05d}.fa", Body=body)
        local.append(f"s3://bench-local/{tag}/g{i:05d}.fa")
    settings = project_settings(TIME_SCALE, rates_scaled=True)
    plan = StagingPlan(
        areas={REGION: StagingArea(REGION, "bench-stage", f"{tag}/")},
        ledger=tmp / f"{tag}.ledger",
        s3_endpoint_url=emu.endpoints["s3_endpoint_url"],
    )
    out = {}
    for label, sources, staging in (("staged", urls, plan), ("baseline", local, None)):
        store = emu.create_stores(1)[REGION]
        requests = _requests(store, emu.omics_endpoint_url, sources, f"{tag}-{label}")
        recorder = _Recorder()
        began = time.monotonic()
        run = partial(
            run_import,
            requests,
            journal=tmp / f"{tag}-{label}.sqlite",
            region=REGION,
            settings=settings,
            staging=staging,
            observer=recorder,
        )
        outcome = anyio.run(run)
        assert outcome.tally.states.total() == rows and not outcome.pending, outcome.summary
        out[label] = _waits(recorder.events, began)
        emu.reset()  # one store per account and Region: the next run's store is a new one
    return out


def bench(quick: bool, rows: int) -> list[Figure]:
    figures: dict[str, Figure] = {}

    def add(name: str, unit: str, value: float, goal: str | None = None, note: str = NOTE) -> None:
        figure = figures.setdefault(name, Figure(SECTION, name, unit, goal=goal, note=note))
        figure.add(value)

    with EmulatorProcess(time_scale=TIME_SCALE) as emu, SourceServer() as server:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(1 if quick else 3):
                for kind, delay, n in (
                    ("fast server", 0.0, rows),
                    (f"slow server ({SLOW} s)", SLOW, rows),
                    (f"crawling server ({CRAWL} s)", CRAWL, max(1, rows // 25)),
                ):
                    got = _one(emu, server, n, delay, Path(tmp))
                    (first, waited, jobs), (first0, _, jobs0) = got["staged"], got["baseline"]
                    add(f"{kind}: wait for the first job, staged", "s", first)
                    add(f"{kind}: wait for the first job, sources in the Region", "s", first0)
                    add(
                        f"{kind}: store idle waiting for staging after the first job",
                        "s",
                        waited,
                        goal="none",
                    )
                    add(f"{kind}: jobs, staged", "jobs", jobs, note=JOBS_NOTE)
                    add(f"{kind}: jobs, sources in the Region", "jobs", jobs0)
    for figure in figures.values():
        if figure.goal == "none" and not figure.name.startswith("crawling"):
            figure.holds = max(figure.values) == 0.0
        elif figure.goal == "none":
            figure.goal = None  # staging slower than the imports: the store must wait
    return list(figures.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.staging_pipeline", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--rows", type=int, default=300, help="rows per run (default 300)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        isolate_aws_environment(tmp)
        quiet_logs()
        figures = bench(args.quick, args.rows)
    saved = HERE / "results" / "staging_pipeline.json"
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(
        json.dumps({"figures": [f.to_json() for f in figures], "quick": args.quick}, indent=2)
        + "\n"
    )
    lines = section_lines(SECTION, figures)
    splice_section(HERE / "RESULTS.md", SECTION, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
