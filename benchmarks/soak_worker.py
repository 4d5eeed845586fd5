"""Soak test of ``refimport worker`` (not run in CI): is memory flat over a long, busy run?

Starts the emulator (compressed clock, no throttling) in this process and a worker as a
subprocess, then feeds the worker tens of thousands of rows at a steady pace, half through spool
files and half through ``POST /v1/imports``, over several stores. The journal's retention is set
to a minute and compaction runs every few seconds, so the run exercises the weeks-long steady
state: rows arrive, import, settle, and are compacted away. The worker's RSS is sampled throughout.

    .venv/bin/python benchmarks/soak_worker.py --rows 40000 --duration 300

Writes ``benchmarks/results/soak.json`` (samples and a summary) and, when matplotlib is installed,
``benchmarks/results/soak.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import psutil
from prometheus_client.parser import text_string_to_metric_families

from async_refimport.emulator import EmulatorThread, Faults, make_fasta

ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1", "ap-south-1")
RESULTS = Path(__file__).parent / "results"


def http(url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read().decode()
    return json.loads(raw) if raw.startswith(("{", "[")) else raw


def settled(base: str) -> int:
    text = http(base + "/metrics")
    for family in text_string_to_metric_families(text):
        if family.name == "refimport_rows_settled":
            return int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=40_000)
    p.add_argument("--duration", type=float, default=300.0, help="seconds over which rows arrive")
    p.add_argument("--stores", type=int, default=4)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--sources", type=int, default=200, help="distinct FASTA objects, reused")
    p.add_argument("--time-scale", type=float, default=0.005)
    p.add_argument("--sample", type=float, default=1.0, help="seconds between RSS samples")
    p.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = p.parse_args()

    os.environ["AWS_REGION"] = "us-east-1"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    work = Path(tempfile.mkdtemp(prefix="refimport-soak-"))
    spool, journal = work / "spool", work / "journal.sqlite"
    (spool / "incoming").mkdir(parents=True)

    with EmulatorThread(time_scale=args.time_scale, faults=Faults.none()) as emu:
        # The worker must act as the same (emulated) account that created the stores.
        kw = emu.client_kwargs()
        os.environ["AWS_ACCESS_KEY_ID"] = kw["aws_access_key_id"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = kw["aws_secret_access_key"]
        stores: list[tuple[str, str]] = []
        for region in REGIONS[: args.stores]:
            kwargs = emu.client_kwargs()
            kwargs["region_name"] = region
            stores.append(
                (boto3.client("omics", **kwargs).create_reference_store(name="soak")["id"], region)
            )
        s3 = boto3.client("s3", **emu.client_kwargs("s3"))
        s3.create_bucket(Bucket="soak")
        sources = []
        for i in range(args.sources):
            key = f"g/{i:05d}.fa"
            s3.put_object(Bucket="soak", Key=key, Body=make_fasta(f"s{i}", 200, seed=i).encode())
            sources.append(f"s3://soak/{key}")

        cmd = [
            sys.executable, "-m", "async_refimport.worker.main",
            "--spool", str(spool), "--http-port", "0", "--journal", str(journal),
            "--endpoint-url", emu.omics_endpoint_url, "--role-arn", ROLE_ARN,
            "--api-rate", "50", "--busy-wait", "0.5", "--scan-interval", "0.5",
            "--retention", str(60 / 86_400), "--compact-interval", "10", "-q",
        ]  # fmt: skip
        log_path = work / "worker.log"
        with open(log_path, "w") as log_file:
            worker = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, text=True)
        assert worker.stdout is not None
        announced = json.loads(worker.stdout.readline())
        base = announced["http"]
        proc = psutil.Process(worker.pid)

        samples: list[dict[str, float]] = []
        t0 = time.monotonic()
        batches = (args.rows + args.batch - 1) // args.batch
        interval = args.duration / batches
        fed = 0
        next_feed = t0
        next_sample = t0
        batch_no = 0
        deadline = t0 + args.duration * 3 + 600
        while time.monotonic() < deadline:
            now = time.monotonic()
            if fed < args.rows and now >= next_feed:
                n = min(args.batch, args.rows - fed)
                store, region = stores[batch_no % len(stores)]
                rows = [
                    {
                        "store_id": store,
                        "region": region,
                        "name": f"soak-{fed + i:07d}",
                        "source_file": sources[(fed + i) % len(sources)],
                    }
                    for i in range(n)
                ]
                if batch_no % 2 == 0:
                    tmp = spool / "incoming" / f".b{batch_no:05d}.jsonl.tmp"
                    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
                    os.replace(tmp, spool / "incoming" / f"b{batch_no:05d}.jsonl")
                else:
                    http(base + "/v1/imports", {"requests": rows})
                fed += n
                batch_no += 1
                next_feed += interval
            if now >= next_sample:
                done = settled(base)
                mem = proc.memory_info()
                samples.append(
                    {
                        "t": round(now - t0, 2),
                        "rss_mb": round(mem.rss / 2**20, 2),
                        "fed": fed,
                        "settled": done,
                        "fds": proc.num_fds(),
                        "threads": proc.num_threads(),
                        "journal_mb": round(journal.stat().st_size / 2**20, 2),
                    }
                )
                next_sample += args.sample
                if fed >= args.rows and done >= args.rows:
                    break
                print(json.dumps(samples[-1]), flush=True)
            time.sleep(0.05)

        began = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
        stop_seconds = time.monotonic() - began
        stats = emu.stats()

    refs = sum(len(v) for v in stats["references"].values())
    filed = {d: len(list((spool / d).glob("*.jsonl"))) for d in ("done", "failed", "processing")}
    # Steady state: skip the first 10% (imports, caches and the first compaction warming up).
    steady = [s for s in samples if s["t"] >= samples[-1]["t"] * 0.1]
    half = len(steady) // 2
    first, second = steady[:half], steady[half:]

    def mean(xs: list[dict[str, float]]) -> float:
        return sum(x["rss_mb"] for x in xs) / max(1, len(xs))

    summary = {
        "rows": args.rows,
        "stores": args.stores,
        "settled": samples[-1]["settled"],
        "references_created": refs,
        "name_conflicts": stats["name_conflicts"],
        "rejected_concurrent_starts": stats["rejected_concurrent_starts"],
        "spool_files": filed,
        "wall_seconds": samples[-1]["t"],
        "rows_per_second": round(samples[-1]["settled"] / samples[-1]["t"], 1),
        "rss_mb_start": steady[0]["rss_mb"],
        "rss_mb_end": samples[-1]["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "rss_mb_mean_first_half": round(mean(first), 2),
        "rss_mb_mean_second_half": round(mean(second), 2),
        "journal_mb_end": samples[-1]["journal_mb"],
        "sigterm_exit_code": code,
        "sigterm_seconds": round(stop_seconds, 2),
        "time_scale": args.time_scale,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1) + "\n")
    print(json.dumps(summary, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ts = [s["t"] for s in samples]
    ax.plot(ts, [s["rss_mb"] for s in samples], label="worker RSS (MiB)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(ts, [s["settled"] for s in samples], color="tab:green", label="rows settled")
    ax2.set_ylabel("rows settled")
    ax.set_title(f"refimport worker soak: {args.rows} rows, {args.stores} stores")
    fig.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
