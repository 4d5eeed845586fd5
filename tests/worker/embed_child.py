"""A host process embedding the library through the example app (examples/aiohttp_service.py).

``python embed_child.py MODE ENDPOINT REGION STORE_ID URI...`` imports one genome per URI through
the app's HTTP API and exits 0. MODE is what the host does about logging: ``none`` (nothing, as
many hosts do), ``warning`` or ``info`` (``logging.basicConfig`` at that level). The process itself
prints nothing: whatever appears on stdout or stderr came from the library.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web

from async_refimport import ImporterSettings, PollingPolicy, RetryPolicy

EXAMPLE = Path(__file__).parents[2] / "examples" / "aiohttp_service.py"
ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("aiohttp_service_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def main(endpoint: str, region: str, store_id: str, uris: list[str]) -> None:
    # One attempt per call: a failed poll is reported (a warning) instead of retried quietly.
    # One source per job: every job is polled, so a failing poll is all but certain.
    settings = ImporterSettings(
        max_sources_per_job=1,
        retry=RetryPolicy(attempts=1, initial=0.01, max_backoff=0.05),
        polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.2),
        busy_wait=0.05,
    )
    with tempfile.TemporaryDirectory() as tmp:
        app = load_example().create_app(Path(tmp) / "j.sqlite", region=region, settings=settings)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        body = {
            "requests": [
                {
                    "store_id": store_id,
                    "role_arn": ROLE_ARN,
                    "source_file": uri,
                    "name": Path(uri).stem,
                    "endpoint_url": endpoint,
                }
                for uri in uris
            ]
        }
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://{host}:{port}/imports", json=body) as resp:
                    assert resp.status == 202, await resp.text()
                    ids = (await resp.json())["ids"]
                for row_id in ids:
                    url = f"http://{host}:{port}/imports/{row_id}?wait=60"
                    async with http.get(url) as resp:
                        state = (await resp.json())["state"]
                        assert state == "IMPORTED", state
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    mode, endpoint, region, store_id, *uris = sys.argv[1:]
    if mode != "none":
        logging.basicConfig(level=mode.upper())
    anyio.run(main, endpoint, region, store_id, uris)
