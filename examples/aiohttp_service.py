"""Embedding async_refimport in an aiohttp service: one Importer, shared by every request.

Run it (against AWS, or an emulator started with ``refimport emulator``)::

    python examples/aiohttp_service.py --journal service.sqlite --port 8080

    curl -X POST localhost:8080/imports -d '{"requests": [{"store_id": "1234567890",
         "role_arn": "arn:aws:iam::123456789012:role/OmicsImport",
         "source_file": "s3://my-bucket/hg38.fa", "name": "hg38"}]}'
    curl 'localhost:8080/imports/1?wait=600'     # block until the row is final (or 600 s pass)
    curl -N localhost:8080/events                 # progress events, one JSON object per line

The three things worth copying:

* the Importer lives in ``cleanup_ctx``: it opens when the app starts and closes (gracefully: no
  new job is started, jobs running at AWS are resumed by the next start) when the app stops;
* ``submit`` is safe to call from concurrent requests; rows of all callers are packed together
  into jobs per store, and each caller awaits only its own rows (``wait``);
* ``subscribe`` streams progress events to as many listeners as you like.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

from async_refimport import (
    Importer,
    ImporterSettings,
    ImportRequest,
    RequestValidationError,
    RowResult,
)

IMPORTER = web.AppKey("importer", Importer)
EVENT_STREAMS = web.AppKey("event_streams", set[anyio.CancelScope])


def _result(result: RowResult) -> dict[str, Any]:
    return {
        "row_id": result.row_id,
        "store_id": result.store_id,
        "name": result.name,
        "state": result.state.value,
        "final": result.state.is_final,
        "reference_id": result.reference_id,
        "job_id": result.job_id,
        "message": result.message,
    }


async def submit(request: web.Request) -> web.Response:
    """POST /imports {"requests": [{ImportRequest fields}]} → 202 {"ids": [...]}."""
    importer = request.app[IMPORTER]
    body = await request.json()
    try:
        requests = [ImportRequest(**item) for item in body["requests"]]
    except (KeyError, TypeError) as exc:
        return web.json_response({"error": f"bad request body: {exc}"}, status=400)
    try:
        ids = await importer.submit(requests, submission="example-service")
    except RequestValidationError as exc:
        # Nothing was journaled: every problem is listed, each naming its row and field.
        errors = [{"row": e.row_name, "field": e.field, "reason": e.reason} for e in exc.errors]
        return web.json_response({"errors": errors}, status=400)
    return web.json_response({"ids": ids}, status=202)


async def get_import(request: web.Request) -> web.Response:
    """GET /imports/{id}[?wait=SECONDS]: the row's result, optionally once it is final."""
    importer = request.app[IMPORTER]
    row_id = int(request.match_info["id"])
    wait = float(request.query.get("wait", "0"))
    if wait > 0:
        # wait() returns when the row is final; the timeout bounds how long the client hangs.
        with anyio.move_on_after(wait):
            await importer.wait([row_id])
    found = await importer.results([row_id])
    if not found:
        return web.json_response({"error": f"no row {row_id}"}, status=404)
    return web.json_response(_result(found[0]))


async def events(request: web.Request) -> web.StreamResponse:
    """GET /events: every progress event as a JSON line, until the client or the app goes."""
    importer = request.app[IMPORTER]
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    # Long-lived responses would hold up the app's shutdown: on_shutdown cancels them.
    with anyio.CancelScope() as scope:
        request.app[EVENT_STREAMS].add(scope)
        try:
            async with importer.subscribe() as stream:
                async for event in stream:
                    line = {"type": type(event).__name__, **dataclasses.asdict(event)}
                    await response.write(json.dumps(line, default=str).encode() + b"\n")
        finally:
            request.app[EVENT_STREAMS].discard(scope)
    return response


async def close_event_streams(app: web.Application) -> None:
    for scope in list(app[EVENT_STREAMS]):
        scope.cancel()


def create_app(
    journal: str | Path,
    *,
    region: str | None = None,
    settings: ImporterSettings | None = None,
) -> web.Application:
    """The service; the Importer opens with the app and closes with it."""
    app = web.Application()

    async def importer_lifespan(app: web.Application) -> AsyncIterator[None]:
        # Entered and left by the same task (aiohttp's startup/cleanup), as anyio requires.
        async with Importer(journal, region=region, settings=settings) as importer:
            app[IMPORTER] = importer
            yield
            # Leaving the block stops the Importer: no new job starts; a Start call in flight is
            # finished and journaled; jobs running at AWS resume on the next start.

    streams: set[anyio.CancelScope] = set()
    app[EVENT_STREAMS] = streams
    app.cleanup_ctx.append(importer_lifespan)
    app.on_shutdown.append(close_event_streams)
    app.router.add_post("/imports", submit)
    app.router.add_get("/imports/{id}", get_import)
    app.router.add_get("/events", events)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="async_refimport embedded in aiohttp")
    parser.add_argument("--journal", default="service.sqlite")
    parser.add_argument("--region", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(create_app(args.journal, region=args.region), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
