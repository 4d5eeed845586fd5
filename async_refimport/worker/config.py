"""What ``refimport worker`` is told: its flags, parsed into one :class:`WorkerConfig`.

The parser is built from one small function per kind of flag (intakes, rows, lifecycle, engine,
access, SQS, logs), added in the order ``--help`` has always listed them.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from async_refimport._console import ExitCode
from async_refimport._logconfig import LogFormat
from async_refimport._options import add_config_option, add_log_options
from async_refimport._pacing import PacingPolicy
from async_refimport.completion.events import EventsPolicy
from async_refimport.engine.importer import ImporterSettings
from async_refimport.manifest.reader import ManifestDefaults, RemoteLimits
from async_refimport.worker.intakes.http import TOKEN_ENV
from async_refimport.worker.intakes.sqs.options import SqsOptions
from async_refimport.worker.intakes.sqs.options import add_arguments as add_sqs_arguments
from async_refimport.worker.intakes.sqs.options import options_from_args as sqs_options_from_args


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything ``refimport worker`` is told on its command line.

    Each setting lives in one place: the engine's in ``settings`` (``--rescan-interval`` is
    ``settings.rescan_interval``), the worker's own here; the grace period is split once, by
    :func:`split_grace`.

    Attributes:
        spool: The spool directory (None: no spool intake).
        http_host: The HTTP intake's interface.
        http_port: The HTTP intake's port (0: any free port; None: no HTTP intake).
        journal: A SQLite path or ``dynamodb://TABLE`` (None: the default SQLite file).
        defaults: Field values for rows that leave them out.
        remote: What rows from the HTTP API and SQS may set.
        grace: Seconds to stop after the first signal.
        retention_days: Days finished rows stay in the journal.
        compact_interval: Seconds between journal compactions.
        scan_interval: Seconds between spool scans.
        owner: This worker's name in store leases (None: one is made up).
        token: The bearer token of the HTTP API (None: none).
        settings: The engine's knobs.
        sqs: The SQS flags.
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
    """How the grace period is spent.

    Args:
        grace: Seconds from the first signal to the hard stop.

    Returns:
        ``(importer shutdown_grace, HTTP close timeout)``.
    """
    http_close = min(_HTTP_CLOSE_MAX, grace / 4)
    return max(_MIN_IMPORTER_GRACE, grace - http_close - _CLOSE_MARGIN), http_close


# -- the parser, one kind of flag at a time --------------------------------------------------------


def _add_intake_flags(p: argparse.ArgumentParser) -> None:
    """Where work comes from: the spool directory and the HTTP API."""
    p.add_argument(
        "--spool", type=Path, help="spool directory (incoming/, processing/, done/, failed/)"
    )
    p.add_argument(
        "--http-host", default="127.0.0.1", help="HTTP intake interface (default 127.0.0.1)"
    )
    p.add_argument(
        "--http-port",
        type=port_number,
        default=None,
        help="HTTP intake port (0: any free port; default: no HTTP)",
    )


def port_number(text: str) -> int:
    """A TCP port as ``--http-port`` takes it.

    Args:
        text: The flag's value.

    Returns:
        The port, 0 to 65535 (0: any free port).

    Raises:
        argparse.ArgumentTypeError: not a whole number in that range (one usage line, exit 2).
    """
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: give 0 to 65535 (0: any free)")
    return port


def _add_row_flags(p: argparse.ArgumentParser) -> None:
    """The journal, and the field values of rows that leave them out."""
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


def _add_lifecycle_flags(p: argparse.ArgumentParser) -> None:
    """Shutdown, journal compaction and how often the worker looks for work."""
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


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    """The engine's knobs: jobs, pacing, leases and completion events."""
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


def _add_access_flags(p: argparse.ArgumentParser) -> None:
    """Who may reach the HTTP API."""
    p.add_argument(
        "--trusted-network",
        action="store_true",
        help=f"serve HTTP beyond loopback without {TOKEN_ENV} (every host reaching it may import)",
    )


def _add_log_flags(p: argparse.ArgumentParser) -> None:
    """The worker's log lines on stderr: JSON lines at info by default; ``-v``, ``-vv`` and
    ``-q`` mean what they mean for every command."""
    add_log_options(p, log_format=LogFormat.JSON, default_verbosity=1)


#: What the worker's exit codes mean (the numbers are :class:`ExitCode`'s).
EXIT_CODES = {
    ExitCode.OK: "stopped by SIGTERM or SIGINT (jobs still running at AWS are picked up by the "
    "next start on the same journal)",
    ExitCode.FAILED_ROWS: "the worker could not start: a journal that cannot be opened, a port "
    "in use (one log line says which)",
    ExitCode.INVALID_INPUT: "usage or configuration error (a flag, REFIMPORT_<OPTION> or the "
    "config file): nothing started",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``refimport worker`` (also read by ``refimport completion``).

    Returns:
        A new parser; :func:`config_from_args` turns what it parses into a :class:`WorkerConfig`.
    """
    p = argparse.ArgumentParser(
        prog="refimport worker",
        description="Run until stopped, importing manifests from a spool directory, HTTP and SQS.",
        epilog=exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_intake_flags(p)
    _add_row_flags(p)
    _add_lifecycle_flags(p)
    _add_engine_flags(p)
    _add_access_flags(p)
    add_sqs_arguments(p)
    add_config_option(p)
    _add_log_flags(p)
    return p


def exit_codes_text() -> str:
    """The ``exit codes:`` list ``refimport worker --help`` ends with, one code a line."""
    lines = ["exit codes:"]
    for code in sorted(EXIT_CODES):
        lines += textwrap.wrap(
            EXIT_CODES[code],
            width=92,
            initial_indent=f"  {int(code):<4} ",
            subsequent_indent="       ",
        )
    return "\n".join(lines)


# -- from flags to a configuration ----------------------------------------------------------------


def settings_from_args(args: argparse.Namespace) -> ImporterSettings:
    """The engine's settings from parsed flags, tuned for a service.

    Args:
        args: What :func:`build_parser` parsed.

    Returns:
        The defaults with every flag given applied; a service rides out journal outages and
        stores that cannot be used as set up (it retries and reports not-ready), where a run stops.

    Raises:
        ValueError: a flag's value is out of range.
    """
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
    return replace(ImporterSettings(), **changes)


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    """The worker's configuration from parsed flags (and ``$REFIMPORT_WORKER_TOKEN``).

    Args:
        args: What :func:`build_parser` parsed.

    Returns:
        The configuration.

    Raises:
        ValueError: a flag's value is out of range.
    """
    settings = settings_from_args(args)
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
    """What rows from the HTTP API and SQS may set.

    Args:
        allowed: The stores of ``--allow-store``.
        store_id: The store of ``--store-id``, allowed too when ``allowed`` is given.

    Returns:
        Limits naming those stores, or any store when ``allowed`` is empty; never an endpoint
        or a profile.
    """
    if not allowed:
        return RemoteLimits()
    return RemoteLimits(stores=frozenset([*allowed, *([store_id] if store_id else [])]))


def has_intake(args: argparse.Namespace) -> bool:
    """Whether the flags ask for at least one intake.

    Args:
        args: What :func:`build_parser` parsed.

    Returns:
        True when ``--spool``, ``--http-port`` or ``--sqs-queue-url`` is given.
    """
    return not (args.spool is None and args.http_port is None and args.sqs_queue_url is None)


def is_loopback(host: str) -> bool:
    """Whether only this machine can connect to ``host``.

    Args:
        host: An interface, as given to ``--http-host``.

    Returns:
        True for ``localhost`` and loopback addresses; False for ``''``, ``0.0.0.0`` and ``::``
        (every interface) and for host names, which may resolve to any interface.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface
