"""The worker's small HTTP API (aiohttp), on the loopback interface by default.

Routes::

    POST /v1/imports          {"requests": [{...manifest row fields...}], "submission": "opt"}
                              → 202 {"ids": [...]}; 400 {"errors": [...]} listing every problem
    GET  /v1/imports/{id}     one row: report item fields plus row_id, state and attempts
    GET  /v1/imports?ids=1,2  several rows
    GET  /v1/stores           per store: rows by state, queue depth, the job this worker runs
    GET  /healthz             liveness: the process answers
    GET  /readyz              readiness: journal open and intake running (503 otherwise)
    GET  /metrics             Prometheus text

Requests take the fields of a manifest row (``source_file``, ``name``, ``description``, ``tags``,
``store_id``, ``role_arn``, ``region``); the endpoint URL and AWS profile come from the worker's
flags only, so a client cannot point the worker's credentials at another endpoint.

When the environment variable ``REFIMPORT_WORKER_TOKEN`` is set, every route but ``/healthz`` and
``/readyz`` requires ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ._errors import FieldError, ImporterClosedError, RequestValidationError
from ._importer import Importer
from ._log import get_logger
from ._manifest import Manifest, ManifestDefaults
from ._manifest import _Builder as _ManifestBuilder
from ._metrics import WorkerMetrics
from ._models import RowResult, RowState
from ._report import report_item
from ._spool import field_error_dict

log = get_logger(__name__)

TOKEN_ENV = "REFIMPORT_WORKER_TOKEN"
MAX_REQUESTS_PER_POST = 10_000
_OPEN_PATHS = frozenset({"/healthz", "/readyz"})

IMPORTER_KEY = web.AppKey("importer", Importer)
METRICS_KEY = web.AppKey("metrics", WorkerMetrics)
DEFAULTS_KEY = web.AppKey("defaults", ManifestDefaults)
READY_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _row(result: RowResult) -> dict[str, Any]:
    item: dict[str, Any] = dict(report_item(result))
    item.update(
        row_id=result.row_id,
        region=result.region,
        state=result.state.value,
        final=result.state.is_final,
        attempts=result.attempts,
    )
    return item


def _bearer_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in _OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                response = _json({"error": "missing or wrong bearer token"}, 401)
                response.headers["WWW-Authenticate"] = 'Bearer realm="refimport"'
                return response
        return await handler(request)

    return check


async def _submit(request: web.Request) -> web.Response:
    imp = request.app[IMPORTER_KEY]
    metrics = request.app[METRICS_KEY]

    def answer(status: int, body: dict[str, Any]) -> web.Response:
        metrics.http_submissions.labels(str(status)).inc()
        return _json(body, status)

    try:
        doc = await request.json()
    except (ValueError, UnicodeDecodeError):
        return answer(400, {"errors": [{"field": "body", "reason": "not a JSON document"}]})
    items = doc.get("requests") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        return answer(
            400, {"errors": [{"field": "requests", "reason": "must be a non-empty list"}]}
        )
    if len(items) > MAX_REQUESTS_PER_POST:
        return answer(
            413,
            {"errors": [{"field": "requests", "reason": f"at most {MAX_REQUESTS_PER_POST}"}]},
        )
    submission = doc.get("submission")
    if submission is not None and not isinstance(submission, str):
        return answer(400, {"errors": [{"field": "submission", "reason": "must be a string"}]})
    defaults = request.app[DEFAULTS_KEY]
    manifest = requests_from_objects(items, replace(defaults, region=defaults.region or imp.region))
    if manifest.errors:
        return answer(400, {"errors": [_index_error(e) for e in manifest.errors]})
    requests = manifest.requests
    try:
        ids = await imp.submit(requests, submission=submission or "http")
    except RequestValidationError as exc:
        return answer(400, {"errors": [_index_error(e) for e in exc.errors]})
    except ImporterClosedError:
        return answer(503, {"errors": [{"field": None, "reason": "the worker is stopping"}]})
    log.info("http.submitted", rows=len(ids))
    return answer(202, {"ids": ids})


def requests_from_objects(items: list[Any], defaults: ManifestDefaults) -> Manifest:
    """Check JSON objects exactly as rows of a JSON Lines manifest; "lines" are 1-based indexes."""
    # The manifest reader's row builder, so both intakes accept the same fields the same way.
    builder = _ManifestBuilder(Path("request"), "jsonl", defaults)
    for index, item in enumerate(items, start=1):
        if isinstance(item, dict):
            builder._json_row(index, item)
        else:
            builder.error(index, "requests", "must be an object")
    return builder.manifest


def _index_error(error: FieldError) -> dict[str, Any]:
    out = field_error_dict(error)
    out["index"] = out.pop("line")
    out["message"] = str(replace(error, source=None))
    return out


async def _get_import(request: web.Request) -> web.Response:
    imp = request.app[IMPORTER_KEY]
    try:
        row_id = int(request.match_info["id"])
    except ValueError:
        return _json({"error": "row ids are integers"}, 400)
    found = await imp.results([row_id])
    if not found:
        return _json({"error": f"no row {row_id}"}, 404)
    return _json(_row(found[0]))


async def _list_imports(request: web.Request) -> web.Response:
    imp = request.app[IMPORTER_KEY]
    raw = request.query.get("ids", "")
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        return _json({"error": "ids=1,2,3"}, 400)
    if not ids or len(ids) > MAX_REQUESTS_PER_POST:
        return _json({"error": f"give 1..{MAX_REQUESTS_PER_POST} ids: ?ids=1,2,3"}, 400)
    return _json({"items": [_row(r) for r in await imp.results(ids)]})


async def _stores(request: web.Request) -> web.Response:
    imp = request.app[IMPORTER_KEY]
    counts = await imp.journal.counts()
    lanes = {store.key: lane for store, lane in imp.lanes().items()}
    stores = []
    for store, states in sorted(counts.items(), key=lambda kv: kv[0].key):
        lane = lanes.get(store.key)
        stores.append(
            {
                "store_id": store.store_id,
                "region": store.region,
                "endpoint_url": store.endpoint_url,
                "queue_depth": states.get(RowState.QUEUED, 0),
                "rows": {state.value: states.get(state, 0) for state in RowState},
                "active_job": lane.active_job if lane is not None else None,
                "idle": lane.idle if lane is not None else None,
            }
        )
    return _json({"stores": stores})


async def _healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if request.app[READY_KEY]():
        return _json({"status": "ready"})
    return _json({"status": "not ready"}, 503)


async def _metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS_KEY].render(request.app[IMPORTER_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(
    importer: Importer,
    metrics: WorkerMetrics,
    defaults: ManifestDefaults,
    ready: Callable[[], bool],
    *,
    token: str | None = None,
) -> web.Application:
    """The intake application, bound to an open Importer owned by the caller."""
    middlewares = [_bearer_middleware(token)] if token else []
    app = web.Application(middlewares=middlewares, client_max_size=32 * 1024 * 1024)
    app[IMPORTER_KEY] = importer
    app[METRICS_KEY] = metrics
    app[DEFAULTS_KEY] = defaults
    app[READY_KEY] = ready
    app.router.add_post("/v1/imports", _submit)
    app.router.add_get("/v1/imports", _list_imports)
    app.router.add_get("/v1/imports/{id}", _get_import)
    app.router.add_get("/v1/stores", _stores)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app
