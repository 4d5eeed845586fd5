"""``python -m benchmarks.listing [--quick]``: how long a big store delays the first Start.

A store holding 1,000, 10,000 or 100,000 references (put there as another client's, the emulator
throttling ListReferences at AWS's 5 TPS); ``refimport import`` of a small manifest (10 rows) and
of a large one (1,000 rows) as a user runs it, a subprocess. Measured: the wall time from the
command's start to the first StartReferenceImportJob the emulator received, the ListReferences
calls made before it, and the exit code (a big store must never be a set-up error).

The Start is noticed from the command's own JSON log (``import_job.started``), and the emulator's
statistics are read once, after it: polling them would serialise the store's 100,000 references
twice a second, in the emulator the command is talking to, and slow what is measured.

Writes ``benchmarks/results/listing.json`` and the "Big stores" section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ._common import (
    ROLE_ARN,
    EmulatorProcess,
    Figure,
    isolate_aws_environment,
    section_lines,
    splice_section,
)

HERE = Path(__file__).parent
SECTION = "Big stores (time to the first Start)"
NOTE = (
    "refimport import as a subprocess (interpreter start-up included) into a store already "
    "holding N references; the emulator throttles every operation at 5 TPS like AWS. Before "
    "issue 25 (one whole listing, its every page within the 20 s set-up bound): 1,000 "
    "references 3.2 s (10 rows) / 2.5 s (1,000 rows); 10,000: exit 3 / 20.5 s; 100,000: exit 3 "
    "for both"
)
STORE_SIZES = (1_000, 10_000, 100_000)
MANIFEST_ROWS = (10, 1_000)


def _first_start_epoch(stats: dict[str, Any]) -> float | None:
    created = [job["created_epoch"] for job in stats["jobs"]]
    return min(created) if created else None


def _watch(stream: Any, started: threading.Event, tail: list[str]) -> None:
    """Read the command's log lines; set ``started`` at its first Start."""
    for line in stream:
        tail[:] = [*tail[-4:], line.rstrip()]
        if '"import_job.started"' in line:
            started.set()


def _one(emu: EmulatorProcess, tmp: Path, size: int, rows: int, uris: list[str]) -> dict[str, Any]:
    emu.reset()
    store = emu.create_stores(1)["us-east-1"]
    emu._call("POST", "/_emulator/references", {"store_id": store, "count": size})
    manifest = tmp / f"m-{size}-{rows}.csv"
    manifest.write_text(
        "name,source_file\n" + "".join(f"new-{i},{uris[i % len(uris)]}\n" for i in range(rows))
    )
    journal = tmp / f"j-{size}-{rows}.sqlite"
    began = time.time()
    command = [
        sys.executable, "-m", "async_refimport", "import", str(manifest),
        "--store-id", store, "--role-arn", ROLE_ARN, "--region", "us-east-1",
        "--endpoint-url", emu.omics_endpoint_url, "--journal", str(journal), "-q", "--json",
        "--log-format", "json", "--log-level", "info",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    started, tail = threading.Event(), list[str]()
    reader = threading.Thread(target=_watch, args=(proc.stderr, started, tail), daemon=True)
    reader.start()
    while not started.wait(0.1) and proc.poll() is None:
        pass
    stats = emu.stats()
    first = _first_start_epoch(stats)
    lists = stats["calls"].get("ListReferences", 0)
    proc.terminate()  # the time to the first Start is what is measured, not the import
    proc.wait(timeout=120)
    reader.join(timeout=10)
    return {
        "store_references": size,
        "rows": rows,
        "seconds_to_first_start": None if first is None else round(first - began, 2),
        "list_references_calls_before": lists,
        "exit_code_before_start": proc.returncode if first is None else None,
        "error": tail[-1] if first is None and tail else "",
    }


def bench(quick: bool) -> tuple[list[Figure], list[dict[str, Any]]]:
    sizes = STORE_SIZES[:2] if quick else STORE_SIZES
    figures: list[Figure] = []
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess(time_scale=0.01) as emu:
        uris = emu.upload_genomes(20, bases=1000)
        for size in sizes:
            for rows in MANIFEST_ROWS:
                run = _one(emu, Path(tmp), size, rows, uris)
                runs.append(run)
                seconds = run["seconds_to_first_start"]
                what = f"{size:,} references, {rows:,} rows"
                figures.append(
                    Figure(
                        SECTION,
                        f"{what}: time to the first Start",
                        "s",
                        [seconds] if seconds is not None else [],
                        note=NOTE,
                    )
                )
                calls = [float(run["list_references_calls_before"])] if seconds is not None else []
                figures.append(
                    Figure(
                        SECTION, f"{what}: ListReferences calls by then", "calls", calls, note=NOTE
                    )
                )
    return figures, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="stores of 1,000 and 10,000 only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        isolate_aws_environment(home)
        figures, runs = bench(args.quick)
    for run in runs:
        print(json.dumps(run))
    out = HERE / "results" / "listing.json"
    out.write_text(json.dumps(runs, indent=2) + "\n")
    splice_section(HERE / "RESULTS.md", SECTION, section_lines(SECTION, figures))


if __name__ == "__main__":
    main()
