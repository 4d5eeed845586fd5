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

A web page the worker's user visits must not reach it either (a loopback worker without a token
is otherwise open to every page of a browser on the same machine): a POST must be
``application/json`` in UTF-8 (415 otherwise: a page can send ``text/plain`` without asking), a
request with an ``Origin`` other than the worker's own is refused (403), and on a loopback
interface the ``Host`` header must name this machine's loopback (``localhost``, ``127.0.0.1``,
``[::1]``, on any port: 421 otherwise), which defeats DNS rebinding. JSON objects with a key
given twice are refused, as in manifests.

A connection flood cannot take the worker down (:mod:`.http_guard`): at most
:func:`~.http_guard.connection_limit` connections are served at once (more are answered 503 and
closed at once), a connection that has not sent a whole request head within
:data:`~.http_guard.HEAD_TIMEOUT` seconds of connecting or of its previous answer is closed (slow
headers, idle keep-alives), a body must arrive within :data:`BODY_TIMEOUT` seconds, and a process
out of file descriptors keeps accepting once some are free (one log line a minute).

Every answer is JSON (``/metrics`` aside), errors included: a body or path the intake cannot use
is a 4xx naming the problem, a journal that cannot be read or written (a full disk) a 503 with
``Retry-After``; nothing a client sends makes it answer 500.
"""

from __future__ import annotations

import asyncio
import codecs
import hmac
import ipaddress
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
from async_refimport._models import redact_url
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults, RemoteLimits
from async_refimport.manifest.rows import _loads as loads_json_strictly
from async_refimport.worker.intakes.http_guard import HEAD_TIMEOUT, ConnectionGate

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


#: Methods that change nothing: a cross-origin page may not read their answers anyway.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Hosts:
    """Which ``Host`` headers the worker answers: on a loopback interface only names that cannot
    be rebound to it by someone else's DNS (``localhost``, loopback addresses), on any port (an
    SSH tunnel or ``kubectl port-forward`` changes it); elsewhere any (the token guards it)."""

    def __init__(self) -> None:
        #: Set once listening on a loopback interface.
        self.loopback_only = False

    def answers(self, host: str) -> bool:
        """Whether a request with this ``Host`` header is served.

        Args:
            host: The header's value (``name:port``, ``[v6]:port``, ``name``).

        Returns:
            True when any host is, or ``host`` names this machine's loopback.
        """
        if not self.loopback_only:
            return True
        name = _host_name(host)
        if name in ("localhost", "localhost."):
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False


def _host_name(host: str) -> str:
    """The name or address of a ``Host`` header, without its port or brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6] or [v6]:port
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:  # name:port
        return host.split(":", 1)[0]
    return host


HOSTS_KEY = web.AppKey("hosts", _Hosts)


def _foreign(request: web.Request) -> web.Response | None:
    """The refusal of a request a web page may have sent on the user's behalf, or None.

    A ``Host`` that does not name a loopback worker is a DNS-rebound name (421, every method);
    an ``Origin`` other than the one the request was sent to is another site's page (403, for
    the methods that change something).
    """
    host = request.headers.get("Host")
    if host is not None and not request.app[HOSTS_KEY].answers(host):
        return _json({"error": "this worker is not reached by that host name"}, 421)
    origin = request.headers.get("Origin")
    if origin is not None and request.method not in _SAFE_METHODS:
        if host is None or origin.lower() != f"http://{host.lower()}":
            return _json({"error": "cross-origin requests are refused"}, 403)
    return None


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what a web page may have sent on the user's behalf (see :func:`_foreign`)."""
    return _foreign(request) or await handler(request)


#: Seconds a request body may take to arrive (a client dripping it holds a connection).
BODY_TIMEOUT = 60.0


async def _read_document(request: web.Request) -> tuple[Any, tuple[int, str, str] | None]:
    """The request's JSON document, or ``(None, (status, field, reason))`` naming why not.

    Only UTF-8 ``application/json`` is read (a page can post ``text/plain`` cross-site without
    a preflight); a key given twice in one object is refused, as in manifests.
    """
    if request.content_type != "application/json":
        shown = request.headers.get("Content-Type", "none")[:100]
        reason = f"Content-Type must be application/json (not {shown!r})"
        return None, (415, "Content-Type", reason)
    charset = request.charset
    if charset is not None:
        try:
            known = codecs.lookup(charset).name == "utf-8"
        except LookupError:
            known = False
        if not known:
            reason = f"charset {charset[:40]!r} is not supported: send JSON in UTF-8"
            return None, (415, "Content-Type", reason)
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            raw = await request.read()
    except TimeoutError:
        return None, (408, "body", f"the body did not arrive within {BODY_TIMEOUT:.0f} s")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, (400, "body", f"not UTF-8 (byte {exc.start})")
    doc, why = loads_json_strictly(text)
    if why is not None:
        return None, (400, "body", f"not a JSON document: {why}")
    return doc, None


async def _submit(request: web.Request) -> web.Response:
    imp = request.app[IMPORTER_KEY]
    metrics = request.app[METRICS_KEY]

    def answer(status: int, body: dict[str, Any]) -> web.Response:
        metrics.http_submissions.labels(str(status)).inc()
        return _json(body, status)

    doc, refused = await _read_document(request)
    if refused is not None:
        status, name, reason = refused
        return answer(status, {"errors": [{"field": name, "reason": reason}]})
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
    doc = stores_document(await request.app[IMPORTER_KEY].status())
    for store in doc["stores"]:
        # An endpoint given as http://user:password@host: the password is not for clients.
        if store.get("endpoint_url"):
            store["endpoint_url"] = redact_url(store["endpoint_url"])
    return _json(doc)


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
    hosts: _Hosts | None = None,
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
        hosts: The ``Host`` headers answered (default: any; cross-origin writes are refused
            whatever it is).

    Returns:
        The aiohttp application (its routes are listed in the module docstring).
    """
    middlewares = [_json_errors, _same_origin, *([_bearer_middleware(token)] if token else [])]
    app = web.Application(middlewares=middlewares, client_max_size=32 * 1024 * 1024)
    app[HOSTS_KEY] = hosts or _Hosts()
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
        connection_limit: Connections served at once (default: a share of the process's file
            descriptors, see :func:`~.http_guard.connection_limit`).
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
        connection_limit: int | None = None,
    ) -> None:
        self.remote = remote or RemoteLimits()
        self.connection_limit = connection_limit
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
        hosts = _Hosts()
        app = build_app(
            self.importer,
            self.metrics,
            self.defaults,
            self._ready,
            token=self.token,
            remote=self.remote,
            hosts=hosts,
        )
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.close_timeout,
            logger=_ProtocolLog(server_logger, {}),
            # Runs from connecting (or the previous answer) until a whole request head is in:
            # slow headers and idle keep-alives are closed after it.
            keepalive_timeout=HEAD_TIMEOUT,
        )
        await runner.setup()
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        try:
            assert runner.server is not None
            gate = ConnectionGate(runner.server, self.connection_limit)
            loop.set_exception_handler(gate.exception_handler(previous))
            server = await loop.create_server(gate.protocol, self.host, self.port)
            try:
                self._listening(server, hosts)
                task_status.started()
                await anyio.sleep_forever()
            finally:
                server.close()
        finally:
            self.url = None
            with anyio.move_on_after(self.close_timeout, shield=True):
                await runner.cleanup()
            loop.set_exception_handler(previous)

    def _listening(self, server: asyncio.Server, hosts: _Hosts) -> None:
        """Note the URL served, and the host names answered when bound to loopback."""
        host, port = server.sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        hosts.loopback_only = ipaddress.ip_address(host).is_loopback
