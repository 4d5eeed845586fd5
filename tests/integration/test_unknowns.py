"""The engine under every answer to what AWS does not document.

Each alternative is one emulator setting (:class:`~async_refimport.emulator.Unknowns`): how a busy
store refuses a Start, read-after-write lag of GetReferenceImportJob, lag of the List calls,
how per-source statuses evolve, and jobs cancelled from outside. The engine's key scenarios (a bulk
import, recovery after a crash, a store shared with another client) run under each, so that no
guess about the service is load-bearing. Then one test per outcome of the README's outcome table
that only these behaviours reach.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import boto3
import botocore.exceptions
import pytest

from async_refimport import (
    Importer,
    ImporterSettings,
    ImportRequest,
    JobStarted,
    PollingPolicy,
    RetryPolicy,
    RowResult,
    RowState,
    SQLiteJournal,
    StoreRef,
)
from async_refimport._pacing import Pacer
from async_refimport.emulator import EmulatorThread, Unknowns, make_fasta
from async_refimport.gateway.aws import AwsGateway, SourceSpec
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import create_store, genomes, overlapping_jobs, requests_for
from tests.helpers.logcapture import capture_logs

FAST = ImporterSettings(
    retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.3, max_elapsed=60),
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.3),
    busy_wait=0.05,
    lookup_margin=5.0,
    lease_ttl=2.0,
    # Real seconds the engine lets reads catch up; the lags below are 0.1 to 1.5 s of real time.
    consistency_grace=5.0,
)
PACK = 10
# Jobs of one emulated second (50 ms of real time): a lag of 2 emulated seconds outlasts a job.
TIME_SCALE = 0.05
JOB_OVERHEAD = 1.0

ALTERNATIVES = {
    "as-assumed": Unknowns(),
    "busy-409": Unknowns(busy_code="ConflictException"),
    "busy-400": Unknowns(busy_code="ValidationException"),
    # 8 emulated seconds (0.4 s of real time): long enough that a poll meets the lag on a loaded
    # machine too, where a first Get may come a few hundred ms after its Start.
    "get-lag-8s": Unknowns(get_lag=8.0),
    "list-lag-30s": Unknowns(list_lag=30.0),
    "progress-together": Unknowns(progress="together"),
    "cancelled-outside": Unknowns(p_cancel=0.5, seed=3),
}
CANCELLED_OUTSIDE = "was cancelled outside async_refimport"


@pytest.fixture(params=list(ALTERNATIVES))
def unknowns(request: pytest.FixtureRequest, emulator: EmulatorThread) -> Unknowns:
    chosen = ALTERNATIVES[request.param]
    emulator.configure(time_scale=TIME_SCALE, job_overhead=JOB_OVERHEAD, unknowns=chosen)
    return chosen


def omics_client(emulator: EmulatorThread, region: str = "us-east-1") -> Any:
    """A boto3 client in the importer's account (the environment's credentials), no retries."""
    kwargs = emulator.client_kwargs(max_attempts=1)
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    kwargs["region_name"] = region
    return boto3.client("omics", **kwargs)


def check_outcomes(stats: dict[str, Any], results: Sequence[RowResult]) -> None:
    """What the README's outcome table promises, row by row, against the service's own record."""
    jobs = {j["job_id"]: j for j in stats["jobs"]}
    refs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for store, store_refs in stats["references"].items():
        for ref in store_refs:
            refs.setdefault((store, ref["name"]), []).append(ref)
    duplicates = [key for key, found in refs.items() if len(found) > 1]
    assert duplicates == [], f"imported twice: {duplicates}"
    assert overlapping_jobs(stats) == []
    for row in results:
        [ref] = refs.get((row.store_id, row.name)) or [None]
        if row.state is RowState.IMPORTED:
            assert ref is not None and ref["id"] == row.reference_id, row
            assert ref["job_id"] == row.job_id, row
        elif row.state is RowState.ALREADY_PRESENT:
            assert ref is not None and ref["id"] == row.reference_id, row
        else:
            # The only failure these scenarios allow: a job cancelled from outside.
            assert row.state is RowState.FAILED, row
            job = jobs[row.job_id or ""]
            assert job["status"] == "CANCELLED", row
            [source] = [s for s in job["source_statuses"] if s["name"] == row.name]
            assert source["status"] != "FINISHED"
            assert CANCELLED_OUTSIDE in (row.message or ""), row
            # Our cancelled job imported nothing for it (another client's job may have, since).
            assert ref is None or ref["job_id"] != row.job_id, row


# -- the key scenarios ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_bulk_import(
    unknowns: Unknowns,
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    journal_path: Path,
) -> None:
    requests: list[ImportRequest] = []
    for region in ("us-east-1", "eu-west-1"):
        store_id = create_store(emulator, region)
        requests += requests_for(
            emulator, store_id, region, genomes(s3_fasta, 40, f"bulk-{region}")
        )
    async with Importer(journal_path, settings=FAST, max_sources_per_job=PACK) as imp:
        results = await imp.wait(await imp.submit(requests))
    stats = emulator.stats()
    check_outcomes(stats, results)
    assert len(stats["jobs"]) == len(requests) // PACK  # one job per pack
    assert stats["name_conflicts"] == 0
    assert stats["rejected_concurrent_starts"] == 0
    if unknowns.p_cancel:
        assert {r.state for r in results} == {RowState.IMPORTED, RowState.FAILED}
    else:
        assert {r.state for r in results} == {RowState.IMPORTED}
    if unknowns.get_lag:
        assert stats["lagged"]["GetReferenceImportJob"] > 0, "the lag must have been met"


@pytest.mark.slow
async def test_crash_recovery(
    unknowns: Unknowns,
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    journal_path: Path,
) -> None:
    # The journal as kill -9 leaves it at the two worst moments, on two stores: right after a
    # Start was sent (the job exists, its id never reached the journal, and the service has
    # forgotten the token since), and while a journaled job runs. The first store's crashed job
    # runs 2.5 s (real): it is found while it runs, through a List that may lag 1.5 s.
    stores, requests = [], []
    for n, region in enumerate(("us-east-1", "eu-west-1")):
        store_id = create_store(emulator, region)
        items = genomes(s3_fasta, 20, f"crash-{region}")
        if n == 0:
            items[:PACK] = long_genomes(s3_fasta, PACK, f"crash-long-{region}", seconds=5.0)
        reqs = requests_for(emulator, store_id, region, items)
        stores.append(reqs[0].store())
        requests += reqs
    async with AwsGateway(pacer=Pacer()) as gateway:
        # Clients made beforehand: the restart's first lookup then comes within the List's lag.
        for store in stores:
            await gateway.list_imports(store)
        async with SQLiteJournal(journal_path) as journal:
            ids = await journal.add_rows([(r.store(), r) for r in requests])
            for n, store in enumerate(stores):
                rows = await journal.queued_rows(store, PACK)
                job = await journal.begin_job(store, rows, f"crash-token-{n}")
                job_id = start_like_the_lane(emulator, store, rows, job.client_token)
                if n == 1:
                    await journal.record_job_id(job, job_id)
        emulator.forget_tokens()
        async with Importer(
            journal_path, settings=FAST, max_sources_per_job=PACK, gateway=gateway
        ) as imp:
            results = await imp.wait(ids)
    stats = emulator.stats()
    check_outcomes(stats, results)
    assert len(stats["jobs"]) == len(requests) // PACK  # the crashed jobs were not sent twice
    assert stats["name_conflicts"] == 0
    if not unknowns.list_lag:
        assert stats["rejected_concurrent_starts"] == 0
    # (With a lagging List the first lookup misses the job: the Start goes again with the
    # forgotten token, is refused while that job runs, and the next lookup adopts it.)
    if not unknowns.p_cancel:
        assert {r.state for r in results} == {RowState.IMPORTED}
    if unknowns.list_lag:
        assert stats["lagged"]["ListReferenceImportJobs"] > 0, "the lag must have been met"


@pytest.mark.slow
async def test_store_shared_with_another_client(
    unknowns: Unknowns,
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    journal_path: Path,
) -> None:
    store_id = create_store(emulator, "us-east-1")
    ours = genomes(s3_fasta, 30, "shared-ours")
    # The other client imports ten genomes in three jobs, one of them a name of ours.
    # Its first job lasts about 1.9 s (real), long enough to be running at our first Start with
    # four test workers loading two cores (the emulator's jobs no longer grow by their S3 reads' time).
    theirs = [
        *long_genomes(s3_fasta, 3, "shared-first", seconds=12.0),
        *long_genomes(s3_fasta, 6, "shared-theirs"),
        ours[-1],
    ]
    other = OtherClient(emulator, store_id, [theirs[:3], theirs[3:6], theirs[6:]])
    other.start_job()  # running before we start: our first Start meets a busy store
    other.start()
    requests = requests_for(emulator, store_id, "us-east-1", ours)
    with capture_logs() as logs:
        async with Importer(journal_path, settings=FAST, max_sources_per_job=PACK) as imp:
            results = await imp.wait(await imp.submit(requests))
    await anyio.to_thread.run_sync(other.join, 60)
    assert other.error is None and len(other.job_ids) == 3
    stats = emulator.stats()
    check_outcomes(stats, results)
    if not unknowns.p_cancel:  # (else the other client's first job may be cancelled early)
        # We met the other client's jobs, refused with the configured code, and waited: "busy"
        # when the List showed their job; when it did not yet (list lag), "unconfirmed" for a
        # 409 or 400, and a wait on the account's quota for a 402 (capacity all the same).
        waits = ("store.busy", "store.refusal_unconfirmed", "account.quota_full")
        refusals = [e for e in logs if e["event"] in waits]
        assert refusals and {e["code"] for e in refusals} == {unknowns.busy_code}
        states = {r.name: r.state for r in results}
        shared = states.pop(ours[-1][0])
        assert set(states.values()) == {RowState.IMPORTED}  # our rows waited, then imported
        assert shared in (RowState.IMPORTED, RowState.ALREADY_PRESENT)


# -- outcomes only these behaviours reach ---------------------------------------------------------


async def test_a_job_cancelled_from_outside_fails_its_unfinished_rows_with_the_reason(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    emulator.configure(time_scale=TIME_SCALE, job_overhead=JOB_OVERHEAD)
    store_id = create_store(emulator, "us-east-1")
    requests = requests_for(emulator, store_id, "us-east-1", long_genomes(s3_fasta, 4, "cancel"))
    async with Importer(journal_path, settings=FAST) as imp:
        async with imp.subscribe() as events:
            ids = await imp.submit(requests)
            async for event in events:
                if isinstance(event, JobStarted):
                    job_id = event.job_id
                    break
        await wait_for_a_finished_source(emulator, job_id)
        assert await anyio.to_thread.run_sync(
            emulator.cancel_job, job_id, "stopped from the console"
        )
        results = await imp.wait(ids)
    [job] = emulator.stats()["jobs"]
    finished = {s["name"] for s in job["source_statuses"] if s["status"] == "FINISHED"}
    assert 1 <= len(finished) < 4
    for row in results:
        if row.name in finished:
            assert row.state is RowState.IMPORTED and row.reference_id
        else:
            assert row.state is RowState.FAILED
            assert row.message == (
                f"import job {job_id} was cancelled outside async_refimport"
                " (stopped from the console)"
            )
    # Not sent again behind the canceller's back; submitting the rows again imports them.
    async with Importer(journal_path, settings=FAST) as imp:
        again = await imp.wait(await imp.submit(requests))
    assert {r.state for r in again} == {RowState.IMPORTED}
    stats = emulator.stats()
    assert len(stats["jobs"]) == 2
    check_outcomes(stats, again)


@pytest.mark.parametrize("list_lag", [0.0, 30.0], ids=["listed-at-once", "listed-late"])
async def test_a_name_taken_mid_run_is_already_present_with_the_existing_id(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path, list_lag: float
) -> None:
    emulator.configure(
        time_scale=TIME_SCALE, job_overhead=JOB_OVERHEAD, unknowns=Unknowns(list_lag=list_lag)
    )
    store_id = create_store(emulator, "us-east-1")
    items = genomes(s3_fasta, 3, "midrun")
    taken_name, taken_uri = items[1]
    other = OtherClient(emulator, store_id, [[(taken_name, taken_uri)]])

    class TakenJustBeforeOurStart(AwsGateway):
        """Another tool imports one of our names after our check of the store, before our job."""

        async def start_import(
            self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
        ) -> str:
            if other.batches:
                await anyio.to_thread.run_sync(other.import_all)
            return await super().start_import(store, role_arn, sources, client_token)

    requests = requests_for(emulator, store_id, "us-east-1", items)
    async with TakenJustBeforeOurStart(pacer=Pacer()) as gateway:
        async with Importer(journal_path, settings=FAST, gateway=gateway) as imp:
            results = await imp.wait(await imp.submit(requests))
    stats = emulator.stats()
    [theirs] = [r for r in stats["references"][store_id] if r["job_id"] == other.job_ids[0]]
    by_name = {r.name: r for r in results}
    taken = by_name.pop(taken_name)
    assert taken.state is RowState.ALREADY_PRESENT
    assert taken.reference_id == theirs["id"]
    assert "name already in the store" in (taken.message or "")
    assert {r.state for r in by_name.values()} == {RowState.IMPORTED}
    assert stats["name_conflicts"] == 1  # our job met the name: it was not skipped before
    if list_lag:
        assert stats["lagged"]["ListReferences"] > 0  # and its reference was listed late
    check_outcomes(stats, results)


async def test_a_reference_listed_late_is_already_present_with_its_id(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], journal_path: Path
) -> None:
    # ListReferences shows a new reference only 1.5 s (real) after it was made.
    emulator.configure(
        time_scale=TIME_SCALE, job_overhead=JOB_OVERHEAD, unknowns=Unknowns(list_lag=30.0)
    )
    store_id = create_store(emulator, "us-east-1")
    items = genomes(s3_fasta, 3, "late")
    requests = requests_for(emulator, store_id, "us-east-1", items)
    other = OtherClient(emulator, store_id, [[items[0]]])
    async with AwsGateway(pacer=Pacer()) as gateway:
        # The client made beforehand: our first look at the store comes within the List's lag.
        await gateway.list_references(requests[0].store())
        other.import_all()  # imported by another tool just before our run: not listed yet
        async with Importer(journal_path, settings=FAST, gateway=gateway) as imp:
            results = await imp.wait(await imp.submit(requests))
    stats = emulator.stats()
    [theirs] = [r for r in stats["references"][store_id] if r["name"] == items[0][0]]
    assert results[0].state is RowState.ALREADY_PRESENT
    assert results[0].reference_id == theirs["id"]
    assert [r.state for r in results[1:]] == [RowState.IMPORTED, RowState.IMPORTED]
    assert stats["lagged"]["ListReferences"] > 0  # our first look at the store missed it
    check_outcomes(stats, results)


# -- helpers ---------------------------------------------------------------------------------


def long_genomes(
    s3_fasta: Callable[..., str], n: int, prefix: str, seconds: float = 1.0
) -> list[tuple[str, str]]:
    """Genomes that take ``seconds`` (emulated) each to import: 20 Mbases a second."""
    out = []
    for i in range(n):
        name = f"{prefix}-{i:04d}"
        uri = s3_fasta(
            f"{prefix}/{name}.fa",
            make_fasta(name, 300, seed=i),
            bucket="genomes",
            metadata={"emulated-bases": str(int(20_000_000 * seconds))},
        )
        out.append((name, uri))
    return out


def start_like_the_lane(
    emulator: EmulatorThread, store: StoreRef, rows: Sequence[Any], token: str
) -> str:
    """Send the Start a lane would have sent for these journal rows; returns the job id."""
    response = omics_client(emulator, store.region).start_reference_import_job(
        referenceStoreId=store.store_id,
        roleArn=ROLE_ARN,
        clientToken=token,
        sources=[
            {
                "sourceFile": r.source_file,
                "name": r.name,
                "description": r.description,
                "tags": dict(r.tags),
            }
            for r in rows
        ],
    )
    return str(response["id"])


async def wait_for_a_finished_source(emulator: EmulatorThread, job_id: str) -> None:
    with anyio.fail_after(10):
        while True:
            stats = await anyio.to_thread.run_sync(emulator.stats)
            [job] = [j for j in stats["jobs"] if j["job_id"] == job_id]
            if any(s["status"] == "FINISHED" for s in job["source_statuses"]):
                return
            await anyio.sleep(0.005)


class OtherClient(threading.Thread):
    """Another tool importing into the same store with plain boto3: whenever the store is free
    it starts its next job, and it waits for each to end."""

    def __init__(
        self, emulator: EmulatorThread, store_id: str, batches: list[list[tuple[str, str]]]
    ) -> None:
        super().__init__(daemon=True)
        self.omics = omics_client(emulator)
        self.store_id = store_id
        self.batches = list(batches)
        self.job_ids: list[str] = []
        self.error: BaseException | None = None

    def start_job(self) -> str:
        batch = self.batches.pop(0)
        deadline = time.monotonic() + 30
        while True:
            try:
                job = self.omics.start_reference_import_job(
                    referenceStoreId=self.store_id,
                    roleArn=ROLE_ARN,
                    sources=[{"sourceFile": uri, "name": name} for name, uri in batch],
                )
            except botocore.exceptions.ClientError as exc:
                # The store runs our job (whatever code says so): try again shortly.
                if "job" not in exc.response["Error"]["Message"] or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
                continue
            self.job_ids.append(str(job["id"]))
            return str(job["id"])

    def wait_job(self, job_id: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                job = self.omics.get_reference_import_job(referenceStoreId=self.store_id, id=job_id)
            except botocore.exceptions.ClientError:
                time.sleep(0.005)  # read-after-write lag
                continue
            if job["status"] in ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"):
                return
            time.sleep(0.005)
        raise AssertionError(f"the other client's job {job_id} did not end")

    def import_all(self) -> None:
        while self.batches:
            self.wait_job(self.start_job())

    def run(self) -> None:
        try:
            if self.job_ids:
                self.wait_job(self.job_ids[-1])
            self.import_all()
        except BaseException as exc:  # reported to the test through .error
            self.error = exc
