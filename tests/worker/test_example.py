"""The embedding example (examples/aiohttp_service.py) against the emulator."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import aiohttp
import anyio
import pytest
from aiohttp import web

from async_refimport import ImporterSettings, PollingPolicy, RetryPolicy
from async_refimport.emulator import EmulatorThread, Faults
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import create_store, genomes

EXAMPLE = Path(__file__).parents[2] / "examples" / "aiohttp_service.py"
FAST = ImporterSettings(
    retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.5, max_elapsed=60),
    polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.5),
    busy_wait=0.05,
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aiohttp_service_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_service_submits_waits_and_streams_events(
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    example = load_example()
    app = example.create_app(tmp_path / "svc.sqlite", region=emulator.region, settings=FAST)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    items = genomes(s3_fasta, 5, "embed")
    body = {
        "requests": [
            {
                "store_id": store_id,
                "role_arn": ROLE_ARN,
                "source_file": uri,
                "name": name,
                "endpoint_url": emulator.omics_endpoint_url,
            }
            for name, uri in items
        ]
    }
    settled: list[dict] = []
    all_settled = anyio.Event()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/events") as stream:

                async def read_events() -> None:
                    async for line in stream.content:
                        event = json.loads(line)
                        if event["type"] == "RowSettled":
                            settled.append(event)
                            if len(settled) == len(items):
                                all_settled.set()
                                return

                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_events)
                    bad = {"requests": [{**body["requests"][0], "name": "x"}]}
                    async with http.post(f"{base}/imports", json=bad) as resp:
                        assert resp.status == 400
                        [error] = (await resp.json())["errors"]
                        assert error["field"] == "name"
                    async with http.post(f"{base}/imports", json=body) as resp:
                        assert resp.status == 202
                        ids = (await resp.json())["ids"]
                    results = []
                    for row_id in ids:
                        async with http.get(f"{base}/imports/{row_id}?wait=60") as resp:
                            results.append(await resp.json())
                    with anyio.fail_after(30):
                        await all_settled.wait()
    finally:
        # Not under a timeout scope: the Importer's task group was entered outside of it (setup).
        began = time.monotonic()
        await runner.cleanup()
    # Open event streams must not hold up the shutdown (aiohttp would wait 60 s for them).
    assert time.monotonic() - began < 10

    assert [r["state"] for r in results] == ["IMPORTED"] * 5
    refs = {r["name"]: r["id"] for r in emulator.stats()["references"][store_id]}
    assert {r["name"]: r["reference_id"] for r in results} == refs
    assert {e["result"]["row_id"] for e in settled} == set(ids)


# -- the library as a guest: its host decides what is printed ------------------------------------

CHILD = Path(__file__).with_name("embed_child.py")


def run_embedded(
    mode: str, emu: EmulatorThread, store_id: str, uris: list[str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, str(CHILD), mode, emu.omics_endpoint_url, emu.region, store_id, *uris],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_embedded_library_prints_nothing_when_the_host_configures_no_logging(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str
) -> None:
    uris = [uri for _, uri in genomes(s3_fasta, 3, "guest-silent")]
    proc = run_embedded("none", emulator, store_id, uris)
    assert proc.stdout == ""
    assert proc.stderr == ""


@pytest.mark.slow
def test_embedded_library_obeys_the_hosts_logging_level(
    emulator_factory: Callable[..., EmulatorThread], s3_fasta: Callable[..., str]
) -> None:
    # Most polls fail (500): with one attempt per call, each failure is a warning.
    emu = emulator_factory(
        time_scale=0.001,
        faults=Faults(tps=None, p_500=0.8, operations=frozenset({"GetReferenceImportJob"})),
    )
    store_id = create_store(emu, emu.region)
    # Six jobs, each polled until a poll succeeds: P(no failed poll at all) = 0.2**6.
    uris = [uri for _, uri in genomes(s3_fasta, 6, "guest-levels")]

    warning = run_embedded("warning", emu, store_id, uris)
    assert warning.stdout == ""
    lines = warning.stderr.splitlines()
    assert any("import_job.poll_failed" in line for line in lines), warning.stderr
    assert all(
        line.startswith(("WARNING:async_refimport", "ERROR:async_refimport")) for line in lines
    )

    info = run_embedded(
        "info", emu, store_id, [uri for _, uri in genomes(s3_fasta, 2, "guest-info")]
    )
    assert info.stdout == ""
    # The same host at INFO: the library's events reach the host's handler, one per line.
    assert "INFO:async_refimport.engine.lane:import_job.started " in info.stderr
