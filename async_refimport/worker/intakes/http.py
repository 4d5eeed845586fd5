"""The worker's small HTTP API (aiohttp), on the loopback interface by default.

Routes::

    POST /v1/imports          {"requests": [{...manifest row fields...}], "submission": "opt"}
                              → 202 {"ids": [...]}; 400 {"errors": [...]} listing every problem
    GET  /v1/imports/{id}     one row: report item fields plus row_id, state and attempts
    GET  /v1/imports?ids=1,2  several rows
    GET  /v1/stores           per store: rows by state, queue depth, the job this worker runs,
                              which process of the fleet holds its lease
    GET  /healthz             liveness: the process answers
    GET  /readyz              readiness: journal open and intake running (503 otherwise)
    GET  /metrics             Prometheus text

Requests take the fields of a manifest row (``source_file``, ``name``, ``description``, ``tags``,
``store_id``, ``role_arn``, ``region``), and nothing else: a row that sets ``endpoint_url`` or
``profile`` is refused (400, naming the field), because the worker signs its calls with its own
credentials and an endpoint chosen by a client would receive them. Endpoint and profile come from
the worker's flags only; with ``--allow-store``, a row may name only those stores.

When the environment variable ``REFIMPORT_WORKER_TOKEN`` is set, every route but ``/healthz`` and
``/readyz`` requires ``Authorization: Bearer <token>``.

Every answer is JSON (``/metrics`` aside), errors included: a body or path the intake cannot use
is a 4xx naming the problem, a journal that cannot be read or written (a full disk) a 503 with
``Retry-After``; nothing a client sends makes it answer 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import anyio
import anyio.abc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger
from prometheus_client import CONTENT_TYPE_LATEST

from async_refimport._application import (
    field_error_dict,
    row_document,
    rows_from_objects,
    stores_document,
    with_region,
)
from async_refimport._errors import (
    FieldError,
    ImporterClosedError,
    JournalError,
    RequestValidationError,
)
from async_refimport._log import get_logger
from async_refimport._metrics import WorkerMetrics
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults, RemoteLimits

log = get_logger(__name__)

TOKEN_ENV = "REFIMPORT_WORKER_TOKEN"
MAX_REQUESTS_PER_POST = 10_000
#: Row ids are SQLite integers: anything larger names no row.
MAX_ROW_ID = 2**63 - 1
_OPEN_PATHS = frozenset({"/healthz", "/readyz"})

IMPORTER_KEY = web.AppKey("importer", Importer)
METRICS_KEY = web.AppKey("metrics", WorkerMetrics)
DEFAULTS_KEY = web.AppKey("defaults", ManifestDefaults)
REMOTE_KEY = web.AppKey("remote", RemoteLimits)
READY_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
#: When the last http.journal_failed line was logged (monotonic seconds, in a one-item list).
JOURNAL_SAID_KEY: web.AppKey[list[float]] = web.AppKey("journal_said")
#: Seconds between the error lines of one journal outage.
JOURNAL_FAILURE_REPEAT = 300.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


#: Seconds a client is told to wait before it tries again after a 503.
RETRY_AFTER = 10


def _unavailable(reason: str) -> web.Response:
    response = _json({"error": reason, "errors": [{"field": None, "reason": reason}]}, 503)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a JSON document: aiohttp's own (404, 405, 413 ...) would be text, and an
    exception escaping a handler would be a bare 500 with a traceback in the log."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        response = _json({"error": exc.reason}, exc.status)
        for header in ("Allow", "WWW-Authenticate"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except JournalError as exc:
        # A full disk or a journal gone: nothing can be recorded, so nothing is accepted. The
        # worker rides the outage out; the client tries again later.
        said = request.app[JOURNAL_SAID_KEY]
        now = time.monotonic()
        # Said every few minutes while an outage lasts, not once per request a client retries.
        if now - said[0] >= JOURNAL_FAILURE_REPEAT:
            said[0] = now
            log.error("http.journal_failed", path=request.path, error=str(exc))
        return _unavailable(f"the journal cannot be used: {exc}")
    except ImporterClosedError:
        return _unavailable("the worker is stopping")


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
    except RecursionError:
        return answer(400, {"errors": [{"field": "body", "reason": "nested too deeply"}]})
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
    manifest = rows_from_objects(
        items,
        with_region(request.app[DEFAULTS_KEY], imp.region),
        remote=request.app[REMOTE_KEY],
    )
    if manifest.errors:
        return answer(400, {"errors": [_index_error(e) for e in manifest.errors]})
    requests = manifest.requests
    try:
        ids = await imp.submit(requests, submission=submission or "http")
    except RequestValidationError as exc:
        return answer(400, {"errors": [_index_error(e) for e in exc.errors]})
    except ImporterClosedError:
        metrics.http_submissions.labels("503").inc()
        return _unavailable("the worker is stopping")
    except JournalError:
        metrics.http_submissions.labels("503").inc()
        raise  # answered by _json_errors, which logs it
    log.info("http.submitted", rows=len(ids))
    return answer(202, {"ids": ids})


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
    if not 0 < row_id <= MAX_ROW_ID:
        # No such row can exist (the journal's ids are 64-bit): a 30-digit id is not found.
        return _json({"error": f"no row {row_id}"}, 404)
    found = await imp.results([row_id])
    if not found:
        return _json({"error": f"no row {row_id}"}, 404)
    return _json(row_document(found[0]))


async def _list_imports(request: web.Request) -> web.Response:
    imp = request.app[IMPORTER_KEY]
    raw = request.query.get("ids", "")
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        return _json({"error": "ids=1,2,3"}, 400)
    if not ids or len(ids) > MAX_REQUESTS_PER_POST:
        return _json({"error": f"give 1..{MAX_REQUESTS_PER_POST} ids: ?ids=1,2,3"}, 400)
    ids = [i for i in ids if 0 < i <= MAX_ROW_ID]  # others cannot exist
    found = await imp.results(ids) if ids else []
    return _json({"items": [row_document(r) for r in found]})


async def _stores(request: web.Request) -> web.Response:
    return _json(stores_document(await request.app[IMPORTER_KEY].status()))


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
    remote: RemoteLimits | None = None,
) -> web.Application:
    """The intake application, bound to an open Importer owned by the caller.

    Args:
        importer: The open Importer requests are submitted to.
        metrics: The worker's metrics (``/metrics``, submissions counted).
        defaults: Field values for rows that leave them out.
        ready: The worker's readiness (``/readyz``).
        token: Bearer token every route but the probes requires (None: none).
        remote: What a client's rows may set (default: any store, never an endpoint or a
            profile).

    Returns:
        The aiohttp application (its routes are listed in the module docstring).
    """
    middlewares = [_json_errors, *([_bearer_middleware(token)] if token else [])]
    app = web.Application(middlewares=middlewares, client_max_size=32 * 1024 * 1024)
    app[IMPORTER_KEY] = importer
    app[METRICS_KEY] = metrics
    app[DEFAULTS_KEY] = defaults
    app[REMOTE_KEY] = remote or RemoteLimits()
    app[READY_KEY] = ready
    app[JOURNAL_SAID_KEY] = [-math.inf]
    app.router.add_post("/v1/imports", _submit)
    app.router.add_get("/v1/imports", _list_imports)
    app.router.add_get("/v1/imports/{id}", _get_import)
    app.router.add_get("/v1/stores", _stores)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, with a request that is not valid HTTP (a raw byte in the target,
    a broken header: the client's fault, answered 400 by aiohttp before any route) said in one
    warning line rather than an error with a traceback that any client could fill the log with."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        """Log an error, unless it is a request that is not HTTP (then one warning line)."""
        if isinstance(exc_info, HttpProcessingError):
            reason = str(exc_info.message).strip().splitlines()[0] if exc_info.message else ""
            log.warning("http.bad_request", status=exc_info.code, reason=reason)
            return
        super().exception(msg, *args, exc_info=exc_info, **kw)


class HttpIntake:
    """The HTTP API as one of the worker's intakes: serves until cancelled, then closes.

    Args:
        importer: The open Importer requests are submitted to.
        metrics: The worker's metrics (``/metrics``, submissions counted).
        defaults: Field values for rows that leave them out (the worker's flags).
        ready: The worker's readiness (``/readyz``).
        host: Interface to bind.
        port: Port (0: any free port).
        token: Bearer token every route but the probes requires (None: none).
        close_timeout: Seconds requests in flight get to finish when closing.
        remote: What a client's rows may set (never an endpoint or a profile).
    """

    def __init__(
        self,
        importer: Importer,
        metrics: WorkerMetrics,
        defaults: ManifestDefaults,
        ready: Callable[[], bool],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        close_timeout: float = 5.0,
        remote: RemoteLimits | None = None,
    ) -> None:
        self.remote = remote or RemoteLimits()
        self.importer = importer
        self.metrics = metrics
        self.defaults = defaults
        self._ready = ready
        self.host = host
        self.port = port
        self.token = token
        self.close_timeout = close_timeout
        #: The URL served (``http://127.0.0.1:8470``) while listening; None otherwise.
        self.url: str | None = None

    @property
    def ready(self) -> bool:
        """Listening."""
        return self.url is not None

    def describe(self) -> dict[str, Any]:
        """What the worker announces about this intake."""
        return {"http": self.url}

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report started, and serve until cancelled; then close, bounded.

        Args:
            task_status: Told once listening (:attr:`url` is set).

        Raises:
            OSError: the port cannot be bound (in use, not allowed).
        """
        app = build_app(
            self.importer,
            self.metrics,
            self.defaults,
            self._ready,
            token=self.token,
            remote=self.remote,
        )
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.close_timeout,
            logger=_ProtocolLog(server_logger, {}),
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{port}"
            task_status.started()
            await anyio.sleep_forever()
        finally:
            self.url = None
            with anyio.move_on_after(self.close_timeout, shield=True):
                await runner.cleanup()
