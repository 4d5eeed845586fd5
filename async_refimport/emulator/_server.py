"""The HTTP face of the emulator: an aiohttp server speaking botocore's ``omics`` REST-JSON.

Each request goes through: route (by the model's method and ``requestUri``) → SigV4 presence
(403) → throttling (429) → targeted faults before the call (latency, dropped connection, 500)
→ model validation (400) → the operation → targeted faults after it (dropped connection, 408).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError

from .._log import get_logger
from ._checks import check_number
from ._environment import ACCESS_KEY_ID, SECRET_ACCESS_KEY, EnvironmentPatch, account_for, environ
from ._eventbus import EVENT_COUNTERS, EventPublisher
from ._extra import require_extra
from ._faults import FaultInjector, Faults
from ._model import RequestValidationFailed, error_status, match_route, parse_request, serialize
from ._service import (
    DEFAULT_TOKEN_TTL,
    JOB_OVERHEAD_S,
    THROUGHPUT_BASES_PER_S,
    ApiError,
    Caller,
    Service,
)
from ._sts import Sts
from ._unknowns import CANCEL_STATUSES, Unknowns

log = get_logger(__name__)

#: Access key ids starting with this are valid but allowed nothing: every call answers 403
#: AccessDeniedException, like an IAM user without omics permissions (to try a set-up mistake).
DENIED_KEY_PREFIX = "AKIADENIED"

_CREDENTIAL = re.compile(r"Credential=([^/\s,]+)/(\d{8})/([^/\s,]+)/([^/\s,]+)/aws4_request")


class _Dropped(Exception):
    """The connection was closed on purpose, without a response."""


class Emulator:
    """A local HealthOmics reference-store service (plus an embedded moto S3 server).

    Use as ``async with Emulator(...) as emu:``; point clients at :attr:`omics_endpoint_url`
    (see :meth:`client_kwargs`). An instance runs once: it cannot be reopened after it closed.

    Args:
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one.
        region: Region used by :meth:`client_kwargs` (requests may use any Region).
        time_scale: multiplies every simulated duration (0.001 turns 30 s into 30 ms).
        faults: fault settings; ``None`` means :class:`Faults` defaults (5 TPS throttling, no faults,
            no account import quota).
        store_quota: reference stores allowed per account and Region.
        token_ttl: seconds a clientToken is remembered (real seconds, not scaled).
        s3_endpoint_url: S3 to read sources from; ``None`` starts an embedded moto S3 server.
        s3_credentials: (key id, secret) for that S3; dummy ones by default; ``None`` uses
            the default AWS credential chain (for a real S3).
        job_overhead: fixed seconds per import job (before scaling).
        throughput: bases per second per source (before scaling).
        seed: seed for the ids the emulator assigns.
        unknowns: the answers to what AWS does not document (busy refusal code and message, read
            lags, per-source progress, jobs cancelled from outside, events of cancellations);
            ``None`` means :class:`Unknowns` defaults.
        events: publish job status events to EventBridge, as HealthOmics does.
        events_endpoint_url: the EventBridge to publish to; ``None`` means the embedded moto
            server (with ``s3_endpoint_url`` given and no ``events_endpoint_url``, no events are
            published).
        same_region: enforce HealthOmics' same-Region rule: a source in a bucket of another
            Region than its store fails. Off by default (one bucket then serves stores of every
            Region); the Region of each source's bucket is recorded either way.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        time_scale: float = 1.0,
        faults: Faults | None = None,
        store_quota: int = 1,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        s3_endpoint_url: str | None = None,
        s3_credentials: tuple[str, str] | None = ("testing", "testing"),
        job_overhead: float = JOB_OVERHEAD_S,
        throughput: float = THROUGHPUT_BASES_PER_S,
        seed: int = 0,
        unknowns: Unknowns | None = None,
        events: bool = True,
        events_endpoint_url: str | None = None,
        same_region: bool = False,
    ) -> None:
        check_settings(
            time_scale=time_scale,
            token_ttl=token_ttl,
            store_quota=store_quota,
            job_overhead=job_overhead,
            throughput=throughput,
            same_region=same_region,
        )
        self._host = host
        self._port = port
        self.region = region
        self._s3_url = s3_endpoint_url
        self._s3_credentials = s3_credentials
        self._events = events
        self._events_url = events_endpoint_url if events else None
        self._publisher: EventPublisher | None = None
        self._faults = FaultInjector(faults if faults is not None else Faults())
        #: AssumeRole on the same server, and who signed each omics call (``stats()["sts"]``).
        self.sts = Sts()
        self.service = Service(
            s3_reader=self._read_s3,
            time_scale=time_scale,
            store_quota=store_quota,
            token_ttl=token_ttl,
            job_overhead=job_overhead,
            throughput=throughput,
            seed=seed,
            unknowns=unknowns,
            bucket_region=self._bucket_region,
            same_region=same_region,
        )
        #: Bucket name -> Region, asked of S3 once per bucket (dropped on reset).
        self._bucket_regions: dict[str, str] = {}
        self.service.import_slots = self._import_slots
        self._initial: dict[str, Any] = {
            "faults": self._faults.faults,
            "unknowns": self.service.unknowns,
            "time_scale": time_scale,
            "token_ttl": token_ttl,
            "store_quota": store_quota,
            "job_overhead": job_overhead,
            "throughput": throughput,
            "same_region": same_region,
        }
        self._stack: AsyncExitStack | None = None
        self._state = "new"
        self._url: str | None = None
        self._s3: Any = None
        self._lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("an Emulator runs once; create a new one")
        self._state = "opening"
        stack = AsyncExitStack()
        try:
            if self._s3_url is None:
                self._s3_url = await self._start_moto(stack)
                if self._events and self._events_url is None:
                    # moto serves EventBridge and SQS on the same port as S3.
                    self._events_url = self._s3_url
            self._s3 = await stack.enter_async_context(self._s3_client())
            if self._events_url is not None:
                publisher = EventPublisher(
                    self._events_url, self._s3_credentials, lambda: self._faults.faults
                )
                stack.push_async_callback(publisher.aclose)
                self._publisher = publisher
                self.service.on_status = self._publish
            app = web.Application(client_max_size=16 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            # Jobs stop before the server does, so no job outlives the loop.
            stack.push_async_callback(self.service.aclose)
            host, port = runner.addresses[0][:2]
            shown = f"[{host}]" if ":" in host else host
            self._url = f"http://{shown}:{port}"
        except BaseException:
            await stack.aclose()
            self._state = "closed"
            raise
        self._stack = stack
        self._state = "open"
        log.debug("emulator.started", omics=self._url, s3=self._s3_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop jobs, the HTTP server and the embedded S3 server."""
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()
        self._state = "closed"

    async def _start_moto(self, stack: AsyncExitStack) -> str:
        # Checked first, so a missing extra is one line, not moto's traceback.
        require_extra()
        from moto.server import ThreadedMotoServer  # heavy import, only when embedded S3 is used

        # werkzeug prints every request to stderr unless a handler is already there: a
        # NullHandler keeps an embedded S3 silent, and a host that configured logging still
        # gets its records.
        logging.getLogger("werkzeug").addHandler(logging.NullHandler())
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        await asyncio.to_thread(server.start)
        stack.push_async_callback(asyncio.to_thread, server.stop)
        host, port = server.get_host_and_port()
        return f"http://{host}:{port}"

    def _s3_client(self) -> Any:
        import aioboto3
        from aiobotocore.config import AioConfig

        creds: dict[str, str] = {}
        if self._s3_credentials is not None:
            key, secret = self._s3_credentials
            creds = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        return aioboto3.Session().client(
            "s3",
            endpoint_url=self._s3_url,
            region_name=self.region,
            config=AioConfig(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
            **creds,
        )

    async def _read_s3(
        self, bucket: str, key: str, on_chunk: Callable[[bytes], None]
    ) -> dict[str, str]:
        try:
            resp = await self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                raise KeyError(key) from None
            raise
        body = resp["Body"]
        try:
            async for chunk in body.iter_chunks(1 << 20):
                on_chunk(chunk)
        finally:
            body.close()
        return dict(resp.get("Metadata") or {})

    async def _bucket_region(self, bucket: str) -> str | None:
        """The Region of ``bucket`` (HeadBucket's ``x-amz-bucket-region``), cached per bucket;
        None when there is no such bucket."""
        known = self._bucket_regions.get(bucket)
        if known is not None:
            return known
        try:
            resp = await self._s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            # S3 answers a HEAD of a bucket of another Region than the client's with a 301
            # that still names the bucket's Region; a 404 has none.
            resp = exc.response
        headers = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        region = resp.get("BucketRegion") or headers.get("x-amz-bucket-region")
        if not isinstance(region, str) or not region:
            return None
        self._bucket_regions[bucket] = region
        return region

    def _import_slots(self) -> tuple[int | None, int]:
        return self._faults.faults.import_quota, self._faults.other_imports()

    def _publish(self, job: Any, store: Any) -> None:
        assert self._publisher is not None
        if job.status in CANCEL_STATUSES and not self.service.unknowns.cancel_events:
            # AWS's EventBridge page lists no reference import event for a cancellation.
            self._publisher.counters["withheld"] += 1
            return
        self._publisher.publish(
            region=store.region,
            job_id=job.id,
            store_id=store.id,
            status=job.status,
            message=job.status_message,
        )

    # -- public face ---------------------------------------------------------------------------

    @property
    def omics_endpoint_url(self) -> str:
        """Base URL of the HealthOmics API."""
        if self._url is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    @property
    def s3_endpoint_url(self) -> str:
        """Base URL of the S3 the sources are read from."""
        if self._s3_url is None:
            raise RuntimeError("the emulator is not running")
        return self._s3_url

    @property
    def faults(self) -> Faults:
        """Current fault settings."""
        return self._faults.faults

    @property
    def unknowns(self) -> Unknowns:
        """Current answers to what AWS does not document."""
        return self.service.unknowns

    @property
    def events_endpoint_url(self) -> str | None:
        """Where job status events go (EventBridge; with the embedded moto, SQS is there too)."""
        return self._events_url

    def endpoints(self) -> dict[str, str]:
        """The JSON the CLI prints: the endpoint URLs and the Region."""
        out = {
            "omics_endpoint_url": self.omics_endpoint_url,
            "s3_endpoint_url": self.s3_endpoint_url,
            "region": self.region,
        }
        if self._events_url is not None:
            out["events_endpoint_url"] = self._events_url
        return out

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment in which the AWS SDK is the caller :meth:`client_kwargs` makes.

        ``base`` (default: a copy of ``os.environ``) with this emulator's access key, Region and
        endpoints set and ``AWS_PROFILE`` / ``AWS_SESSION_TOKEN`` removed: hand it to a child
        process (``refimport import``, the AWS CLI) so that it sees the stores made with
        :meth:`client_kwargs`. See :func:`async_refimport.emulator.environ`.
        """
        return environ(self.endpoints(), base)

    def configure_environment(self) -> EnvironmentPatch:
        """Apply :meth:`environ` to this process, so clients that read their credentials from the
        environment (an ``Importer``, boto3 without arguments) are the caller of
        :meth:`client_kwargs`, in the same emulated account.

        Returns a handle: ``restore()`` (or leaving ``with emu.configure_environment():``) puts
        the earlier variables back.
        """
        return EnvironmentPatch(self.endpoints())

    def client_kwargs(
        self, service: str = "omics", *, max_attempts: int | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client(service, **kw)`` or ``aioboto3.Session().client``.

        They sign as the emulator's own account; :meth:`environ` is the same caller for code
        that takes its credentials from the environment.

        Args:
            service: ``"omics"``, ``"s3"``, or ``"events"`` / ``"sqs"`` (the EventBridge the
                events go to, and the SQS beside it in moto).
            max_attempts: total attempts per call (1 = botocore never retries); ``None`` keeps
                botocore's default retry settings.
        """
        return client_kwargs(self.endpoints(), service, max_attempts=max_attempts)

    def config(self) -> dict[str, Any]:
        """Current runtime settings."""
        s = self.service
        return {
            "time_scale": s.time_scale,
            "token_ttl": s.token_ttl,
            "store_quota": s.store_quota,
            "job_overhead": s.job_overhead,
            "throughput": s.throughput,
            "same_region": s.same_region,
            "faults": self._faults.faults.to_json(),
            "unknowns": s.unknowns.to_json(),
        }

    async def stats(self) -> dict[str, Any]:
        """Counters, jobs and references (the same JSON as ``GET /_emulator/stats``)."""
        out = self.service.stats()
        counters = self._publisher.counters if self._publisher is not None else {}
        out["events"] = {k: counters.get(k, 0) for k in EVENT_COUNTERS}
        out["import_slots"] = self._import_slots_stats()
        out["config"] = self.config()
        out["sts"] = self.sts.stats()
        return out

    def _import_slots_stats(self) -> dict[str, Any]:
        quota, held = self._import_slots()
        places = sorted({(s.account, s.region) for s in self.service.stores.values()})
        return {
            "quota": quota,
            "other_imports": held,
            "other_imports_left": self._faults.other_imports_left(),
            "reference_imports": [
                {"account": a, "region": r, "running": self.service.running_imports(a, r)}
                for a, r in places
            ],
        }

    async def reset(self, *, settings: bool = False) -> None:
        """Drop all state (stores, jobs, references, tokens, counters).

        Objects in S3 are left alone. Fault generators are reseeded and buckets refilled.

        Args:
            settings: also restore the settings given at construction (undoing
                :meth:`configure`); by default the current settings are kept.
        """
        await self.service.reset()
        self._bucket_regions.clear()  # a bucket may be made again, in another Region
        self.sts.reset()
        if self._publisher is not None:
            self._publisher.reset()
        if settings:
            self.configure(**self._initial)
        self._faults.restart_other_imports()  # also reseeds the generator, refills the buckets

    def forget_tokens(self) -> int:
        """Forget every clientToken, as if their time to live had passed."""
        return self.service.forget_tokens()

    def add_references(
        self, store_id: str, names: Iterable[str], *, source_prefix: str = "s3://elsewhere/"
    ) -> int:
        """Put references in a store as if another client had imported them earlier (no
        ``creationJobId``): a store of 100,000 references in a second. Returns how many were
        added (names already in the store are skipped)."""
        return self.service.add_references(store_id, names, source_prefix=source_prefix)

    def cancel_job(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel an active import job from outside, as someone in the AWS console would.

        Sources already finished keep their references; the others never run. Returns False
        when no such job is active.
        """
        return self.service.cancel_job(job_id, reason)

    def configure(
        self,
        *,
        faults: Faults | None = None,
        time_scale: float | None = None,
        token_ttl: float | None = None,
        store_quota: int | None = None,
        job_overhead: float | None = None,
        throughput: float | None = None,
        unknowns: Unknowns | None = None,
        same_region: bool | None = None,
    ) -> dict[str, Any]:
        """Change settings at runtime; returns the resulting :meth:`config`.

        Raises:
            ValueError: a value is out of range or of the wrong type; nothing is changed.
        """
        check_settings(
            time_scale=time_scale,
            token_ttl=token_ttl,
            store_quota=store_quota,
            job_overhead=job_overhead,
            throughput=throughput,
            same_region=same_region,
        )
        if faults is not None and not isinstance(faults, Faults):
            raise ValueError("faults must be a Faults")
        if unknowns is not None and not isinstance(unknowns, Unknowns):
            raise ValueError("unknowns must be an Unknowns")
        s = self.service
        if unknowns is not None:
            s.set_unknowns(unknowns)
        if faults is not None:
            self._faults.configure(faults)
        if time_scale is not None:
            s.time_scale = float(time_scale)
        if token_ttl is not None:
            s.token_ttl = float(token_ttl)
        if store_quota is not None:
            s.store_quota = int(store_quota)
        if job_overhead is not None:
            s.job_overhead = float(job_overhead)
        if throughput is not None:
            s.throughput = float(throughput)
        if same_region is not None:
            s.same_region = same_region
        return self.config()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_emulator/"):
            return await self._inspect(request)
        if self.sts.handles(request):
            return await self.sts.handle(request)
        found = match_route(request.method, request.path)
        if found is None:
            return _error(
                "UnknownOperationException", f"No operation at {request.method} {request.path}", 404
            )
        route, uri_params = found
        op = route.operation
        counters = self.service.counters
        counters.calls[op.name] += 1
        try:
            return await self._call(request, op, uri_params)
        except ApiError as exc:
            counters.errors[exc.code] += 1
            return _error(exc.code, exc.message)
        except _Dropped:
            if request.transport is not None:
                request.transport.abort()
            # Nothing can be sent any more; aiohttp sees the closed transport and moves on.
            raise asyncio.CancelledError from None

    async def _call(
        self, request: web.Request, op: Any, uri_params: dict[str, str]
    ) -> web.StreamResponse:
        caller = _caller(request)
        self.sts.saw(request, uri_params)
        inj = self._faults
        counters = self.service.counters
        if not inj.admit(caller.account, caller.region, op.name):
            counters.throttled[op.name] += 1
            raise ApiError("ThrottlingException", "Rate exceeded")
        targeted = inj.targets(op.name)
        if targeted:
            delay = inj.latency()
            if delay > 0:
                counters.faults["latency"] += 1
                await asyncio.sleep(delay)
            if inj.roll(inj.faults.p_drop):
                counters.faults["drop"] += 1
                raise _Dropped
            if inj.roll(inj.faults.p_500):
                counters.faults["internal_error"] += 1
                raise ApiError("InternalServerException", "Injected internal error")
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ApiError("ValidationException", "Request body is not valid JSON") from None
        try:
            params = parse_request(op, uri_params, request.query, body)
        except RequestValidationFailed as exc:
            raise ApiError("ValidationException", str(exc)) from None
        handler = getattr(self.service, _snake(op.name))
        result = handler(caller, params)
        if targeted:
            if inj.roll(inj.faults.p_drop_after):
                counters.faults["drop_after"] += 1
                raise _Dropped
            if inj.roll(inj.faults.p_timeout):
                counters.faults["timeout"] += 1
                raise ApiError(
                    "RequestTimeoutException", "Injected request timeout (the operation ran)"
                )
        payload = serialize(op.output_shape, result)
        return web.json_response(
            payload,
            status=int(op.http.get("responseCode", 200)),
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    async def _inspect(self, request: web.Request) -> web.StreamResponse:
        action = request.path.removeprefix("/_emulator/").strip("/")
        try:
            if action == "stats" and request.method == "GET":
                return web.json_response(await self.stats())
            if action == "config" and request.method == "GET":
                return web.json_response(self.config())
            if action == "config" and request.method == "POST":
                data = await request.json()
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                return web.json_response(self._configure_json(data))
            if action == "reset" and request.method == "POST":
                await self.reset(settings=request.query.get("settings", "") in ("1", "true"))
                return web.json_response({"reset": True})
            if action == "forget-tokens" and request.method == "POST":
                return web.json_response({"forgotten": self.forget_tokens()})
            if action == "cancel" and request.method == "POST":
                data = await request.json()
                if not isinstance(data, dict) or not isinstance(data.get("job_id"), str):
                    raise ValueError('expected {"job_id": "...", "reason": "..." (optional)}')
                reason = data.get("reason")
                if reason is not None and not isinstance(reason, str):
                    raise ValueError("reason must be a string")
                return web.json_response({"cancelled": self.cancel_job(data["job_id"], reason)})
            if action == "references" and request.method == "POST":
                return web.json_response({"added": self._add_references_json(await request.json())})
        except (ValueError, TypeError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        except KeyError as exc:
            return web.json_response({"message": f"no such store: {exc}"}, status=404)
        return web.json_response(
            {"message": f"unknown inspection call {request.method} {request.path}"}, status=404
        )

    def _add_references_json(self, data: object) -> int:
        """``{"store_id": "...", "count": N, "prefix": "name-"}``: N references named
        ``prefix0`` … put in the store as another client's (see :meth:`add_references`)."""
        if not isinstance(data, dict) or not isinstance(data.get("store_id"), str):
            raise ValueError('expected {"store_id": "...", "count": N, "prefix": "..."}')
        count, prefix = data.get("count"), data.get("prefix", "existing-")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1_000_000:
            raise ValueError("count must be an integer from 0 to 1,000,000")
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string")
        names = (f"{prefix}{i}" for i in range(count))
        return self.add_references(data["store_id"], names)

    def _configure_json(self, data: dict[str, Any]) -> dict[str, Any]:
        allowed = {
            "faults",
            "unknowns",
            "time_scale",
            "token_ttl",
            "store_quota",
            "job_overhead",
            "throughput",
            "same_region",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        faults = unknowns = None
        if data.get("faults") is not None:
            faults = Faults.from_json(data["faults"], base=self._faults.faults)
        if data.get("unknowns") is not None:
            unknowns = Unknowns.from_json(data["unknowns"], base=self.service.unknowns)
        return self.configure(
            faults=faults,
            unknowns=unknowns,
            time_scale=data.get("time_scale"),
            token_ttl=data.get("token_ttl"),
            store_quota=data.get("store_quota"),
            job_overhead=data.get("job_overhead"),
            throughput=data.get("throughput"),
            same_region=data.get("same_region"),
        )


def check_settings(
    *,
    time_scale: object,
    token_ttl: object,
    store_quota: object,
    job_overhead: object,
    throughput: object,
    same_region: object = None,
) -> None:
    """Refuse out-of-range settings (``None`` means "unchanged") with a ``ValueError``."""
    if time_scale is not None:
        check_number("time_scale", time_scale, low=0.0)
    if token_ttl is not None:
        check_number("token_ttl", token_ttl, low=0.0)
    if store_quota is not None:
        check_number("store_quota", store_quota, low=0, integer=True)
    if job_overhead is not None:
        check_number("job_overhead", job_overhead, low=0.0)
    if throughput is not None:
        check_number("throughput", throughput, above=0.0)
    if same_region is not None and not isinstance(same_region, bool):
        raise ValueError(f"same_region must be true or false, got {same_region!r}")


def client_kwargs(
    endpoints: dict[str, str], service: str = "omics", *, max_attempts: int | None = None
) -> dict[str, Any]:
    """Client keyword arguments for an emulator described by its endpoint JSON."""
    if service not in ("omics", "s3", "events", "sqs"):
        raise ValueError(f"the emulator serves 'omics', 's3', 'events' and 'sqs', not {service!r}")
    key = "events" if service == "sqs" else service
    if f"{key}_endpoint_url" not in endpoints:
        raise ValueError(f"this emulator has no {service} endpoint (it publishes no events)")
    options: dict[str, Any] = {"inject_host_prefix": False}
    if service == "s3":
        options["s3"] = {"addressing_style": "path"}
    if max_attempts is not None:
        options["retries"] = {"mode": "standard", "total_max_attempts": max_attempts}
    return {
        "endpoint_url": endpoints[f"{key}_endpoint_url"],
        "region_name": endpoints["region"],
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
        "config": Config(**options),
    }


def _caller(request: web.Request) -> Caller:
    auth = request.headers.get("Authorization", "")
    m = _CREDENTIAL.search(auth)
    if not auth.startswith("AWS4-HMAC-SHA256") or m is None:
        raise ApiError("AccessDeniedException", "Missing or malformed SigV4 Authorization header")
    access_key, _date, region, _service = m.groups()
    caller = Caller(account=account_for(access_key), region=region)
    if access_key.startswith(DENIED_KEY_PREFIX):
        raise ApiError(
            "AccessDeniedException",
            f"User: arn:aws:iam::{caller.account}:user/emulator is not authorized to perform "
            "this action (no omics permissions)",
        )
    return caller


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _error(code: str, message: str, status: int | None = None) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status if status is not None else error_status(code),
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )
