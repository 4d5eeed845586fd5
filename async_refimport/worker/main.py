"""``refimport worker``: a long-lived process taking work from a spool directory, HTTP and SQS.

::

    refimport worker --spool /var/spool/refimport --http-port 8470 \\
        --store-id 1234567890 --role-arn arn:aws:iam::123456789012:role/OmicsImport

One :class:`~async_refimport.Importer` serves every intake. The worker prints one JSON line on
stdout once it takes work (``{"http": "http://127.0.0.1:8470", "spool": ..., "pid": ...}``) and
logs JSON lines on stderr.

Shutdown is two-step: the first SIGTERM or SIGINT stops the intakes (``/readyz`` answers 503,
POSTs 503, the spool stops scanning), lets a Start call in flight finish and be journaled, and
exits 0; jobs still running at AWS are picked up by the next start on the same journal. If that
takes longer than ``--grace`` seconds, or a second signal arrives, the process exits at once,
which the write-ahead journal also survives.

This module is the shell: flags in (:mod:`.config`), the :class:`~.app.Worker` run under the
signal handlers, an exit code out. It also runs as ``python -m async_refimport.worker.main``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import anyio
import botocore.exceptions

from async_refimport._errors import RefImportError
from async_refimport._log import get_logger
from async_refimport._logconfig import configure_logging
from async_refimport._options import (
    ConfigError,
    log_option_sources,
    parse_with_defaults,
    verbosity,
)
from async_refimport.worker.app import Worker
from async_refimport.worker.config import (
    WorkerConfig,
    build_parser,
    config_from_args,
    has_intake,
    is_loopback,
)
from async_refimport.worker.intakes.http import TOKEN_ENV

__all__ = ["build_parser", "main"]

# Named, not __name__: this module also runs as __main__ (python -m async_refimport.worker.main).
log = get_logger("async_refimport.worker.main")


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
    """Run a worker until the first signal starts its shutdown."""
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


def _configure(parser: argparse.ArgumentParser, argv: list[str] | None) -> WorkerConfig:
    """Parse the flags, set up logging, and refuse a configuration that is not safe to serve.

    Exits through ``parser.error`` (status 2) on a usage error.
    """
    try:
        # The flags left out take their defaults from REFIMPORT_<FLAG>, then the config file.
        args = parse_with_defaults(parser, sys.argv[1:] if argv is None else argv, section="worker")
    except ConfigError as exc:
        parser.error(str(exc))
    if not has_intake(args):
        parser.error("give --spool DIR, --http-port P, --sqs-queue-url URL, or several")
    configure_logging(args.log_format, verbosity(args), log_level=args.log_level)
    log_option_sources(args)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if config.http_port is not None and config.token is None and not is_loopback(config.http_host):
        if not args.trusted_network:
            # Anyone who reaches the port could import into the stores with the worker's role.
            parser.error(
                f"--http-host {config.http_host!r} is reachable from other hosts: set "
                f"{TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), or pass "
                "--trusted-network if every host that can reach it may use it"
            )
        log.warning("worker.http_unauthenticated", host=config.http_host, hint=f"set {TOKEN_ENV}")
    return config


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refimport worker``.

    Args:
        argv: The flags (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 once stopped by a signal, 1 when the worker cannot start (a journal
        that cannot be opened, a port in use); usage errors exit 2.
    """
    config = _configure(build_parser(), argv)
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


def _sole_cause(exc: BaseException) -> BaseException:
    """The one exception inside (nested) task-group exception groups, if there is just one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    raise SystemExit(main())
