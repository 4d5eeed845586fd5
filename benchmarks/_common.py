"""What every benchmark shares: figures, the emulator in its own process, stores and genomes,
settings compressed by the emulator's time scale, and timeline arithmetic."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from async_refimport import (
    ImporterSettings,
    ImportRequest,
    PacingPolicy,
    RetryPolicy,
)
from async_refimport.emulator import EMULATED_BASES_META, make_fasta

ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"
ACCESS_KEY_ID = "AKIABENCHMARK0000000"
SECRET_ACCESS_KEY = "benchmark-secret-not-real"
# One store per Region, as the real quota (one store per account and Region) forces.
REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "eu-north-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
)
BUCKET = "bench-genomes"
# A bacterial genome of 7.5 Mbases: a full job of 100 is 30 s + 100 x 0.375 s = 67.5 s (plus the
# emulator's real S3 reads), which at time_scale 0.1 ends about half-way between two polls of the
# stock waiter (every 30 s): the waiter's average penalty, neither its best nor its worst case.
GENOME_BASES = 7_500_000
API_OPERATIONS = (
    "StartReferenceImportJob",
    "GetReferenceImportJob",
    "ListReferenceImportJobs",
    "ListReferences",
)
FINAL = frozenset({"COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"})


@dataclass
class Figure:
    """One measured quantity, with every repeat's value."""

    section: str
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    goal: str | None = None
    holds: bool | None = None
    note: str = ""

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "unit": self.unit,
            "values": self.values,
            "goal": self.goal,
            "holds": self.holds,
            "note": self.note,
        }


def isolate_aws_environment(tmpdir: str) -> None:
    """Dummy credentials and no user config: a benchmark never reaches a real account.

    The engine signs with the environment's credentials; the emulator derives the account from them.
    """
    os.environ["AWS_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
    os.environ["AWS_CONFIG_FILE"] = os.path.join(tmpdir, "aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(tmpdir, "aws-credentials")
    os.environ["AWS_REGION"] = REGIONS[0]
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_OMICS"):
        os.environ.pop(name, None)


class EmulatorProcess:
    """The emulator in a child process, so that its CPU never competes with the measured client
    for one interpreter's GIL; driven through its ``/_emulator/`` endpoints."""

    def __init__(
        self, *, time_scale: float, tps: float | None = None, store_quota: int = 1
    ) -> None:
        self.time_scale = time_scale
        self._args = [
            sys.executable,
            "-m",
            "async_refimport.emulator",
            "--time-scale",
            repr(time_scale),
            "--store-quota",
            str(store_quota),
            "--tps",
            repr(tps or 0),
            "--log-level",
            "ERROR",
        ]
        self._proc: subprocess.Popen[str] | None = None
        self.endpoints: dict[str, str] = {}

    def __enter__(self) -> EmulatorProcess:
        self._proc = subprocess.Popen(self._args, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator did not start")
        self.endpoints = json.loads(line)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def omics_endpoint_url(self) -> str:
        return self.endpoints["omics_endpoint_url"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.omics_endpoint_url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_emulator/stats")
        return result

    def configure(self, **settings: Any) -> None:
        self._call("POST", "/_emulator/config", settings)

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def client(self, service: str, region: str, *, retries: dict[str, Any] | None = None) -> Any:
        """A plain boto3 client, as a user's script would make it (botocore's default retries)."""
        options: dict[str, Any] = {"inject_host_prefix": False}
        if service == "s3":
            options["s3"] = {"addressing_style": "path"}
        if retries is not None:
            options["retries"] = retries
        return boto3.client(
            service,  # type: ignore[call-overload]  # the service name is a runtime value
            endpoint_url=self.endpoints[f"{service}_endpoint_url"],
            region_name=region,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(**options),
        )

    def upload_genomes(self, count: int, *, bases: int = GENOME_BASES) -> list[str]:
        """Upload ``count`` small FASTA objects that each count as ``bases`` for job durations."""
        s3 = self.client("s3", REGIONS[0])
        try:
            s3.create_bucket(Bucket=BUCKET)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        uris = []
        for i in range(count):
            key = f"pool/g{i:04d}.fa"
            s3.put_object(
                Bucket=BUCKET,
                Key=key,
                Body=make_fasta(f"g{i:04d}", 200, seed=i),
                Metadata={EMULATED_BASES_META: str(bases)},
            )
            uris.append(f"s3://{BUCKET}/{key}")
        return uris

    def create_stores(self, count: int) -> dict[str, str]:
        """One store in each of ``count`` Regions; returns {Region: store id}."""
        stores = {}
        for region in REGIONS[:count]:
            omics = self.client("omics", region)
            stores[region] = str(omics.create_reference_store(name=f"bench-{region}")["id"])
        return stores


@dataclass(frozen=True)
class Workload:
    """Rows to import: per Region, (name, source URI) pairs."""

    stores: dict[str, str]
    rows: dict[str, list[tuple[str, str]]]

    @classmethod
    def build(
        cls, stores: dict[str, str], per_store: int, pool: Sequence[str], tag: str
    ) -> Workload:
        rows = {
            region: [
                (f"{tag}-{region}-{i:05d}", pool[(i + k) % len(pool)]) for i in range(per_store)
            ]
            for k, region in enumerate(stores)
        }
        return cls(stores, rows)

    @property
    def size(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def requests(self, endpoint_url: str) -> list[ImportRequest]:
        return [
            ImportRequest(
                self.stores[region],
                ROLE_ARN,
                uri,
                name,
                region=region,
                endpoint_url=endpoint_url,
            )
            for region, items in self.rows.items()
            for name, uri in items
        ]


def project_settings(time_scale: float, *, rates_scaled: bool) -> ImporterSettings:
    """The default settings with every duration compressed like the emulator's jobs.

    With ``rates_scaled`` the world is compressed uniformly: the emulator's TPS limit is divided by
    the time scale, so the pacing rate and retry backoff follow. Otherwise (the fault runs, where
    the real 5 TPS is the constraint under test) only the job-related waits are compressed.
    """
    default = ImporterSettings()
    s = time_scale
    r = s if rates_scaled else 1.0
    polling = default.polling
    retry = default.retry
    polling_changes: dict[str, Any] = {
        "first_poll": polling.first_poll * s,
        "min_interval": polling.min_interval * s,
        "max_interval": polling.max_interval * s,
    }
    if hasattr(polling, "miss_penalty"):
        # The cost of a missed poll is a wait for a paced Get slot: it follows the rates.
        polling_changes["miss_penalty"] = polling.miss_penalty * r
    return ImporterSettings(
        retry=RetryPolicy(
            attempts=retry.attempts,
            max_elapsed=retry.max_elapsed,
            initial=retry.initial * r,
            max_backoff=retry.max_backoff * r,
        ),
        pacing=PacingPolicy(rate=default.pacing.rate / r, min_rate=default.pacing.min_rate / r),
        polling=dataclasses.replace(polling, **polling_changes),
        busy_wait=default.busy_wait * s,
        lookup_margin=5.0,
    )


# -- timelines ------------------------------------------------------------------------------------


Interval = tuple[float, float]


def job_timelines(stats: dict[str, Any]) -> dict[str, list[Interval]]:
    """Per store, its jobs as (created, completed) epochs, in order."""
    out: dict[str, list[Interval]] = {}
    for job in stats["jobs"]:
        if job["completed_epoch"] is None:
            continue
        out.setdefault(job["store_id"], []).append((job["created_epoch"], job["completed_epoch"]))
    for jobs in out.values():
        jobs.sort()
    return out


def utilization(timelines: dict[str, list[Interval]]) -> tuple[float, float]:
    """(over all lanes, worst lane): busy time / span from first job start to last job end."""
    busy_all = span_all = 0.0
    worst = 1.0
    for jobs in timelines.values():
        busy = sum(end - start for start, end in jobs)
        span = jobs[-1][1] - jobs[0][0]
        if span > 0:
            worst = min(worst, busy / span)
        busy_all += busy
        span_all += span
    return (busy_all / span_all if span_all else float("nan")), worst


def lower_bound(timelines: dict[str, list[Interval]]) -> float:
    """The service's own limit: the sum of job durations on the busiest store."""
    return max(sum(end - start for start, end in jobs) for jobs in timelines.values())


def api_calls(stats: dict[str, Any]) -> int:
    return sum(int(stats["calls"].get(op, 0)) for op in API_OPERATIONS)


def overlapping(timelines: dict[str, list[Interval]]) -> int:
    """Jobs of one store whose run times overlap (the service forbids it: must be 0)."""
    return sum(1 for jobs in timelines.values() for a, b in itertools.pairwise(jobs) if b[0] < a[1])


def quiet_logs() -> None:
    """The engine logs every job (at INFO, through the standard library); a benchmark wants
    warnings only."""
    import logging

    logging.basicConfig(level=logging.WARNING)


def section_lines(section: str, figures: Sequence[Figure]) -> list[str]:
    """A RESULTS.md section: its title, the figures' notes, one table row per figure."""
    from .report import _fmt

    notes = sorted({f.note for f in figures if f.note})
    lines = [f"## {section}", "", *[f"*{n}*" for n in notes], ""]
    lines += [
        "| figure | unit | min | median | max | n | goal |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for f in figures:
        values = f.values or [float("nan")]
        verdict = {True: " ✅ holds", False: " ❌ missed", None: ""}[f.holds]
        goal = f.goal + verdict if f.goal else ""
        lines.append(
            f"| {f.name} | {f.unit} | {_fmt(min(values))} | {_fmt(f.median)} | "
            f"{_fmt(max(values))} | {len(f.values)} | {goal} |"
        )
    return lines


def splice_section(results_md: Path, section: str, lines: Sequence[str]) -> None:
    """Replace (or add, before the charts) one section of RESULTS.md."""
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    block = "\n".join(lines) + "\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text)
    elif "\n## Charts" in text:
        text = text.replace("\n## Charts", "\n" + block + "\n## Charts", 1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    results_md.write_text(text)
