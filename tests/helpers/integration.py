"""Shared set-up for tests that drive the engine against the emulator over HTTP."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import boto3

from async_refimport import ImportRequest
from async_refimport.emulator import EmulatorThread, Faults, make_fasta
from tests.helpers.common import ROLE_ARN

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def create_store(emu: EmulatorThread, region: str, name: str = "refs") -> str:
    kwargs = emu.client_kwargs()
    # The importer signs with the environment's credentials: create the store in that account.
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    kwargs["region_name"] = region
    omics = boto3.client("omics", **kwargs)
    return str(omics.create_reference_store(name=name)["id"])


def genomes(
    s3_fasta: Callable[..., str], n: int, prefix: str, *, length: int = 300, bucket: str = "genomes"
) -> list[tuple[str, str]]:
    """Upload n small genomes; returns (name, s3 uri) pairs."""
    out = []
    for i in range(n):
        name = f"{prefix}-{i:04d}"
        out.append(
            (name, s3_fasta(f"{prefix}/{name}.fa", make_fasta(name, length, seed=i), bucket=bucket))
        )
    return out


def requests_for(
    emu: EmulatorThread, store_id: str, region: str, items: list[tuple[str, str]]
) -> list[ImportRequest]:
    return [
        ImportRequest(
            store_id,
            ROLE_ARN,
            uri,
            name,
            description=f"synthetic genome {name}",
            tags={"suite": "integration"},
            region=region,
            endpoint_url=emu.omics_endpoint_url,
        )
        for name, uri in items
    ]


def references_by_store(stats: dict[str, Any]) -> dict[str, list[str]]:
    return {store: [r["name"] for r in refs] for store, refs in stats["references"].items()}


def overlapping_jobs(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """Pairs of jobs of one store whose run times overlap (there must be none)."""
    by_store: dict[str, list[tuple[float, float, str]]] = {}
    for job in stats["jobs"]:
        start = job["created_epoch"]
        end = job["completed_epoch"] or float("inf")
        by_store.setdefault(job["store_id"], []).append((start, end, job["job_id"]))
    overlaps = []
    for jobs in by_store.values():
        jobs.sort()
        for (_s1, e1, a), (s2, _e2, b) in itertools.pairwise(jobs):
            if s2 < e1:
                overlaps.append((a, b))
    return overlaps


class FullQuota:
    """The account's one import slot held by a read-set import, so that every Start is refused
    with 402 while the store runs nothing, until released.

    ``with FullQuota(emulator, release_after=n, held_for=s):`` frees the slot by itself once the
    emulator has refused ``n`` Starts for it and ``s`` seconds have passed, however slow the
    machine: the run under test always meets the full quota (a timer set before the run starts
    could run out before its first Start). ``release_after=None``: only :meth:`release` frees it.
    """

    def __init__(
        self, emulator: EmulatorThread, *, release_after: int | None = 1, held_for: float = 0.0
    ) -> None:
        self.emulator = emulator
        self.release_after = release_after
        self.held_for = held_for
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> FullQuota:
        self.emulator.configure(
            time_scale=0.05,
            job_overhead=1.0,
            faults=Faults(tps=None, import_quota=1, other_imports=1),
        )
        self._began = time.monotonic()
        self._thread.start()
        return self

    def refused(self) -> int:
        """Starts refused so far for the full quota."""
        return int(self.emulator.stats()["rejected_quota_starts"])

    def release(self) -> None:
        """Free the slot: the next Start is accepted."""
        self.emulator.configure(faults=self.emulator.faults.replace(other_imports=0))

    def _watch(self) -> None:
        while self.release_after is not None and not self._stop.wait(0.1):
            held = time.monotonic() - self._began
            if held >= self.held_for and self.refused() >= self.release_after:
                self.release()
                return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(10)
