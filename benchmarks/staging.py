"""``python -m benchmarks.staging [--quick] [--big-mib 2048] [--mib 512] [--results]``: staging.

Sources staged into moto's S3 on loopback (a server process of its own,
``tests.helpers.moto_server``), each measurement in a fresh child process so that its peak RSS
is its own:

* **throughput**: the same file (``--mib``, default 512 MiB) staged by the
  :class:`~async_refimport.staging.Stager` from disk, from a local HTTP server
  (``tests.helpers.sources``) and S3 → S3 across Regions, against boto3's transfer manager
  doing the same (``upload_fileobj`` of the open file, of the HTTP response, and ``copy``), with
  its defaults (8 MiB parts, 10 threads);
* **memory**: the peak RSS of staging a multi-GB file (``--big-mib``, default 2 GiB) from disk and
  over HTTP, against the child's RSS before it started (interpreter and libraries).

moto does the S3 side in one Python process, so these are the client's costs on a fast network
with a slow server: a ratio between the two clients, not S3's own speed. A Stager's file source
without an md5 is read twice (its SHA-256 names the key first).

Writes ``benchmarks/results/staging.json`` and, with ``--results``, the "Staging" section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ._common import isolate_aws_environment

HERE = Path(__file__).parent
SECTION = "Staging"
MIB = 1024 * 1024
MODES = (
    "stager-file",
    "boto3-file",
    "stager-http",
    "boto3-http",
    "stager-copy",
    "boto3-copy",
    "boto3-file-sha256",
)


def make_file(path: Path, size: int) -> None:
    """``size`` bytes of random data (a 16 MiB random block, repeated), written once."""
    block = os.urandom(16 * MIB)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)


def _rss_mib() -> float:
    import psutil  # type: ignore[import-untyped]

    return float(psutil.Process().memory_info().rss) / MIB


async def _stager_run(spec: dict[str, Any]) -> None:
    from async_refimport.staging import Stager, StagingArea, StagingLimits

    area = StagingArea(spec["region"], spec["bucket"], f"bench/{uuid.uuid4().hex}/")
    limits = StagingLimits(**spec.get("limits", {}))
    async with Stager(Path(spec["tmp"]) / f"{uuid.uuid4().hex}.sqlite", limits=limits) as stager:
        staged = await stager.stage(spec["source"], area, endpoint_url=spec["endpoint"])
    assert staged.size == spec["size"] and not staged.reused, staged


def _boto3_run(spec: dict[str, Any]) -> None:
    import urllib.request

    import boto3

    client = boto3.client("s3", endpoint_url=spec["endpoint"], region_name=spec["region"])
    key = f"boto3/{uuid.uuid4().hex}/{Path(spec['source']).name}"
    source = spec["source"]
    if source.startswith("s3://"):
        bucket, _, src_key = source[len("s3://") :].partition("/")
        client.copy({"Bucket": bucket, "Key": src_key}, spec["bucket"], key)
    elif source.startswith("http"):
        with urllib.request.urlopen(source, timeout=120) as response:
            client.upload_fileobj(response, spec["bucket"], key)
    else:
        # "-sha256": with the SHA-256 additional checksums a Stager always adds.
        extra = {"ChecksumAlgorithm": "SHA256"} if spec["mode"].endswith("-sha256") else {}
        with open(source, "rb") as handle:
            client.upload_fileobj(handle, spec["bucket"], key, ExtraArgs=extra)
    assert client.head_object(Bucket=spec["bucket"], Key=key)["ContentLength"] == spec["size"]


def child(spec: dict[str, Any]) -> dict[str, float]:
    """One measurement (in this process): seconds, MiB/s, RSS before and at its peak."""
    # Both clients' libraries imported before the baseline: what is measured is the staging.
    import aioboto3  # noqa: F401
    import aiohttp  # noqa: F401
    import anyio
    import boto3  # noqa: F401

    import async_refimport.staging  # noqa: F401

    before = _rss_mib()
    began = time.perf_counter()
    if spec["mode"].startswith("stager"):
        anyio.run(_stager_run, spec)
    else:
        _boto3_run(spec)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "seconds": seconds,
        "mib_per_s": spec["size"] / MIB / seconds,
        "rss_before_mib": before,
        "rss_peak_mib": peak,
    }


def _measure(spec: dict[str, Any]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.staging", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['mode']} failed: {proc.stderr[-2000:]}")
    found: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def _sources(mode: str, path: Path, url: str, s3_uri: str) -> str:
    return {"file": str(path), "http": url, "copy": s3_uri}[mode.split("-")[1]]


def bench(mib: int, big_mib: int, repeats: int) -> dict[str, Any]:
    """Run every measurement; the results by mode and size."""
    import boto3

    from tests.helpers.moto_server import MotoProcess
    from tests.helpers.sources import SourceServer

    results: dict[str, Any] = {"mib": mib, "big_mib": big_mib, "throughput": {}, "memory": {}}
    with tempfile.TemporaryDirectory() as tmp, MotoProcess() as endpoint, SourceServer() as web:
        isolate_aws_environment(tmp)
        dest = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1")
        dest.create_bucket(
            Bucket="bench-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        src = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        src.create_bucket(Bucket="bench-us")
        plans = ((mib, "throughput", MODES, repeats), (big_mib, "memory", MODES[:4], 1))
        for size_mib, table, modes, times in plans:
            path = Path(tmp) / f"genome-{size_mib}.fa"
            make_file(path, size_mib * MIB)
            url = web.add(f"/{path.name}", path)
            s3_uri = f"s3://bench-us/{path.name}"
            if "stager-copy" in modes:
                src.upload_file(str(path), "bench-us", path.name)
            # Modes alternate within each repeat: a machine's load changing over time is shared.
            for _ in range(times):
                for mode in modes:
                    spec = {
                        "mode": mode,
                        "source": _sources(mode, path, url, s3_uri),
                        "size": size_mib * MIB,
                        "endpoint": endpoint,
                        "region": "eu-west-1",
                        "bucket": "bench-eu",
                        "tmp": tmp,
                    }
                    run = _measure(spec)
                    results[table].setdefault(mode, []).append(run)
                    print(f"{table} {size_mib} MiB {mode}: {run}", file=sys.stderr, flush=True)
            path.unlink()
    return results


def _median(runs: list[dict[str, float]], field: str) -> float:
    values = sorted(r[field] for r in runs)
    return values[len(values) // 2]


def _rate(runs: list[dict[str, float]]) -> str:
    rates = sorted(r["mib_per_s"] for r in runs)
    if len(rates) == 1:
        return f"{rates[0]:.0f}"
    return f"{_median(runs, 'mib_per_s'):.0f} ({rates[0]:.0f}-{rates[-1]:.0f})"


def section(results: dict[str, Any]) -> list[str]:
    """The RESULTS.md section of these results."""
    mib, big = results["mib"], results["big_mib"]
    runs = len(results["throughput"]["stager-file"])
    lines = [
        f"## {SECTION}",
        "",
        f"`python -m benchmarks.staging --mib {mib} --big-mib {big} --repeats {runs}` on this "
        "2-core host shared with other jobs: each figure a fresh child process, the modes "
        "alternated in each repeat; moto's S3 on loopback in a process of its own. The Stager "
        "with its defaults (8 MiB parts, 4 in flight per file, 16 in all; SHA-256 checksums on "
        "every part; a file without md5 read twice, its SHA-256 naming the key), boto3's "
        "transfer manager with its own (8 MiB parts, 10 threads, CRC32 checksums). moto does "
        "the S3 side in one Python process: the ratio between the clients is the figure, not "
        "the MiB/s. Throughput is the median (min-max) of the repeats.",
        "",
        f"| {mib} MiB, source | Stager MiB/s | boto3 MiB/s | Stager peak RSS MiB | "
        "boto3 peak RSS MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = [
        ("local file (`upload_fileobj`)", "stager-file", "boto3-file"),
        ("local file, boto3 with SHA-256 checksums", "stager-file", "boto3-file-sha256"),
        ("HTTP, local server (`upload_fileobj` of the response)", "stager-http", "boto3-http"),
        ("S3 → S3 across Regions (CopyObject; boto3 `copy`)", "stager-copy", "boto3-copy"),
    ]
    for name, mine, other in rows:
        ours, theirs = results["throughput"][mine], results["throughput"][other]
        lines.append(
            f"| {name} | {_rate(ours)} | {_rate(theirs)} | "
            f"{_median(ours, 'rss_peak_mib'):.0f} | {_median(theirs, 'rss_peak_mib'):.0f} |"
        )
    lines += [
        "",
        f"| {big} MiB, source | Stager: RSS before / peak MiB | Stager MiB/s | "
        "boto3: RSS before / peak MiB | boto3 MiB/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, name in (("file", "local file"), ("http", "HTTP, local server")):
        ours, theirs = results["memory"][f"stager-{kind}"], results["memory"][f"boto3-{kind}"]
        lines.append(
            f"| {name} | {_median(ours, 'rss_before_mib'):.0f} / "
            f"{_median(ours, 'rss_peak_mib'):.0f} | {_rate(ours)} | "
            f"{_median(theirs, 'rss_before_mib'):.0f} / "
            f"{_median(theirs, 'rss_peak_mib'):.0f} | {_rate(theirs)} |"
        )
    clients = _median(results["throughput"]["stager-copy"], "rss_peak_mib")
    peak = max(_median(results["memory"][f"stager-{k}"], "rss_peak_mib") for k in ("file", "http"))
    lines += [
        "",
        f"The Stager's peak RSS does not grow with the file ({mib} MiB and {big} MiB alike). Of "
        f"its {peak:.0f} MiB, about {clients:.0f} MiB is the interpreter, the libraries and the "
        "S3 clients (an S3 copy, which holds no bytes here, peaks at that); the rest is the part "
        "buffers, bounded by `StagingLimits`: at most 4 x 8 MiB in flight per file and "
        "16 x 8 MiB across all files (a part being read is counted; its copy into an immutable "
        "buffer briefly doubles one part). Before parts were read into buffers made on the "
        "event loop's thread, a file's parts came from worker threads' malloc arenas and the "
        "RSS grew with the file (2 GiB: 226 MiB). A server-side copy (CopyObject, one call up "
        "to 5 GiB) is several times faster than boto3's managed `copy`, which splits it into "
        "8 MiB UploadPartCopy calls.",
    ]
    return lines


def main() -> None:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="throughput file size (MiB)")
    parser.add_argument("--big-mib", type=int, default=2048, help="memory file size (MiB)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs of each mode")
    parser.add_argument("--quick", action="store_true", help="128 MiB and 512 MiB, once")
    parser.add_argument("--results", action="store_true", help="write the RESULTS.md section")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.quick:
        args.mib, args.big_mib, args.repeats = 128, 512, 1
    results = bench(args.mib, args.big_mib, args.repeats)
    out = HERE / "results" / "staging.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print("\n".join(section(results)))
    if args.results:
        from ._common import splice_section

        splice_section(HERE / "RESULTS.md", SECTION, section(results))


if __name__ == "__main__":
    main()
