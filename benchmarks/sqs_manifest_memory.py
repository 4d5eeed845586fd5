"""``python -m benchmarks.sqs_manifest_memory [--rows 500000] [--messages 1] [--tree DIR]``: the
memory a ``refimport worker`` process takes to journal SQS messages naming a large manifest.

One fresh worker process (its SQS intake on moto's server, the emulator as its HealthOmics) is
started; its resident set is read once it takes work, then ``--messages`` messages are sent, each
``{"manifest": "s3://…/refsN.csv"}`` of ``--rows`` rows (names of their own), and the worker's
peak resident set (the kernel's ``VmHWM``, so nothing samples too late) is read once every
message is journaled (its ``sqs.message_journaled`` line). ``--tree`` runs the worker from another
checkout (``git archive COMMIT | tar -x -C DIR``), to compare with the code before a change. The
worker's lanes are slowed to one call a second: what is measured is reading and journaling.

Prints one JSON line: rows, messages, baseline and peak MiB, seconds to journal.
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

import boto3

from benchmarks._common import EmulatorProcess, isolate_aws_environment
from tests.helpers.fleet_harness import read_announcement
from tests.helpers.moto_server import MotoProcess

ROOT = Path(__file__).resolve().parents[1]
ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"
BUCKET = "bench-manifests"


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def put_manifest(s3: Any, key: str, rows: int, tag: int) -> str:
    """A CSV manifest of ``rows`` rows (names of its own) uploaded to S3."""
    text = "name,source_file,description\n" + "".join(
        f"m{tag}-genome-{i:07d},s3://bench-genomes/pool/g{i % 1000:04d}.fa,genome {i}\n"
        for i in range(rows)
    )
    s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    return f"s3://{BUCKET}/{key}"


def journaled(log: Path) -> int:
    """How many ``sqs.message_journaled`` lines the worker's log has."""
    count = 0
    for line in log.read_text().splitlines():
        try:
            count += json.loads(line).get("event") == "sqs.message_journaled"
        except ValueError:
            continue
    return count


def run(rows: int, messages: int, tree: Path, tmp: Path) -> dict[str, Any]:
    """Measure one worker; see the module's docstring."""
    with MotoProcess() as moto, EmulatorProcess(time_scale=0.01) as emulator:
        os.environ["AWS_ENDPOINT_URL_SQS"] = os.environ["AWS_ENDPOINT_URL_S3"] = moto
        store = emulator.create_stores(1)["us-east-1"]
        sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1")
        s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        queue = sqs.create_queue(QueueName="bench-requests")["QueueUrl"]
        uris = [put_manifest(s3, f"refs{n}.csv", rows, n) for n in range(messages)]
        log = tmp / "worker.log"
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONUNBUFFERED="1")
        command = [
            *(sys.executable, "-m", "async_refimport", "worker"),
            *("--endpoint-url", emulator.omics_endpoint_url, "--region", "us-east-1"),
            *("--role-arn", ROLE_ARN, "--store-id", store, "--journal", str(tmp / "j.sqlite")),
            *("--sqs-queue-url", queue, "--sqs-wait", "1", "--api-rate", "1"),
        ]
        with open(log, "w") as err:
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=tmp
            )
        try:
            read_announcement(proc, 120, log)
            baseline = status_kib(proc.pid, "VmRSS")
            began = time.monotonic()
            for uri in uris:
                sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"manifest": uri}))
            while journaled(log) < messages:
                if proc.poll() is not None:
                    raise RuntimeError(f"the worker ended:\n{log.read_text()[-3000:]}")
                if time.monotonic() - began > 1800:
                    raise RuntimeError("not journaled in 30 minutes")
                time.sleep(0.5)
            seconds = time.monotonic() - began
            peak = status_kib(proc.pid, "VmHWM")
        finally:
            proc.kill()
            proc.wait(30)
            if proc.stdout is not None:
                proc.stdout.close()
    return {
        "rows": rows,
        "messages": messages,
        "tree": str(tree),
        "baseline_mib": round(baseline / 1024, 1),
        "peak_mib": round(peak / 1024, 1),
        "seconds": round(seconds, 1),
    }


def main() -> int:
    """Parse the flags, measure, print one JSON line.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--messages", type=int, default=1)
    parser.add_argument("--tree", type=Path, default=ROOT, help="run the worker from this checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        isolate_aws_environment(tmp)
        print(json.dumps(run(args.rows, args.messages, args.tree.resolve(), Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
