"""``refimport worker``: a long-lived process taking work from a spool directory, HTTP and SQS.

::

    refimport worker --spool /var/spool/refimport --http-port 8470 \\
        --store-id 1234567890 --role-arn arn:aws:iam::123456789012:role/OmicsImport

One :class:`~async_refimport.Importer` serves both intakes. The worker prints one JSON line on
stdout once it takes work (``{"http": "http://127.0.0.1:8470", "spool": ..., "pid": ...}``) and
logs JSON lines on stderr.

Shutdown is two-step: the first SIGTERM or SIGINT stops both intakes (``/readyz`` answers 503,
POSTs 503, the spool stops scanning), lets a Start call in flight finish and be journaled, and
exits 0; jobs still running at AWS are picked up by the next start on the same journal. If that
takes longer than ``--grace`` seconds, or a second signal arrives, the process exits at once,
which the write-ahead journal also survives.

For weeks-long runs the journal is compacted every ``--compact-interval`` seconds, forgetting
rows settled more than ``--retention`` days ago. Several workers may share one journal: each store
is driven by the one holding its lease, and a worker adopts the stores of one that died.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
import botocore.exceptions

from async_refimport._application import with_region
from async_refimport._errors import RefImportError
from async_refimport._log import get_logger
from async_refimport._logconfig import LEVELS, configure_logging
from async_refimport._metrics import WorkerMetrics
from async_refimport._pacing import PacingPolicy
from async_refimport.completion.events import EventsPolicy
from async_refimport.engine.importer import Importer, ImporterSettings
from async_refimport.journal.sqlite import default_journal_path
from async_refimport.manifest.reader import ManifestDefaults, RemoteLimits
from async_refimport.worker.intakes.http import TOKEN_ENV, HttpIntake
from async_refimport.worker.intakes.spool import Spool, SpoolOutcome
from async_refimport.worker.intakes.sqs import SqsOptions, SqsService
from async_refimport.worker.intakes.sqs import add_arguments as add_sqs_arguments
from async_refimport.worker.intakes.sqs import options_from_args as sqs_options_from_args

# Named, not __name__: this module also runs as __main__ (python -m async_refimport.worker.main).
log = get_logger("async_refimport.worker.main")

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything ``refimport worker`` is told on its command line.

    Each setting lives in one place: the engine's in ``settings`` (``--rescan-interval`` is
    ``settings.rescan_interval``), the worker's own here; the grace period is split once, by
    :func:`split_grace`.
    """

    spool: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    journal: Path | str | None = None
    defaults: ManifestDefaults = field(default_factory=ManifestDefaults)
    remote: RemoteLimits = field(default_factory=RemoteLimits)
    grace: float = 30.0
    retention_days: float = 30.0
    compact_interval: float = 3600.0
    scan_interval: float = 0.5
    owner: str | None = None
    token: str | None = None
    settings: ImporterSettings = field(default_factory=ImporterSettings)
    sqs: SqsOptions = field(default_factory=SqsOptions)


# After the first signal the worker has --grace seconds in all, then the hard stop exits. The HTTP
# server gets up to _HTTP_CLOSE_MAX of them to answer requests in flight; the Importer gets the
# rest, less _CLOSE_MARGIN for closing the journal, to finish a Start in flight and journal it.
_HTTP_CLOSE_MAX = 5.0
_CLOSE_MARGIN = 1.0
_MIN_IMPORTER_GRACE = 0.5


def split_grace(grace: float) -> tuple[float, float]:
    """How the grace period is spent: ``(importer shutdown_grace, HTTP close timeout)``."""
    http_close = min(_HTTP_CLOSE_MAX, grace / 4)
    return max(_MIN_IMPORTER_GRACE, grace - http_close - _CLOSE_MARGIN), http_close


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refimport worker",
        description="Run until stopped, importing manifests from a spool directory, HTTP and SQS.",
    )
    p.add_argument(
        "--spool", type=Path, help="spool directory (incoming/, processing/, done/, failed/)"
    )
    p.add_argument(
        "--http-host", default="127.0.0.1", help="HTTP intake interface (default 127.0.0.1)"
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="HTTP intake port (0: any free port; default: no HTTP)",
    )
    p.add_argument(
        "--journal",
        metavar="PATH|URL",
        default=None,
        help="journal: a SQLite file (default: $REFIMPORT_JOURNAL, else "
        "~/.local/state/refimport/journal.sqlite) or dynamodb://TABLE, shared by a fleet",
    )
    p.add_argument("--store-id", help="store for rows that name none")
    p.add_argument(
        "--allow-store",
        action="append",
        default=[],
        metavar="STORE_ID",
        help="a store that rows from the HTTP API and SQS may name (repeatable; with --store-id "
        "it is allowed too); without it, remote rows may name any store",
    )
    p.add_argument("--role-arn", help="IAM role for rows that name none")
    p.add_argument("--region", help="Region for rows that name none (default: AWS configuration)")
    p.add_argument(
        "--endpoint-url", help="HealthOmics endpoint for rows that name none (an emulator)"
    )
    p.add_argument("--profile", help="AWS profile for rows that name none")
    p.add_argument(
        "--grace", type=float, default=30.0, help="seconds to stop after SIGTERM (default 30)"
    )
    p.add_argument(
        "--retention",
        type=float,
        default=30.0,
        help="days finished rows stay in the journal (default 30)",
    )
    p.add_argument(
        "--compact-interval", type=float, default=3600.0, help="seconds between journal compactions"
    )
    p.add_argument("--scan-interval", type=float, default=0.5, help="seconds between spool scans")
    p.add_argument(
        "--rescan-interval",
        type=float,
        default=5.0,
        help="seconds between looks for work queued by other processes on the journal",
    )
    p.add_argument(
        "--max-sources-per-job", type=int, default=None, help="rows per import job (1..100)"
    )
    p.add_argument(
        "--api-rate", type=float, default=None, help="calls/s per operation and Region (default 5)"
    )
    p.add_argument(
        "--lease-ttl", type=float, default=None, help="seconds a store lease lasts unrenewed"
    )
    p.add_argument("--busy-wait", type=float, default=None, help="seconds to wait on a busy store")
    p.add_argument("--owner", default=None, help="this worker's name in store leases")
    p.add_argument(
        "--events-queue-url",
        metavar="URL",
        action="append",
        help="SQS queue fed with HealthOmics job status events by an EventBridge rule (repeat "
        "for each Region); polling becomes a sparse safety net",
    )
    p.add_argument(
        "--trusted-network",
        action="store_true",
        help=f"serve HTTP beyond loopback without {TOKEN_ENV} (every host reaching it may import)",
    )
    add_sqs_arguments(p)
    p.add_argument("--log-format", choices=("json", "console"), default="json")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=1,
        help="more logs (-v: debug); the worker logs info by default",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        help="level of the worker's own log lines (overrides -v and -q)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    settings = ImporterSettings()
    changes: dict[str, Any] = {}
    if args.max_sources_per_job is not None:
        changes["max_sources_per_job"] = args.max_sources_per_job
    if args.api_rate is not None:
        changes["pacing"] = replace(PacingPolicy(), rate=args.api_rate)
    if args.lease_ttl is not None:
        changes["lease_ttl"] = args.lease_ttl
    if args.busy_wait is not None:
        changes["busy_wait"] = args.busy_wait
    if args.events_queue_url:
        changes["events"] = EventsPolicy(queue_urls=tuple(args.events_queue_url))
    changes["rescan_interval"] = args.rescan_interval
    changes["shutdown_grace"], _ = split_grace(args.grace)
    # A service rides out a journal outage (it retries and reports not-ready); a run stops.
    changes["stop_on_journal_failure"] = False
    # Likewise a store that cannot be used as set up: tried again and again, not-ready meanwhile.
    changes["stop_on_setup_failure"] = False
    settings = replace(settings, **changes)
    return WorkerConfig(
        spool=args.spool,
        http_host=args.http_host,
        http_port=args.http_port,
        journal=args.journal,
        defaults=ManifestDefaults(
            store_id=args.store_id,
            role_arn=args.role_arn,
            region=args.region,
            endpoint_url=args.endpoint_url,
            profile=args.profile,
        ),
        remote=remote_limits(args.allow_store, args.store_id),
        grace=args.grace,
        retention_days=args.retention,
        compact_interval=args.compact_interval,
        scan_interval=args.scan_interval,
        owner=args.owner,
        token=os.environ.get(TOKEN_ENV) or None,
        settings=settings,
        sqs=sqs_options_from_args(args),
    )


def remote_limits(allowed: Sequence[str], store_id: str | None) -> RemoteLimits:
    """What rows from the HTTP API and SQS may set: the stores of ``--allow-store`` (and
    ``--store-id`` with them), or any store when none is given; never an endpoint or a profile."""
    if not allowed:
        return RemoteLimits()
    return RemoteLimits(stores=frozenset([*allowed, *([store_id] if store_id else [])]))


# -- the worker ---------------------------------------------------------------------------------


class Intake(Protocol):
    """A way work reaches the worker (spool directory, HTTP API, a queue...), saq/arq-style:
    built from an :class:`IntakeContext`, run by the worker in its task group until cancelled."""

    @property
    def ready(self) -> bool:
        """Taking work (``/readyz``)."""

    def describe(self) -> dict[str, Any]:
        """Keys of the worker's start-up line (``{"http": url}``)."""

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Report started once taking work, then run until cancelled."""


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What an intake is built from."""

    importer: Importer
    config: WorkerConfig
    metrics: WorkerMetrics
    defaults: ManifestDefaults
    ready: Callable[[], bool]


IntakeFactory = Callable[[IntakeContext], Intake]


def spool_intake(ctx: IntakeContext) -> Intake:
    """The spool directory of ``--spool``."""
    assert ctx.config.spool is not None

    def filed(outcome: SpoolOutcome) -> None:
        ctx.metrics.spool_files.labels(outcome.destination).inc()

    return Spool(
        ctx.config.spool,
        ctx.importer,
        ctx.defaults,
        scan_interval=ctx.config.scan_interval,
        on_filed=filed,
    )


def http_intake(ctx: IntakeContext) -> Intake:
    """The HTTP API of ``--http-host``/``--http-port``."""
    cfg = ctx.config
    assert cfg.http_port is not None
    _, close_timeout = split_grace(cfg.grace)
    return HttpIntake(
        ctx.importer,
        ctx.metrics,
        ctx.defaults,
        ctx.ready,
        host=cfg.http_host,
        port=cfg.http_port,
        token=cfg.token,
        close_timeout=close_timeout,
        remote=cfg.remote,
    )


def sqs_intake(ctx: IntakeContext) -> Intake:
    """The SQS queues of ``--sqs-queue-url`` and ``--results-queue-url``."""
    return SqsService(
        ctx.importer,
        ctx.config.sqs,
        ctx.defaults,
        registry=ctx.metrics.registry,
        remote=ctx.config.remote,
    )


def intakes_for(config: WorkerConfig) -> list[IntakeFactory]:
    """The intakes a configuration asks for."""
    factories: list[IntakeFactory] = []
    if config.spool is not None:
        factories.append(spool_intake)
    if config.http_port is not None:
        factories.append(http_intake)
    if config.sqs.enabled:
        factories.append(sqs_intake)
    return factories


class Worker:
    """Runs intakes and the maintenance around one Importer until :meth:`shutdown`.

    Args:
        config: The worker's settings.
        intakes: How to build each intake (default: those ``config`` asks for); each runs in the
            worker's task group for as long as the worker does.
    """

    def __init__(
        self, config: WorkerConfig, intakes: Sequence[IntakeFactory] | None = None
    ) -> None:
        self.config = config
        self.metrics = WorkerMetrics()
        self.importer: Importer | None = None
        self.intakes: list[Intake] = []
        self._factories = list(intakes_for(config) if intakes is None else intakes)
        self._stopping = False
        self._stop = anyio.Event()
        self.announced: dict[str, Any] = {}

    def ready(self) -> bool:
        imp = self.importer
        if self._stopping or imp is None or imp.stopping:
            return False
        if imp.setup_errors:
            # A store cannot be used as set up (its rows wait): fix the set-up; the log says how.
            return False
        if imp.journal_trouble:
            return False  # rows cannot be recorded now (a full disk ...): the log says why
        return all(intake.ready for intake in self.intakes)

    def shutdown(self) -> None:
        """Stop intake and the Importer (the first step of the two-step shutdown)."""
        self._stopping = True
        self._stop.set()

    async def run(self, *, announce: bool = True) -> None:
        cfg = self.config
        journal = cfg.journal or default_journal_path()
        async with Importer(
            journal,
            region=cfg.defaults.region,
            settings=cfg.settings,
            owner=cfg.owner,
        ) as imp:
            self.importer = imp
            ctx = IntakeContext(
                imp, cfg, self.metrics, with_region(cfg.defaults, imp.region), self.ready
            )
            self.intakes = [make(ctx) for make in self._factories]
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.metrics.consume, imp, name="metrics")
                for intake in self.intakes:
                    await tg.start(intake.run)
                tg.start_soon(self._maintain, imp, name="maintenance")
                self.announced = {"http": None, "spool": None}
                for intake in self.intakes:
                    self.announced.update(intake.describe())
                self.announced.update(journal=str(journal), pid=os.getpid())
                log.info("worker.ready", **self.announced)
                if announce:
                    print(json.dumps(self.announced), flush=True)
                await self._stop.wait()
                log.info("worker.stopping")
                imp.stop()
                tg.cancel_scope.cancel()
        log.info("worker.stopped")

    async def _maintain(self, imp: Importer) -> None:
        cfg = self.config
        next_compact = time.monotonic()
        while not imp.stopping:
            if time.monotonic() >= next_compact:
                older_than = time.time() - cfg.retention_days * DAY
                try:
                    removed = await imp.compact(older_than)
                except Exception as exc:  # a locked journal: try again next time
                    log.warning("journal.compact_failed", error=str(exc))
                else:
                    if removed:
                        log.info("journal.compacted", rows=removed)
                next_compact = time.monotonic() + cfg.compact_interval
            try:
                await self._adopt(imp)
            except Exception as exc:
                log.warning("worker.rescan_failed", error=str(exc))
            await anyio.sleep(cfg.settings.rescan_interval)

    async def _adopt(self, imp: Importer) -> None:
        # Rows another process queued on the shared journal, or left behind when it died, need
        # a lane here too: it waits for the store's lease and drives the store once it holds it
        # (lanes this process already has rescan the journal by themselves).
        if not imp.stopping:
            for store in await imp.adopt():
                log.info("worker.adopted_store", store_id=store.store_id, region=store.region)


def _install_hard_stop(grace: float) -> None:
    """Second step of shutdown: exit at once after ``grace`` seconds or on a second signal.

    The journal is written ahead, so an exit at any point leaves it consistent.
    """

    def hard_exit(reason: str) -> None:
        log.warning("worker.hard_exit", reason=reason)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    timer = threading.Timer(grace, hard_exit, args=("grace period over",))
    timer.daemon = True
    timer.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: hard_exit("second signal"))


async def _serve(config: WorkerConfig) -> None:
    worker = Worker(config)

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("worker.signal", signal=signal.Signals(signum).name)
                break
        _install_hard_stop(config.grace)
        worker.shutdown()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals)
        await worker.run()
        tg.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refimport worker``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.spool is None and args.http_port is None and args.sqs_queue_url is None:
        parser.error("give --spool DIR, --http-port P, --sqs-queue-url URL, or several")
    configure_logging(args.log_format, 0 if args.quiet else args.verbose, log_level=args.log_level)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if config.http_port is not None and config.token is None and not _loopback(config.http_host):
        if not args.trusted_network:
            # Anyone who reaches the port could import into the stores with the worker's role.
            parser.error(
                f"--http-host {config.http_host!r} is reachable from other hosts: set "
                f"{TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), or pass "
                "--trusted-network if every host that can reach it may use it"
            )
        log.warning("worker.http_unauthenticated", host=config.http_host, hint=f"set {TOKEN_ENV}")
    try:
        anyio.run(_serve, config)
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return 0
    except Exception as exc:
        cause = _sole_cause(exc)
        if not isinstance(cause, RefImportError | OSError | botocore.exceptions.ProfileNotFound):
            raise
        # A journal that cannot be opened, a port in use: say so in one line, not a traceback.
        log.error("worker.failed", error=str(cause))
        return 1
    return 0


def _loopback(host: str) -> bool:
    """Only this machine can connect (``''``, ``0.0.0.0`` and ``::`` mean every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _sole_cause(exc: BaseException) -> BaseException:
    """The one exception inside (nested) task-group exception groups, if there is just one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    raise SystemExit(main())
