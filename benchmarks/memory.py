"""``python -m benchmarks.memory [--rows 200000] [--stores 10]``: the peak memory of
``refimport import MANIFEST --json`` on a large manifest, and of reporting on its journal.

Each measurement is one fresh ``refimport`` process (the CLI's own ``main``, its manifest reader,
progress, journal and streamed JSON document) whose service is the fake of
:mod:`benchmarks.overhead` at the gateway seam, with every wait compressed: what is measured is
the CLI alone, not botocore nor an emulator. The peak is the kernel's (``ru_maxrss`` of the child,
from ``wait4``), so nothing samples too late. Runs:

* ``1 row``: the process with everything imported (the floor every run pays);
* ``N rows, --json``: the whole run, the JSON document streamed to a file, progress lines on
  stderr (not a terminal: a line every 5 s);
* ``N rows, --json --quiet``: the same without progress;
* ``N rows, summary``: without ``--json`` (the summary table instead);
* ``N rows, --dry-run --json``: reading and planning only (no journal, no service);
* ``report --format json|csv`` and ``status`` of the ``--json`` run's journal of N rows.

Writes ``benchmarks/results/memory.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "memory.json"
ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"


def write_manifest(path: Path, rows: int, stores: int) -> None:
    """A CSV manifest as users write them: one row per genome, several stores and Regions."""
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1"]
    with path.open("w") as out:
        out.write("store_id,region,name,source_file,description\n")
        for i in range(rows):
            store = i % stores
            out.write(
                f"{1_000_000_000 + store},{regions[store % len(regions)]},genome-{i:07d},"
                f"s3://bench-genomes/pool/g{i % 1000:04d}.fa,synthetic genome number {i}\n"
            )


def measure(args: list[str], stdout: Path) -> dict[str, Any]:
    """Run the child; its peak RSS (bytes), wall time and exit code."""
    with stdout.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.memory", "child", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "120"},
        )
        t0 = time.perf_counter()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0,):
        raise RuntimeError(f"child {args} exited {proc.returncode}:\n{err[-3000:]}")
    return {
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "wall_s": wall,
        "output_bytes": stdout.stat().st_size,
    }


def child(argv: list[str]) -> int:
    """``refimport import ...`` with the fake service and compressed waits."""
    from async_refimport.cli import import_ as _cli_import
    from async_refimport.cli import main as _cli
    from async_refimport.engine import importer as _importer
    from benchmarks._common import project_settings
    from benchmarks.overhead import FakeService

    class LeanFake(FakeService):
        """The fake forgets a job's sources once it told the job ended: what it would keep for
        the whole run is not the CLI's memory."""

        async def get_import(self, store: Any, job_id: str) -> Any:
            snapshot = await super().get_import(store, job_id)
            if snapshot.status == "COMPLETED":
                key, created, _ = self.jobs[job_id]
                self.jobs[job_id] = (key, created, ())
            return snapshot

    job_seconds = 0.002
    fake = LeanFake(job_seconds)
    fast = project_settings(job_seconds / 55, rates_scaled=True)
    real_settings = _cli_import.ImporterSettings

    def settings(**given: Any) -> Any:
        # The CLI's own choices (sources per job, pre-flight off ...) over compressed waits.
        base = real_settings(**given)
        return type(base)(
            **{
                **{f: getattr(base, f) for f in base.__dataclass_fields__},
                "retry": fast.retry,
                "pacing": fast.pacing,
                "polling": fast.polling,
                "busy_wait": fast.busy_wait,
            }
        )

    class FakeGateway(_importer.AwsGateway):
        def __new__(cls, **_: Any) -> Any:  # the fake, not an AwsGateway
            return fake

    _cli_import.ImporterSettings = settings  # type: ignore[assignment,misc]  # a benchmark's seam
    _importer.AwsGateway = FakeGateway  # type: ignore[misc]
    return _cli.main(argv)


def main() -> None:
    if sys.argv[1:2] == ["child"]:
        raise SystemExit(child(sys.argv[2:]))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--stores", type=int, default=10)
    args = parser.parse_args()
    figures: dict[str, Any] = {"rows": args.rows, "stores": args.stores, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="refimport-memory-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIABENCHMARK0000000")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark-secret-not-real")
        one, many = work / "one.csv", work / "many.csv"
        write_manifest(one, 1, 1)
        write_manifest(many, args.rows, args.stores)
        imp = ["import", "--role-arn", ROLE_ARN, "--no-check-sources"]
        n = args.rows
        journal = str(work / "a.sqlite")  # the --json run's, read by report and status
        runs = {
            "1 row, --json": [*imp, str(one), "--json", "--journal", str(work / "one.sqlite")],
            f"{n} rows, --json": [*imp, str(many), "--json", "--journal", journal],
            f"{n} rows, --json --quiet": [
                *imp, str(many), "--json", "--quiet", "--journal", str(work / "b.sqlite")
            ],
            f"{n} rows, summary": [*imp, str(many), "--journal", str(work / "c.sqlite")],
            f"{n} rows, --dry-run --json": [*imp, str(many), "--dry-run", "--json"],
            f"report --format json of {n} rows": ["report", "--journal", journal, "--format", "json"],
            f"report --format csv of {n} rows": ["report", "--journal", journal, "--format", "csv"],
            f"status of {n} rows": ["status", "--journal", journal],
        }  # fmt: skip
        for name, run in runs.items():
            result = measure(run, work / "out.txt")
            figures["runs"][name] = result
            print(f"  memory/{name}: {result}", flush=True)
    floor = figures["runs"]["1 row, --json"]["peak_rss_bytes"]
    print()
    print("| run | peak RSS | above the 1-row floor, per row | wall |")
    print("|---|---|---|---|")
    for name, r in figures["runs"].items():
        per_row = (r["peak_rss_bytes"] - floor) / args.rows if "1 row" not in name else 0.0
        print(
            f"| {name} | {r['peak_rss_bytes'] / 2**20:.0f} MiB | {per_row:,.0f} B | "
            f"{r['wall_s']:.1f} s |"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
