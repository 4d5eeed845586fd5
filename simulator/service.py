"""A simulated HealthOmics, spoken to through the real :class:`AwsGateway`.

The seam: :class:`SimGateway` is the engine's own ``AwsGateway`` (its pacing, its tenacity retries,
its mapping of botocore errors onto the error tree) whose aioboto3 client is replaced by
:class:`SimClient`, which answers the four omics calls the way botocore would (response dicts,
``ClientError`` with a code, a message and an HTTP status, ``ConnectionClosedError`` and
``ReadTimeoutError`` for dropped connections). Behind it, :class:`SimService` keeps the stores,
the jobs, the references and the tokens, on the loop's virtual clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from ._engine_imports import AwsGateway, Pacer, RetryPolicy, StoreRef
from .scenario import QUOTA_REFUSAL, START_FAULTS, Scenario, allows

if TYPE_CHECKING:
    from .world import SimProcess, World

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the service's clock at virtual time 0
ENDPOINT = "https://omics.sim.invalid"
FINAL = frozenset({"COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"})
ACTIVE = frozenset({"SUBMITTED", "IN_PROGRESS", "CANCELLING"})


def dt(t: float) -> datetime:
    return datetime.fromtimestamp(EPOCH + t, UTC)


def client_error(operation: str, code: str, status: int, message: str) -> Exception:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, operation)


@dataclass
class SimRef:
    ref_id: str
    name: str
    created: float
    job_id: str | None
    ours: bool
    md5: str


@dataclass
class SimSource:
    source_file: str
    name: str
    status: str = "NOT_STARTED"
    ref_id: str | None = None
    message: str | None = None


@dataclass
class SimJob:
    job_id: str
    store_id: str
    token: str | None
    ours: bool
    sources: list[SimSource]
    created: float
    get_visible: float
    list_visible: float
    status: str = "SUBMITTED"
    message: str | None = None
    completed: float | None = None
    by: str = ""


@dataclass
class StoreState:
    store_id: str
    refs: dict[str, SimRef] = field(default_factory=dict)
    jobs: list[SimJob] = field(default_factory=list)

    def active(self) -> SimJob | None:
        for job in self.jobs:
            if job.status in ACTIVE:
                return job
        return None


class SimService:
    """The service's state and rules. Times are the loop's virtual seconds."""

    def __init__(self, scenario: Scenario, world: World) -> None:
        self.sc = scenario
        self.world = world
        self.rng = random.Random(scenario.seed * 7919 + 1)
        self.stores = {s.store_id: StoreState(s.store_id) for s in scenario.stores}
        self.jobs: dict[str, SimJob] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self._job_ids = 7000000001
        self._ref_ids = 5000000001
        self._buckets: dict[str, tuple[float, float]] = {}
        self.name_taken_at = -math.inf
        self._ambiguous_at: dict[str, float] = {}
        # (time, process, operation, store) of every call that reached the service.
        self.calls: list[tuple[float, str, str, str]] = []

    @property
    def now(self) -> float:
        return self.world.loop.time()

    @property
    def calm(self) -> bool:
        return self.now >= self.sc.calm_at

    # -- the world's hand ----------------------------------------------------------------------

    def add_ref(self, store: StoreState, name: str, job: SimJob | None, ours: bool) -> SimRef:
        ref = SimRef(f"{self._ref_ids}", name, self.now, job.job_id if job else None, ours, "")
        self._ref_ids += 1
        ref.md5 = hashlib.md5(f"{self.sc.seed}/{ref.ref_id}".encode()).hexdigest()
        store.refs[name] = ref
        return ref

    def take_name(self, store_id: str, name: str) -> None:
        store = self.stores[store_id]
        if name not in store.refs:
            ref = self.add_ref(store, name, None, ours=False)
            self.world.log("service", f"another client imported {name} ({ref.ref_id})")

    def foreign_job(self, store_id: str, duration: float) -> None:
        store = self.stores[store_id]
        if store.active() is not None:
            self.world.loop.call_at(self.now + 30, self.foreign_job, store_id, duration)
            return
        n = self._job_ids
        job = self.new_job(store, None, [("s3://other/x.fa", f"other{n}")], ours=False, by="other")
        self.world.log("service", f"another client's job {job.job_id} runs ({duration:.0f} s)")
        job.sources[0].status = "IN_PROGRESS"
        job.status = "IN_PROGRESS"
        self.world.loop.call_at(self.now + duration, self._end_foreign, job)

    def _end_foreign(self, job: SimJob) -> None:
        job.status, job.completed = "COMPLETED", self.now
        job.sources[0].status = "FINISHED"
        self.world.log("service", f"another client's job {job.job_id} ended")

    def new_job(
        self,
        store: StoreState,
        token: str | None,
        sources: Sequence[tuple[str, str]],
        *,
        ours: bool,
        by: str,
    ) -> SimJob:
        sc, now = self.sc, self.now
        job = SimJob(
            f"{self._job_ids}",
            store.store_id,
            token,
            ours,
            [SimSource(f, n) for f, n in sources],
            now,
            now + self.rng.uniform(0, sc.get_lag),
            now + self.rng.uniform(0, sc.list_lag),
            by=by,
        )
        self._job_ids += 1
        self.jobs[job.job_id] = job
        store.jobs.append(job)
        if token is not None:
            self.tokens[token] = (job.job_id, now)
        if not ours:
            return job
        loop = self.world.loop
        loop.call_at(now + sc.startup, self._begin, job)
        at = now + sc.startup
        finish = []
        for s in job.sources:
            at += sc.durations.get(s.name, 60.0)
            finish.append(at)
        if sc.progress == "sequential":
            for i, t in enumerate(finish[:-1]):
                loop.call_at(t, self._finish_source, job, i)
        # The last source (all of them, progress "together") is finished by _end itself: timers
        # due at one instant run in no guaranteed order.
        loop.call_at(at, self._end, job)
        if self.rng.random() < sc.p_cancel and now < sc.calm_at:
            loop.call_at(self.rng.uniform(now, at), self._cancel, job)
        return job

    def _begin(self, job: SimJob) -> None:
        if job.status == "SUBMITTED":
            job.status = "IN_PROGRESS"
            for s in job.sources:
                s.status = "IN_PROGRESS"

    def _finish_source(self, job: SimJob, i: int) -> None:
        if job.status not in ACTIVE:
            return
        source, store = job.sources[i], self.stores[job.store_id]
        plan = self.world.plans[job.store_id]
        if source.name in plan.bad:
            source.status, source.message = "FAILED", "Source file is not a valid FASTA file"
        elif source.name in store.refs:
            self.name_taken_at = self.now
            source.status = "FAILED"
            source.message = f"A reference named {source.name} already exists in this store"
        else:
            ref = self.add_ref(store, source.name, job, ours=True)
            source.status, source.ref_id = "FINISHED", ref.ref_id
        if self.sc.progress == "together":
            return
        self.world.log("service", f"job {job.job_id}: {source.name} {source.status}")

    def _end(self, job: SimJob) -> None:
        if job.status not in ACTIVE:
            return
        for i, source in enumerate(job.sources):
            if source.status in ("NOT_STARTED", "IN_PROGRESS"):
                self._finish_source(job, i)
        failed = any(s.status == "FAILED" for s in job.sources)
        job.status = "COMPLETED_WITH_FAILURES" if failed else "COMPLETED"
        job.completed = self.now
        done = ", ".join(f"{s.name} {s.status}" for s in job.sources)
        self.world.log("service", f"job {job.job_id} {job.status}: {done}")

    def _cancel(self, job: SimJob) -> None:
        if job.status not in ACTIVE:
            return
        job.status, job.message, job.completed = "CANCELLED", "Cancelled by a user", self.now
        for s in job.sources:
            if s.status not in ("FINISHED", "FAILED"):
                s.status = "CANCELLED"
        self.world.log("service", f"job {job.job_id} CANCELLED from outside")
        self.world.covered("cancelled_outside")

    # -- the calls -------------------------------------------------------------------------------

    def _throttled(self, op: str) -> bool:
        rate = self.sc.tps
        tokens, at = self._buckets.get(op, (rate, self.now))
        tokens = min(rate, tokens + (self.now - at) * rate)
        if tokens < 1:
            self._buckets[op] = (tokens, self.now)
            return True
        self._buckets[op] = (tokens - 1, self.now)
        return False

    def _common(self, proc: SimProcess, op: str, store_id: str) -> None:
        """What every call meets first: throttling, lapsed credentials, the store's existence."""
        self.calls.append((self.now, proc.name, op, store_id))
        if self._throttled(op):
            raise client_error(op, "ThrottlingException", 429, "Rate exceeded")
        if any(self.now in w for w in self.sc.cred_windows) and self._may_lapse():
            self.world.covered("credentials_lapsed")
            raise client_error(
                op,
                "ExpiredTokenException",
                403,
                "The security token included in the request is expired",
            )
        if store_id not in self.stores:
            raise client_error(op, "ResourceNotFoundException", 404, "no such reference store")

    def _may_lapse(self) -> bool:
        """Gated (E5): no lapse while a taken name's lookup runs (a source failed for its name
        in the last consistency_grace + 30 s)."""
        if allows("lapse_during_name_check", self.sc.profile):
            return True
        return self.now - self.name_taken_at > 90.0

    def _read_fault(self, op: str) -> None:
        if not self.calm and self.rng.random() < self.sc.p_read_fault:
            if self.rng.random() < 0.5:
                raise client_error(op, "InternalServerException", 500, "Internal failure")
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=ENDPOINT)

    def _start_fault(self, op: str, p: float, store_id: str) -> Exception | None:
        if self.calm or self.rng.random() >= p:
            return None
        if (
            not allows("ambiguous_start_storm", self.sc.profile)
            and self.now - self._ambiguous_at.get(store_id, -math.inf) < 180.0
        ):
            # Gated (E9): one ambiguous Start per store every 3 minutes at most.
            return None
        self._ambiguous_at[store_id] = self.now
        kind = self.rng.choice(START_FAULTS)
        if kind == "408":
            return client_error(op, "RequestTimeoutException", 408, "Request timed out")
        if kind == "500":
            return client_error(op, "InternalServerException", 500, "Internal failure")
        return botocore.exceptions.ReadTimeoutError(endpoint_url=ENDPOINT)

    def start(self, proc: SimProcess, kw: dict[str, Any]) -> dict[str, Any]:
        op = "StartReferenceImportJob"
        store_id, token = kw["referenceStoreId"], kw["clientToken"]
        sources = [(s["sourceFile"], s["name"]) for s in kw["sources"]]
        self._common(proc, op, store_id)
        store = self.stores[store_id]
        if fault := self._start_fault(op, self.sc.p_start_before, store_id):
            self.world.log(
                "service", f"Start from {proc.name} lost before the service ({fault!s:.40})"
            )
            raise fault
        remembered = self.tokens.get(token)
        if remembered is not None:
            job_id, at = remembered
            if self.now - at <= self.sc.token_ttl:
                self.world.log("service", f"token {token[:8]} remembered: job {job_id}")
                return {"id": job_id, "status": self.jobs[job_id].status}
            self.world.token_forgotten(token, self.jobs[job_id])
        active = store.active()
        if active is not None:
            self.world.start_while_active(proc, store, active, sources, token)
            self.world.busy_refused.add(proc.name)
            code, status, message = self.sc.busy_refusal
            raise client_error(op, code, status, message)
        if any(self.now in w for w in self.sc.quota_windows):
            self.world.covered("quota_refused")
            self.world.quota_refused.add(store_id)
            code, status, message = QUOTA_REFUSAL
            raise client_error(op, code, status, message)
        job = self.new_job(store, token, sources, ours=True, by=proc.name)
        self.world.job_created(proc, job)
        if not self.calm and self.rng.random() < self.sc.p_lose:
            # The service loses the job for good: it never runs, no read shows it.
            job.status = "LOST"
            store.jobs.remove(job)
            del self.jobs[job.job_id]
            del self.tokens[token]
            self.world.log("service", f"job {job.job_id} lost by the service")
        if fault := self._start_fault(op, self.sc.p_start_after, store_id):
            self.world.log("service", f"job {job.job_id} created, answer lost ({fault!s:.40})")
            self.world.covered("ambiguous_after_create")
            self.world.unanswered_jobs.add(job.job_id)
            raise fault
        return {"id": job.job_id, "status": job.status}

    def get(self, proc: SimProcess, kw: dict[str, Any]) -> dict[str, Any]:
        op = "GetReferenceImportJob"
        store_id = kw["referenceStoreId"]
        self._common(proc, op, store_id)
        self._read_fault(op)
        job = self.jobs.get(kw["id"])
        if job is None or job.store_id != store_id or self.now < job.get_visible:
            if job is not None:
                self.world.covered("get_lag_404")
            raise client_error(op, "ResourceNotFoundException", 404, "Import job not found")
        together = self.sc.progress == "together" and job.status in ACTIVE
        sources = []
        for s in job.sources:
            item: dict[str, Any] = {
                "sourceFile": s.source_file,
                "name": s.name,
                "status": "IN_PROGRESS" if together else s.status,
            }
            if s.ref_id and not together:
                item["referenceId"] = s.ref_id
            if s.message and not together:
                item["statusMessage"] = s.message
            sources.append(item)
        out: dict[str, Any] = {
            "id": job.job_id,
            "referenceStoreId": store_id,
            "status": job.status,
            "creationTime": dt(job.created),
            "sources": sources,
        }
        if job.message:
            out["statusMessage"] = job.message
        if job.completed is not None:
            out["completionTime"] = dt(job.completed)
        return out

    @staticmethod
    def _page(items: list[dict[str, Any]], kw: dict[str, Any], key: str) -> dict[str, Any]:
        start = int(kw.get("nextToken") or 0)
        size = int(kw.get("maxResults") or 100)
        out: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            out["nextToken"] = str(start + size)
        return out

    def list_jobs(self, proc: SimProcess, kw: dict[str, Any]) -> dict[str, Any]:
        out = self._list_jobs(proc, kw)
        flt = kw.get("filter", {})
        if out["importJobs"] and "status" in flt and proc.name in self.world.busy_refused:
            self.world.covered("busy_confirmed")  # a busy refusal, confirmed by the List
        return out

    def _list_jobs(self, proc: SimProcess, kw: dict[str, Any]) -> dict[str, Any]:
        op = "ListReferenceImportJobs"
        store_id = kw["referenceStoreId"]
        self._common(proc, op, store_id)
        self._read_fault(op)
        flt = kw.get("filter", {})
        after, status = flt.get("createdAfter"), flt.get("status")
        items = []
        for job in self.stores[store_id].jobs:
            if self.now < job.list_visible:
                continue
            if after is not None and dt(job.created) < after:
                continue
            if status is not None and job.status != status:
                continue
            item = {"id": job.job_id, "status": job.status, "creationTime": dt(job.created)}
            if job.completed is not None:
                item["completionTime"] = dt(job.completed)
            items.append(item)
        return self._page(items, kw, "importJobs")

    def list_refs(self, proc: SimProcess, kw: dict[str, Any]) -> dict[str, Any]:
        op = "ListReferences"
        store_id = kw["referenceStoreId"]
        self._common(proc, op, store_id)
        self._read_fault(op)
        flt = kw.get("filter", {})
        name, after = flt.get("name"), flt.get("createdAfter")
        items = []
        for ref in self.stores[store_id].refs.values():
            if self.now < ref.created + self.sc.ref_lag:
                continue
            if name is not None and ref.name != name:
                continue
            if after is not None and dt(ref.created) < after:
                continue
            items.append(
                {
                    "id": ref.ref_id,
                    "name": ref.name,
                    "status": "ACTIVE",
                    "md5": ref.md5,
                    "creationTime": dt(ref.created),
                }
            )
        return self._page(items, kw, "references")

    def ref_metadata(self, proc: SimProcess, kw: dict[str, Any]) -> dict[str, Any]:
        """GetReferenceMetadata: which job made a reference (``creationJobId``), if a job did."""
        op = "GetReferenceMetadata"
        store_id = kw["referenceStoreId"]
        self._common(proc, op, store_id)
        for ref in self.stores[store_id].refs.values():
            if ref.ref_id == kw["id"]:
                out: dict[str, Any] = {"id": ref.ref_id, "name": ref.name, "md5": ref.md5}
                if ref.job_id is not None:
                    out["creationJobId"] = ref.job_id
                return out
        raise client_error(op, "ResourceNotFoundException", 404, "no such reference")


class SimClient:
    """The aioboto3 omics client of one simulated process: each call travels to the service
    (a latency), acts there, and travels back (another); a kill or a pause can fall in either
    half, so a call in flight may or may not have reached the service."""

    def __init__(self, service: SimService, proc: SimProcess) -> None:
        self._service = service
        self._proc = proc
        self._rng = random.Random(service.sc.seed * 31 + proc.number * 1000 + proc.generation)

    async def _call(self, op: str, kw: dict[str, Any]) -> dict[str, Any]:
        proc, service = self._proc, self._service
        lo, hi = service.sc.latency
        await asyncio.sleep(self._rng.uniform(lo, hi))
        await proc.unpaused()
        if proc.dead:
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=ENDPOINT)
        handler = {
            "StartReferenceImportJob": service.start,
            "GetReferenceImportJob": service.get,
            "ListReferenceImportJobs": service.list_jobs,
            "ListReferences": service.list_refs,
            "GetReferenceMetadata": service.ref_metadata,
        }[op]
        crash = proc.world.before_start(proc) if op == "StartReferenceImportJob" else None
        if crash == "before":
            proc.world.crash(proc.number, proc.world.restart_delay[proc.number], "Start in flight")
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=ENDPOINT)
        error: Exception | None = None
        try:
            response = handler(proc, kw)
        except Exception as exc:  # the service's answer is an error: it travels back too
            error, response = exc, {}
        proc.world.answered(proc, op, kw, response, error)
        if crash == "after":
            if error is None and "id" in response:
                proc.world.unanswered_jobs.add(str(response["id"]))
            proc.world.crash(proc.number, proc.world.restart_delay[proc.number], "answer in flight")
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=ENDPOINT)
        await asyncio.sleep(self._rng.uniform(lo, hi))
        await proc.unpaused()
        if proc.dead:
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=ENDPOINT)
        if error is not None:
            raise error
        return response

    async def start_reference_import_job(self, **kw: Any) -> dict[str, Any]:
        return await self._call("StartReferenceImportJob", kw)

    async def get_reference_import_job(self, **kw: Any) -> dict[str, Any]:
        return await self._call("GetReferenceImportJob", kw)

    async def list_reference_import_jobs(self, **kw: Any) -> dict[str, Any]:
        return await self._call("ListReferenceImportJobs", kw)

    async def list_references(self, **kw: Any) -> dict[str, Any]:
        return await self._call("ListReferences", kw)

    async def get_reference_metadata(self, **kw: Any) -> dict[str, Any]:
        return await self._call("GetReferenceMetadata", kw)


class SimGateway(AwsGateway):
    """The engine's ``AwsGateway`` (pacing, retries, error mapping) over a :class:`SimClient`.

    Overrides the private ``_client`` (see ENGINE_CHANGES.md: a public client factory is asked).
    """

    def __init__(self, client: SimClient, *, pacer: Pacer, retry: RetryPolicy, sleep: Any) -> None:
        super().__init__(pacer=pacer, retry=retry, sleep=sleep)
        self._sim_client = client

    async def _client(self, store: StoreRef) -> Any:
        return self._sim_client
