"""The worker's parts in-process (spool, HTTP app, metrics, the Worker with its intakes), on the
in-memory gateway: no subprocess, no HTTP to a service, no emulator. The subprocess tests beside
this file check the same behaviour end to end."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from async_refimport import (
    ImporterSettings,
    ImportRequest,
    JobFinished,
    JobStarted,
    PollingPolicy,
    RequestRetried,
    RetryPolicy,
    RowResult,
    RowSettled,
    RowState,
    StoreRef,
)
from async_refimport._metrics import WorkerMetrics
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults
from async_refimport.testing import MemoryGateway
from async_refimport.worker.app import Worker
from async_refimport.worker.config import WorkerConfig, split_grace
from async_refimport.worker.intake import IntakeContext
from async_refimport.worker.intakes.http import HttpIntake, build_app
from async_refimport.worker.intakes.spool import Spool, SpoolOutcome
from tests.helpers.common import ROLE_ARN, STORE_ID
from tests.helpers.logcapture import capture_logs
from tests.helpers.worker import drop

FAST = ImporterSettings(
    retry=RetryPolicy(attempts=3, initial=0.001, max_backoff=0.01),
    polling=PollingPolicy(first_poll=0.001, min_interval=0.001, max_interval=0.01),
    busy_wait=0.01,
    rescan_interval=0.05,
)
DEFAULTS = ManifestDefaults(store_id=STORE_ID, role_arn=ROLE_ARN, region="us-east-1")


async def eventually(predicate: Callable[[], Any], within: float = 10) -> Any:
    with anyio.fail_after(within):
        # Polling is the point: the predicate reads files and state no event announces.
        while not (value := predicate()):  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return value


@asynccontextmanager
async def open_importer(tmp_path: Path) -> AsyncIterator[Importer]:
    # Not a fixture: an Importer is entered and left by one task (pytest-asyncio runs a
    # fixture's set-up and tear-down in different tasks).
    gateway = MemoryGateway(fail_names={"broken-genome"})
    async with Importer(
        tmp_path / "j.sqlite", gateway=gateway, region="us-east-1", settings=FAST
    ) as imp:
        yield imp


# -- spool ----------------------------------------------------------------------------------------


async def test_spool_files_manifests_in_done_or_failed_with_reports(tmp_path: Path) -> None:
    async with open_importer(tmp_path) as importer:
        await _spool_files_manifests(importer, tmp_path)


async def _spool_files_manifests(importer: Importer, tmp_path: Path) -> None:
    filed: list[SpoolOutcome] = []
    spool = Spool(tmp_path / "spool", importer, DEFAULTS, scan_interval=0.01, on_filed=filed.append)
    async with anyio.create_task_group() as tg:
        await tg.start(spool.run)
        assert spool.ready
        drop(
            tmp_path / "spool",
            "good.csv",
            "name,source_file\nhg38,s3://genomes/hg38.fa\nmm39,s3://genomes/mm39.fa\n",
        )
        drop(
            tmp_path / "spool",
            "mixed.jsonl",
            '{"name": "broken-genome", "source_file": "s3://genomes/x.fa"}\n',
        )
        drop(tmp_path / "spool", "invalid.csv", "name,source_file\nx,http://nope/x.fa\n")
        await eventually(lambda: len(filed) == 3)
        tg.cancel_scope.cancel()

    outcomes = {o.name: o for o in filed}
    assert outcomes["good.csv"].destination == "done"
    assert outcomes["mixed.jsonl"].destination == "failed"
    assert outcomes["invalid.csv"].destination == "failed"
    done = json.loads((tmp_path / "spool/done/good.csv.report.json").read_text())
    assert done["summary"] == {"total": 2, "imported": 2, "already_present": 0, "failed": 0}
    invalid = json.loads((tmp_path / "spool/failed/invalid.csv.report.json").read_text())
    assert {e["field"] for e in invalid["errors"]} >= {"name", "source_file"}
    assert not list((tmp_path / "spool/processing").iterdir())


# -- HTTP app -------------------------------------------------------------------------------------


@asynccontextmanager
async def http_client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Importer]]:
    async with open_importer(tmp_path) as importer:
        app = build_app(importer, WorkerMetrics(), DEFAULTS, lambda: True)
        async with TestClient(TestServer(app)) as client:
            yield client, importer


async def test_http_app_submits_and_answers_for_rows(tmp_path: Path) -> None:
    async with http_client(tmp_path) as (client, importer):
        await _submit_and_answer(client, importer)


async def _submit_and_answer(client: TestClient[Any, Any], importer: Importer) -> None:
    body = {"requests": [{"name": "hg38", "source_file": "s3://genomes/hg38.fa"}]}
    resp = await client.post("/v1/imports", json=body)
    assert resp.status == 202
    [row_id] = (await resp.json())["ids"]
    await importer.wait([row_id])
    row = await (await client.get(f"/v1/imports/{row_id}")).json()
    assert row["state"] == "IMPORTED" and row["final"] and row["reference_id"]
    listed = await (await client.get(f"/v1/imports?ids={row_id},99999")).json()
    assert [item["row_id"] for item in listed["items"]] == [row_id]
    stores = (await (await client.get("/v1/stores")).json())["stores"]
    assert stores[0]["store_id"] == STORE_ID and stores[0]["rows"]["IMPORTED"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert (
        'refimport_rows{region="us-east-1",state="IMPORTED",store_id="1234567890"} 1.0' in metrics
    )
    assert 'refimport_http_submissions_total{status="202"} 1.0' in metrics


async def test_http_app_refuses_bad_input_with_4xx_never_500(tmp_path: Path) -> None:
    async with http_client(tmp_path) as (client, _):
        await _refuse_bad_input(client)


async def _refuse_bad_input(client: TestClient[Any, Any]) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    in_tags = '{"requests": [{"name": "hg38", "source_file": "s3://genomes/a.fa", "tags": %s}]}'
    for raw in (in_tags % deep, deep):
        resp = await client.post(
            "/v1/imports", data=raw, headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400, await resp.text()
    bad = await client.post(
        "/v1/imports", json={"requests": [{"name": "x", "source_file": "nope"}]}
    )
    assert bad.status == 400
    assert {e["field"] for e in (await bad.json())["errors"]} == {"name", "source_file"}
    for path in ("/v1/imports/" + "9" * 30, "/v1/imports/0", "/v1/imports/-5"):
        assert (await client.get(path)).status == 404, path
    assert (await client.get("/v1/imports/abc")).status == 400
    many = await client.get("/v1/imports?ids=" + "9" * 30)
    assert many.status == 200 and (await many.json())["items"] == []


async def test_http_app_requires_the_token_when_one_is_set(tmp_path: Path) -> None:
    async with open_importer(tmp_path) as importer:
        app = build_app(importer, WorkerMetrics(), DEFAULTS, lambda: True, token="s3cret-token")
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            assert (await client.get("/v1/stores")).status == 401
            ok = await client.get("/v1/stores", headers={"Authorization": "Bearer s3cret-token"})
            assert ok.status == 200
            assert (await client.get("/healthz")).status == 200  # probes stay open
        finally:
            await client.close()


# -- metrics --------------------------------------------------------------------------------------


async def test_metrics_count_events_and_read_the_status_view(tmp_path: Path) -> None:
    async with open_importer(tmp_path) as importer:
        await _metrics_count(importer)


async def _metrics_count(importer: Importer) -> None:
    metrics = WorkerMetrics()
    store = StoreRef(STORE_ID, "us-east-1")
    row = RowResult(
        1, STORE_ID, "us-east-1", "hg38", "s3://genomes/hg38.fa", RowState.IMPORTED, "5", "7"
    )
    for event in (
        JobStarted(store, "7", "tok", 1, 0.0),
        RequestRetried("GetReferenceImportJob", store, 1, "ThrottlingException", 0.1),
        RowSettled(row),
        JobFinished(store, "7", "COMPLETED", 1, 0, 0, 0, 42.0, 1.0),
    ):
        metrics.observe(event)
    await importer.wait(
        await importer.submit([ImportRequest(STORE_ID, ROLE_ARN, "s3://genomes/a.fa", "genome-a1")])
    )
    text = (await metrics.render(importer)).decode()
    assert (
        'refimport_jobs_started_total{recovered="false",region="us-east-1",store_id="1234567890"} 1.0'
        in text
    )
    assert (
        'refimport_api_retries_total{code="ThrottlingException",operation="GetReferenceImportJob"} 1.0'
        in text
    )
    assert 'refimport_rows_settled_total{state="IMPORTED"} 1.0' in text
    assert (
        'refimport_job_duration_seconds_sum{region="us-east-1",store_id="1234567890"} 42.0' in text
    )
    # Read when scraped, from the Importer's status view.
    assert 'refimport_rows{region="us-east-1",state="IMPORTED",store_id="1234567890"} 1.0' in text
    assert 'refimport_queue_depth{region="us-east-1",store_id="1234567890"} 0.0' in text


async def test_importer_status_view(tmp_path: Path) -> None:
    async with open_importer(tmp_path) as importer:
        await _status_view(importer)


async def _status_view(importer: Importer) -> None:
    ids = await importer.submit(
        [ImportRequest(STORE_ID, ROLE_ARN, "s3://genomes/a.fa", "genome-a1")]
    )
    await importer.wait(ids)
    status = await importer.status()
    [store] = status.stores
    assert store.store == StoreRef(STORE_ID, "us-east-1")
    assert store.rows[RowState.IMPORTED] == 1 and store.queue_depth == 0
    assert store.driven and store.active_job is None
    assert not status.stopping
    assert await importer.compact(older_than=1e12) == 1
    assert (await importer.status()).stores[0].rows == {}


# -- the Worker with pluggable intakes ------------------------------------------------------------


class OneShotIntake:
    """An intake of its own kind: submits one request, reports what it saw."""

    def __init__(self, ctx: IntakeContext) -> None:
        self.ctx = ctx
        self.results: list[RowResult] = []
        self.running = False

    @property
    def ready(self) -> bool:
        return self.running

    def describe(self) -> dict[str, Any]:
        return {"one_shot": True}

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self.running = True
        task_status.started()
        imp = self.ctx.importer
        request = ImportRequest(STORE_ID, ROLE_ARN, "s3://genomes/hg38.fa", "hg38")
        self.results = await imp.wait(await imp.submit([request]))
        await anyio.sleep_forever()


async def test_worker_runs_any_intake_and_shuts_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[OneShotIntake] = []

    def one_shot(ctx: IntakeContext) -> OneShotIntake:
        made.append(OneShotIntake(ctx))
        return made[-1]

    config = WorkerConfig(journal=tmp_path / "j.sqlite", defaults=DEFAULTS, settings=FAST)
    worker = Worker(config, intakes=[one_shot])
    # The worker builds its own Importer: point it at the in-memory gateway.
    monkeypatch.setattr(
        "async_refimport.worker.app.Importer",
        lambda *a, **kw: Importer(*a, gateway=MemoryGateway(), **kw),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: worker.run(announce=False))
        await eventually(lambda: made and made[0].results)
        assert worker.ready()
        assert worker.announced["one_shot"] is True and worker.announced["pid"] == os.getpid()
        worker.shutdown()
    assert [r.state for r in made[0].results] == [RowState.IMPORTED]
    assert not worker.ready()


async def test_http_intake_listens_and_closes(tmp_path: Path) -> None:
    async with open_importer(tmp_path) as importer:
        intake = HttpIntake(
            importer, WorkerMetrics(), DEFAULTS, lambda: True, port=0, close_timeout=1
        )
        async with anyio.create_task_group() as tg:
            await tg.start(intake.run)
            assert intake.ready and intake.describe()["http"].startswith("http://127.0.0.1:")
            tg.cancel_scope.cancel()
        assert not intake.ready


def test_the_grace_period_is_split_once() -> None:
    importer_grace, http_close = split_grace(30.0)
    assert http_close == 5.0 and importer_grace == 24.0
    importer_grace, http_close = split_grace(2.0)
    assert http_close == 0.5 and importer_grace == 0.5


async def test_spool_files_whatever_it_cannot_parse_in_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir = tmp_path / "spool"
    deep = "[" * 50_000 + "]" * 50_000
    async with open_importer(tmp_path) as importer:
        filed: list[SpoolOutcome] = []
        spool = Spool(spool_dir, importer, DEFAULTS, scan_interval=0.01, on_filed=filed.append)
        with capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                await tg.start(spool.run)
                row = '{"name": "hg38", "source_file": "s3://genomes/a.fa", "tags": %s}\n'
                drop(spool_dir, "nested.jsonl", row % deep)
                await eventually(lambda: len(filed) == 1)
                # Any other reason a parser gives up, once it is in processing/.
                monkeypatch.setattr(
                    "async_refimport.worker.intakes.spool.read_whole_manifest",
                    lambda *_: (_ for _ in ()).throw(RecursionError("too deep")),
                )
                drop(spool_dir, "odd.csv", "name,source_file\nhg38,s3://genomes/a.fa\n")
                await eventually(lambda: len(filed) == 2)
                tg.cancel_scope.cancel()
    assert [o.destination for o in filed] == ["failed", "failed"]
    odd = json.loads((spool_dir / "failed/odd.csv.report.json").read_text())
    assert "RecursionError" in odd["errors"][0]["reason"]
    assert not list((spool_dir / "processing").iterdir())
    # One line each, no traceback, no retry loop.
    assert not [e for e in logs if e["event"] == "spool.file_error"]
    assert [e["event"] for e in logs if e.get("log_level") == "warning"] == [
        "spool.invalid_manifest",
        "spool.unreadable_manifest",
    ]


async def test_spool_says_once_why_it_leaves_links_directories_and_fifos_alone(
    tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool"
    incoming = spool_dir / "incoming"
    incoming.mkdir(parents=True)
    outside = tmp_path / "outside.csv"
    outside.write_text("name,source_file\nhg38,s3://genomes/a.fa\n")
    (incoming / "link.csv").symlink_to(outside)
    (incoming / "subdir.csv").mkdir()
    os.mkfifo(incoming / "pipe.csv")
    async with open_importer(tmp_path) as importer:
        spool = Spool(spool_dir, importer, DEFAULTS, scan_interval=0.01)
        with capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                await tg.start(spool.run)
                await anyio.sleep(0.2)  # a score of scans
                tg.cancel_scope.cancel()
    ignored = {e["file"]: e["reason"] for e in logs if e["event"] == "spool.ignored"}
    assert len([e for e in logs if e["event"] == "spool.ignored"]) == 3  # once each
    assert "symbolic link" in ignored["link.csv"]
    assert "directory" in ignored["subdir.csv"]
    assert "FIFO" in ignored["pipe.csv"]
    # Nothing was followed, moved or imported.
    assert (incoming / "link.csv").is_symlink() and outside.exists()
    assert not list((spool_dir / "processing").iterdir())
