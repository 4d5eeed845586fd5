"""The emulated reference-store service: state, semantics and the import-job runner.

Transport-free: :class:`Service` methods take parsed request members and return response
members (or raise :class:`ApiError`); the HTTP layer lives in ``_server``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._log import get_logger
from ._environment import ACCESS_KEY_ID
from ._fasta import FastaError, FastaScanner
from ._faults import FAULT_KINDS
from ._model import OPERATIONS
from ._unknowns import Unknowns

log = get_logger(__name__)

#: Duration model defaults (before ``time_scale``): fixed overhead per job, bases per second.
JOB_OVERHEAD_S = 30.0
THROUGHPUT_BASES_PER_S = 20_000_000.0
#: S3 user metadata key (``x-amz-meta-emulated-bases``) overriding the base count for durations.
EMULATED_BASES_META = "emulated-bases"
#: Default time the service remembers a clientToken, in seconds (an assumption).
DEFAULT_TOKEN_TTL = 86_400.0
_ACTIVE_JOB = ("SUBMITTED", "IN_PROGRESS", "CANCELLING")
_STATUS_MAX = 127  # JobStatusMessage max length in the model


class ApiError(Exception):
    """An error response: ``code`` names the model's error shape."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who is calling: derived from the SigV4 credential scope."""

    account: str
    region: str


@dataclass
class Store:
    id: str
    arn: str
    account: str
    region: str
    name: str
    description: str | None
    sse_config: dict[str, Any]
    tags: dict[str, str]
    creation_time: datetime

    def detail(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "arn": self.arn,
            "name": self.name,
            "description": self.description,
            "sseConfig": self.sse_config,
            "creationTime": self.creation_time,
        }


@dataclass
class Source:
    source_file: str
    name: str
    description: str | None
    tags: dict[str, str]
    status: str = "NOT_STARTED"
    status_message: str | None = None
    reference_id: str | None = None
    #: The Region of the source's bucket, once the job has looked it up (None: not yet, or
    #: no such bucket); inspection only, the API does not show it.
    bucket_region: str | None = None

    def item(self) -> dict[str, Any]:
        return {
            "sourceFile": self.source_file,
            "status": self.status,
            "statusMessage": self.status_message,
            "name": self.name,
            "description": self.description,
            "tags": self.tags or None,
            "referenceId": self.reference_id,
        }


@dataclass
class Job:
    id: str
    store_id: str
    role_arn: str
    client_token: str | None
    sources: list[Source]
    creation_time: datetime
    status: str = "SUBMITTED"
    status_message: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    #: Set when the job is cancelled from outside; the runner stops at its next step.
    cancel: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "referenceStoreId": self.store_id,
            "roleArn": self.role_arn,
            "status": self.status,
            "creationTime": self.creation_time,
            "completionTime": self.completion_time,
        }

    def stats(self) -> dict[str, Any]:
        def epoch(t: datetime | None) -> float | None:
            return t.timestamp() if t else None

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "store_id": self.store_id,
            "job_id": self.id,
            "client_token": self.client_token,
            "sources": len(self.sources),
            "status": self.status,
            "status_message": self.status_message,
            "created": iso(self.creation_time),
            "started": iso(self.start_time),
            "completed": iso(self.completion_time),
            "created_epoch": epoch(self.creation_time),
            "started_epoch": epoch(self.start_time),
            "completed_epoch": epoch(self.completion_time),
            "source_statuses": [
                {
                    "name": s.name,
                    "status": s.status,
                    "message": s.status_message,
                    "reference_id": s.reference_id,
                    "source_file": s.source_file,
                    "bucket_region": s.bucket_region,
                }
                for s in self.sources
            ],
        }


@dataclass
class Reference:
    id: str
    arn: str
    store_id: str
    md5: str
    name: str
    description: str | None
    tags: dict[str, str]
    creation_time: datetime
    job_id: str | None
    source_file: str
    content_length: int
    status: str = "ACTIVE"
    #: The Region of the bucket it was imported from (None: put there by a test).
    source_region: str | None = None

    def item(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "arn": self.arn,
            "referenceStoreId": self.store_id,
            "md5": self.md5,
            "status": self.status,
            "name": self.name,
            "description": self.description,
            "creationTime": self.creation_time,
            "updateTime": self.creation_time,
        }


@dataclass
class _Token:
    fingerprint: str
    result_id: str
    stamp: float


@dataclass
class Counters:
    """What the inspection endpoint reports besides jobs and references."""

    calls: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rejected_concurrent_starts: int = 0
    name_conflicts: int = 0
    #: Answers shaped by the lag settings: 404s of GetReferenceImportJob, items left out of Lists.
    lagged: Counter[str] = field(default_factory=Counter)
    cancelled_from_outside: int = 0
    #: Starts refused because the account's concurrent import quota was full.
    rejected_quota_starts: int = 0


#: Reads an S3 object: ``(bucket, key, on_chunk) -> user metadata``; raises KeyError if missing.
S3Reader = Callable[[str, str, Callable[[bytes], None]], Awaitable[dict[str, str]]]
#: The Region of an S3 bucket, or None when there is no such bucket (or S3 cannot tell).
BucketRegion = Callable[[str], Awaitable[str | None]]


async def _no_region(bucket: str) -> str | None:
    return None


def _now() -> datetime:
    return datetime.now(UTC)


def _clip(message: str) -> str:
    return message if len(message) <= _STATUS_MAX else message[: _STATUS_MAX - 3] + "..."


class Service:
    """State and semantics of the emulated HealthOmics reference stores."""

    def __init__(
        self,
        *,
        s3_reader: S3Reader,
        time_scale: float = 1.0,
        store_quota: int = 1,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        job_overhead: float = JOB_OVERHEAD_S,
        throughput: float = THROUGHPUT_BASES_PER_S,
        seed: int = 0,
        unknowns: Unknowns | None = None,
        clock: Callable[[], float] = time.monotonic,
        bucket_region: BucketRegion = _no_region,
        same_region: bool = False,
    ) -> None:
        self.unknowns = unknowns if unknowns is not None else Unknowns()
        self._bucket_region = bucket_region
        #: HealthOmics imports only from S3 in the store's own Region: with this set, a source
        #: in a bucket of another Region fails (off by default: a test's one bucket then serves
        #: stores of every Region).
        self.same_region = same_region
        self._cancel_draws = random.Random(self.unknowns.seed)
        self.time_scale = time_scale
        self.store_quota = store_quota
        self.token_ttl = token_ttl
        self.job_overhead = job_overhead
        self.throughput = throughput
        self._seed = seed
        self._clock = clock
        self._read = s3_reader
        #: Told of every job status change (the emulator publishes it as an EventBridge event).
        self.on_status: Callable[[Job, Store], None] | None = None
        #: The account import quota and the slots other imports hold now: ``(quota, held)``
        #: (the emulator reads both from its :class:`Faults`); ``None``: no quota.
        self.import_slots: Callable[[], tuple[int | None, int]] = lambda: (None, 0)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Per running job, the event-loop time its modelled work so far is due to end.
        self._due: dict[str, float] = {}
        self._reset_state()

    def _reset_state(self) -> None:
        self.stores: dict[str, Store] = {}
        self.jobs: dict[str, Job] = {}
        self.references: dict[str, Reference] = {}
        # Indexes, so that listing a store and checking a name stay cheap at 100k references.
        self._store_refs: dict[str, dict[str, Reference]] = {}
        self._active_names: dict[tuple[str, str], Reference] = {}
        self.tokens: dict[tuple[str, str, str, str], _Token] = {}
        self.counters = Counters()
        self._ids = random.Random(self._seed)
        self._used_ids: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel every running job task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Cancel running jobs and drop every store, job, reference, token and counter."""
        await self.aclose()
        self._reset_state()

    def set_unknowns(self, unknowns: Unknowns) -> None:
        """Switch the answers to undocumented cases (reseeds the cancellation draws)."""
        self.unknowns = unknowns
        self._cancel_draws = random.Random(unknowns.seed)

    def cancel_job(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel a job from outside, as someone in the console would; False if it is not active."""
        job = self.jobs.get(job_id)
        if job is None or job.status not in _ACTIVE_JOB:
            return False
        job.status = "CANCELLING"
        job.status_message = _clip(reason or "Cancelled by a user")
        job.cancel.set()
        self._status_changed(job)
        self.counters.cancelled_from_outside += 1
        return True

    def add_references(
        self, store_id: str, names: Iterable[str], *, source_prefix: str = "s3://elsewhere/"
    ) -> int:
        """Put references in a store as if another client had imported them earlier (no job of
        this emulator made them: ``creationJobId`` is absent): a big store in an instant.

        Returns:
            How many were added (names already active in the store are skipped).
        """
        store = self.stores[store_id]
        refs = self._store_refs.setdefault(store_id, {})
        added = 0
        for name in names:
            if (store_id, name) in self._active_names:
                continue
            ref_id = self._new_id()
            ref = Reference(
                id=ref_id,
                arn=f"arn:aws:omics:{store.region}:{store.account}:referenceStore/{store.id}/reference/{ref_id}",
                store_id=store_id,
                md5=f"{hash(name) & (2**128 - 1):032x}",
                name=name,
                description=None,
                tags={},
                creation_time=_now(),
                job_id=None,
                source_file=f"{source_prefix}{name}.fa",
                content_length=1,
            )
            self.references[ref_id] = refs[ref_id] = self._active_names[(store_id, name)] = ref
            added += 1
        return added

    def forget_tokens(self) -> int:
        """Forget every remembered clientToken; returns how many were dropped."""
        n = len(self.tokens)
        self.tokens.clear()
        return n

    # -- helpers ---------------------------------------------------------------------------

    def _new_id(self) -> str:
        while True:
            candidate = str(self._ids.randrange(10**9, 10**10))
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate

    def _status_changed(self, job: Job) -> None:
        if self.on_status is not None:
            self.on_status(job, self.stores[job.store_id])

    def _lagging(self, created: datetime, lag: float) -> bool:
        """Whether an item created at ``created`` is still hidden by a lag of ``lag`` emulated s."""
        return lag > 0 and (_now() - created).total_seconds() < lag * self.time_scale

    def _store(self, caller: Caller, store_id: str) -> Store:
        store = self.stores.get(store_id)
        if store is None:
            raise ApiError("ResourceNotFoundException", f"Reference store {store_id} not found")
        if (store.account, store.region) != (caller.account, caller.region):
            # Invisible, as on AWS; but the usual cause here is a client signing with another
            # access key than the one that made the store (the key selects the account), so
            # the message says how to be the same caller.
            raise ApiError(
                "ResourceNotFoundException",
                f"Reference store {store_id} not found (the emulator has it in account "
                f"{store.account}, {store.region}; this call is account {caller.account}, "
                f"{caller.region}: the access key id selects the account, so sign with the "
                f"emulator's key, AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}: emu.configure_environment() "
                "or env=emu.environ() in Python, refimport emulator --env-file in a shell)",
            )
        return store

    def _idempotent(
        self, caller: Caller, operation: str, token: str | None, request: dict[str, Any]
    ) -> tuple[tuple[str, str, str, str] | None, str, str | None]:
        """Look up ``token``: returns (key, fingerprint, id of the earlier result or None)."""
        fingerprint = json.dumps(
            {k: v for k, v in request.items() if k != "clientToken"}, sort_keys=True, default=str
        )
        if token is None:
            return None, fingerprint, None
        key = (caller.account, caller.region, operation, token)
        entry = self.tokens.get(key)
        if entry is not None and self._clock() - entry.stamp > self.token_ttl:
            del self.tokens[key]
            entry = None
        if entry is None:
            return key, fingerprint, None
        if entry.fingerprint != fingerprint:
            raise ApiError(
                "ValidationException",
                f"clientToken {token!r} was already used with different request parameters",
            )
        return key, fingerprint, entry.result_id

    def _remember(
        self, key: tuple[str, str, str, str] | None, fingerprint: str, result_id: str
    ) -> None:
        if key is not None:
            self.tokens[key] = _Token(fingerprint, result_id, self._clock())

    # -- operations ------------------------------------------------------------------------

    def create_reference_store(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        key, fp, earlier = self._idempotent(
            caller, "CreateReferenceStore", req.get("clientToken"), req
        )
        if earlier is not None and earlier in self.stores:
            return self.stores[earlier].detail()
        owned = [
            s
            for s in self.stores.values()
            if (s.account, s.region) == (caller.account, caller.region)
        ]
        if len(owned) >= self.store_quota:
            raise ApiError(
                "ServiceQuotaExceededException",
                f"Reference store quota ({self.store_quota} per account per Region) exceeded",
            )
        store_id = self._new_id()
        store = Store(
            id=store_id,
            arn=f"arn:aws:omics:{caller.region}:{caller.account}:referenceStore/{store_id}",
            account=caller.account,
            region=caller.region,
            name=req["name"],
            description=req.get("description"),
            sse_config=req.get("sseConfig") or {"type": "KMS"},
            tags=req.get("tags") or {},
            creation_time=_now(),
        )
        self.stores[store_id] = store
        self._remember(key, fp, store_id)
        return store.detail()

    def get_reference_store(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        return self._store(caller, req["id"]).detail()

    def list_reference_stores(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        flt = req.get("filter") or {}
        items = [
            s
            for s in self.stores.values()
            if (s.account, s.region) == (caller.account, caller.region)
            and ("name" not in flt or s.name == flt["name"])
            and _in_window(s.creation_time, flt)
        ]
        page, token = _paginate(items, req)
        return {"referenceStores": [s.detail() for s in page], "nextToken": token}

    def start_reference_import_job(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        store = self._store(caller, req["referenceStoreId"])
        key, fp, earlier = self._idempotent(
            caller, "StartReferenceImportJob", req.get("clientToken"), req
        )
        if earlier is not None and earlier in self.jobs:
            return self.jobs[earlier].summary()
        busy = [j for j in self.jobs.values() if j.store_id == store.id and j.status in _ACTIVE_JOB]
        if busy:
            self.counters.rejected_concurrent_starts += 1
            u = self.unknowns
            raise ApiError(u.busy_code, u.busy_refusal(store=store.id, job=busy[0].id))
        quota, held = self.import_slots()
        if quota is not None:
            running = self.running_imports(store.account, store.region)
            if running + held >= quota:
                # The store is free, but the account is not: its other stores' jobs and its
                # read-set imports fill the account's quota, which they share.
                self.counters.rejected_quota_starts += 1
                raise ApiError(
                    "ServiceQuotaExceededException",
                    f"The quota of concurrent import jobs ({quota}) of account {store.account} "
                    f"in {store.region} is reached: {running} reference and {held} other "
                    "(read set) import jobs are running",
                )
        job = Job(
            id=self._new_id(),
            store_id=store.id,
            role_arn=req["roleArn"],
            client_token=req.get("clientToken"),
            sources=[
                Source(s["sourceFile"], s["name"], s.get("description"), s.get("tags") or {})
                for s in req["sources"]
            ],
            creation_time=_now(),
        )
        self.jobs[job.id] = job
        self._remember(key, fp, job.id)
        log.debug(
            "emulator.job.submitted", store_id=store.id, job_id=job.id, sources=len(job.sources)
        )
        self._status_changed(job)
        self._spawn(self._run(job))
        return job.summary()

    def running_imports(self, account: str, region: str) -> int:
        """Active reference import jobs of all the stores of ``account`` in ``region``."""
        return sum(
            1
            for j in self.jobs.values()
            if j.status in _ACTIVE_JOB
            and (s := self.stores.get(j.store_id)) is not None
            and (s.account, s.region) == (account, region)
        )

    def get_reference_import_job(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        self._store(caller, req["referenceStoreId"])
        job = self.jobs.get(req["id"])
        if job is None or job.store_id != req["referenceStoreId"]:
            raise ApiError("ResourceNotFoundException", f"Import job {req['id']} not found")
        if self._lagging(job.creation_time, self.unknowns.get_lag):
            # Read-after-write lag: the id was handed out, but reads do not know it yet.
            self.counters.lagged["GetReferenceImportJob"] += 1
            raise ApiError("ResourceNotFoundException", f"Import job {req['id']} not found")
        out = job.summary()
        out["statusMessage"] = job.status_message
        out["sources"] = [s.item() for s in job.sources]
        return out

    def list_reference_import_jobs(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        store = self._store(caller, req["referenceStoreId"])
        flt = req.get("filter") or {}
        items = [
            j
            for j in self.jobs.values()
            if j.store_id == store.id
            and ("status" not in flt or j.status == flt["status"])
            and _in_window(j.creation_time, flt)
        ]
        items = self._unlagged(items, "ListReferenceImportJobs")
        page, token = _paginate(items, req)
        return {"importJobs": [j.summary() for j in page], "nextToken": token}

    def _unlagged(self, items: list[Any], operation: str) -> list[Any]:
        """``items`` without those the list lag still hides."""
        lag = self.unknowns.list_lag
        if lag <= 0:
            return items
        shown = [i for i in items if not self._lagging(i.creation_time, lag)]
        self.counters.lagged[operation] += len(items) - len(shown)
        return shown

    def list_references(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        store = self._store(caller, req["referenceStoreId"])
        flt = req.get("filter") or {}
        if "name" in flt:
            named = self._active_names.get((store.id, flt["name"]))
            candidates: Iterable[Reference] = [named] if named is not None else []
        else:
            candidates = self._store_refs.get(store.id, {}).values()
        if not flt:
            items = list(candidates)  # a plain listing: a C-speed copy, not a Python-level scan
        else:
            items = [
                r
                for r in candidates
                if ("name" not in flt or r.name == flt["name"])
                and ("md5" not in flt or r.md5 == flt["md5"])
                and _in_window(r.creation_time, flt)
            ]
        items = self._unlagged(items, "ListReferences")
        page, token = _paginate(items, req)
        return {"references": [r.item() for r in page], "nextToken": token}

    def _reference(self, caller: Caller, req: dict[str, Any]) -> Reference:
        self._store(caller, req["referenceStoreId"])
        ref = self.references.get(req["id"])
        if ref is None or ref.store_id != req["referenceStoreId"]:
            raise ApiError("ResourceNotFoundException", f"Reference {req['id']} not found")
        return ref

    def get_reference_metadata(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        ref = self._reference(caller, req)
        out = ref.item()
        if ref.job_id is not None:  # made by a job of this emulator, not put there by a test
            out["creationJobId"] = ref.job_id
        out.update(
            creationType="IMPORT",
            files={
                "source": {
                    "totalParts": 1,
                    "partSize": max(1, ref.content_length),
                    "contentLength": max(1, ref.content_length),
                }
            },
        )
        return out

    def delete_reference(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        ref = self._reference(caller, req)
        # Deleting is immediate here: the reference vanishes and its name is free again.
        del self.references[ref.id]
        del self._store_refs[ref.store_id][ref.id]
        if self._active_names.get((ref.store_id, ref.name)) is ref:
            del self._active_names[(ref.store_id, ref.name)]
        return {}

    # -- the job runner ------------------------------------------------------------------

    def _until(self, job: Job, seconds: float) -> float:
        """The emulated seconds left of the next ``seconds`` of ``job``'s modelled work.

        Each step is due a fixed time after the previous step was *due*, not after it ended: a
        job lasts what the duration model says, whatever this host's reads of the (small) test
        objects and its event loop's late wake-ups took.
        """
        now = asyncio.get_running_loop().time()
        due = self._due.get(job.id, now) + seconds * self.time_scale
        self._due[job.id] = due
        return max(0.0, due - now) / self.time_scale if self.time_scale > 0 else 0.0

    async def _sleep(self, job: Job, seconds: float) -> bool:
        """Wait ``seconds`` of emulated time; True if the job was cancelled meanwhile."""
        delay = seconds * self.time_scale
        if job.cancel.is_set():
            return True
        try:
            await asyncio.wait_for(job.cancel.wait(), delay if delay > 0 else 0)
        except TimeoutError:
            return False
        return True

    def _active_name(self, store_id: str, name: str) -> Reference | None:
        ref = self._active_names.get((store_id, name))
        return ref if ref is not None and ref.status == "ACTIVE" else None

    def _conflict(self, job: Job, name: str, claimed: dict[str, str]) -> str | None:
        """The failure message if ``name`` is taken in the store (or earlier in this job)."""
        existing = self._active_name(job.store_id, name)
        taken = existing.id if existing is not None else claimed.get(name)
        if taken is None:
            return None
        self.counters.name_conflicts += 1
        return _clip(self.unknowns.name_taken(name=name, reference=taken))

    async def _run(self, job: Job) -> None:
        """Move ``job`` through its life; durations follow the documented model.

        Sources are worked through one after another. With ``progress="together"`` their
        outcomes (and references) are held back and shown all at once at the job's end.
        """
        if await self._sleep(job, self.job_overhead / 2):
            return self._cancelled(job)
        self._due[job.id] = asyncio.get_running_loop().time()
        job.status, job.start_time = "IN_PROGRESS", _now()
        self._status_changed(job)
        together = self.unknowns.progress == "together"
        p_cancel = self.unknowns.p_cancel
        cancel_at = (
            len(job.sources) // 2 if p_cancel and self._cancel_draws.random() < p_cancel else None
        )
        if together:
            for src in job.sources:
                src.status = "IN_PROGRESS"
        held: list[tuple[Source, str, str | None, Reference | None]] = []
        claimed: dict[str, str] = {}
        for i, src in enumerate(job.sources):
            if i == cancel_at:
                self.cancel_job(job.id, "Cancelled from outside (emulator p_cancel)")
            if job.cancel.is_set():
                return self._cancelled(job)
            src.status = "IN_PROGRESS"
            outcome = await self._import_source(job, src, claimed)
            if outcome is None:
                return self._cancelled(job)
            status, message, ref = outcome
            if ref is not None:
                claimed[src.name] = ref.id
            if together:
                held.append((src, status, message, ref))
            else:
                self._show(src, status, message, ref)
        if await self._sleep(job, self._until(job, self.job_overhead / 2)):
            return self._cancelled(job)
        self._due.pop(job.id, None)
        for src, status, message, ref in held:
            if ref is not None and (taken := self._conflict(job, src.name, {})) is not None:
                status, message, ref = "FAILED", taken, None
            self._show(src, status, message, ref)
        failed = sum(s.status == "FAILED" for s in job.sources)
        if failed == 0:
            job.status = "COMPLETED"
        elif failed == len(job.sources):
            job.status, job.status_message = "FAILED", "All sources failed"
        else:
            job.status = "COMPLETED_WITH_FAILURES"
            job.status_message = _clip(f"{failed} of {len(job.sources)} sources failed")
        job.completion_time = _now()
        self._status_changed(job)
        log.debug("emulator.job.ended", store_id=job.store_id, job_id=job.id, status=job.status)

    async def _import_source(
        self, job: Job, src: Source, claimed: dict[str, str]
    ) -> tuple[str, str | None, Reference | None] | None:
        """Read and check one source: (status, message, reference to add); None if cancelled."""
        taken = self._conflict(job, src.name, claimed)
        if taken is not None:
            return "FAILED", taken, None
        store = self.stores[job.store_id]
        bucket, key = _split_s3(src.source_file)
        try:
            src.bucket_region = await self._bucket_region(bucket)
        except asyncio.CancelledError:
            raise
        except Exception:  # S3 cannot tell: the read below says what is wrong
            src.bucket_region = None
        if self.same_region and src.bucket_region not in (None, store.region):
            return "FAILED", _clip(other_region_message(bucket, src.bucket_region, store)), None
        scanner = FastaScanner()
        try:
            meta = await self._read(bucket, key, scanner.feed)
            scanner.finish()
        except KeyError:
            return "FAILED", _clip(f"Source file not found: {src.source_file}"), None
        except FastaError as exc:
            return "FAILED", _clip(f"Invalid FASTA: {exc}"), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any S3 failure fails this source, not the emulator
            return "FAILED", _clip(f"Cannot read source: {exc}"), None
        bases = int(meta.get(EMULATED_BASES_META, scanner.bases))
        if await self._sleep(job, self._until(job, bases / self.throughput)):
            return None
        # Checked again after the wait: another source may have taken the name meanwhile.
        taken = self._conflict(job, src.name, claimed)
        if taken is not None:
            return "FAILED", taken, None
        ref_id = self._new_id()
        return (
            "FINISHED",
            None,
            Reference(
                id=ref_id,
                arn=f"arn:aws:omics:{store.region}:{store.account}:referenceStore/{store.id}/reference/{ref_id}",
                store_id=store.id,
                md5=scanner.md5,
                name=src.name,
                description=src.description,
                tags=src.tags,
                creation_time=_now(),
                job_id=job.id,
                source_file=src.source_file,
                content_length=scanner.bases,
                source_region=src.bucket_region,
            ),
        )

    def _show(self, src: Source, status: str, message: str | None, ref: Reference | None) -> None:
        """Make a source's outcome visible: its status, and its reference in the store."""
        if ref is not None:
            ref.creation_time = _now()
            self.references[ref.id] = ref
            self._store_refs.setdefault(ref.store_id, {})[ref.id] = ref
            self._active_names[(ref.store_id, ref.name)] = ref
            src.reference_id = ref.id
        src.status, src.status_message = status, message

    def _cancelled(self, job: Job) -> None:
        """End a job cancelled from outside: what finished stays; the rest never ran."""
        self._due.pop(job.id, None)
        job.status = "CANCELLED"
        job.completion_time = _now()
        self._status_changed(job)
        log.debug("emulator.job.cancelled", store_id=job.store_id, job_id=job.id)

    # -- inspection ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        c = self.counters
        refs: dict[str, list[dict[str, Any]]] = {s: [] for s in self.stores}
        for r in self.references.values():
            refs.setdefault(r.store_id, []).append(
                {
                    "id": r.id,
                    "name": r.name,
                    "md5": r.md5,
                    "status": r.status,
                    "job_id": r.job_id,
                    "source_file": r.source_file,
                    "source_region": r.source_region,
                    "created": r.creation_time.isoformat(),
                    "created_epoch": r.creation_time.timestamp(),
                }
            )
        return {
            "calls": {op: c.calls[op] for op in OPERATIONS},
            "throttled": {op: c.throttled[op] for op in OPERATIONS},
            "errors": dict(c.errors),
            "faults": {kind: c.faults[kind] for kind in FAULT_KINDS},
            "rejected_concurrent_starts": c.rejected_concurrent_starts,
            "name_conflicts": c.name_conflicts,
            "lagged": dict(c.lagged),
            "cancelled_from_outside": c.cancelled_from_outside,
            "rejected_quota_starts": c.rejected_quota_starts,
            "stores": [
                {"id": s.id, "arn": s.arn, "name": s.name, "account": s.account, "region": s.region}
                for s in self.stores.values()
            ],
            "jobs": [j.stats() for j in self.jobs.values()],
            "references": refs,
            "tokens_remembered": len(self.tokens),
        }


def other_region_message(bucket: str, region: str | None, store: Store) -> str:
    """The status message of a source whose bucket is in another Region than its store.

    AWS's wording is unknown (docs/reference/undocumented.md); nothing depends on it.
    """
    return (
        f"Source bucket {bucket} is in {region}, not {store.region}: import from the store's Region"
    )


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _in_window(t: datetime, flt: dict[str, Any]) -> bool:
    after, before = flt.get("createdAfter"), flt.get("createdBefore")
    return (after is None or t >= after) and (before is None or t <= before)


def _paginate(items: list[Any], req: dict[str, Any]) -> tuple[list[Any], str | None]:
    """Offset pagination; the token is the opaque offset of the next page."""
    limit = req.get("maxResults") or 100
    token = req.get("nextToken")
    start = 0
    if token is not None:
        try:
            start = int(token.removeprefix("offset-"))
        except ValueError:
            raise ApiError("ValidationException", f"Invalid nextToken {token!r}") from None
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, (f"offset-{start + limit}" if more else None)
