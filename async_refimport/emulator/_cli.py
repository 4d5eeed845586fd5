"""``refimport emulator``: serve the emulator until SIGINT/SIGTERM.

Prints one JSON line ``{"omics_endpoint_url": ..., "s3_endpoint_url": ..., "region": ...}``
on stdout once it serves requests, then runs until interrupted and exits 0. With ``--env-file``,
the environment that makes AWS clients its account is written first, for a shell to load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

from ._environment import CONFLICTING
from ._extra import MissingExtraError, require_extra
from ._faults import Faults
from ._server import Emulator, check_settings
from ._service import DEFAULT_TOKEN_TTL
from ._unknowns import BUSY_CODES, PROGRESS_MODES, Unknowns


def _latency(text: str) -> float | tuple[float, float]:
    if ":" in text:
        low, high = text.split(":", 1)
        return (float(low), float(high))
    return float(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``refimport emulator``."""
    p = argparse.ArgumentParser(
        prog="refimport emulator",
        description="Run a local AWS HealthOmics reference-store emulator (with an embedded S3).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free port)")
    p.add_argument("--region", default="us-east-1", help="Region reported for clients")
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplier of simulated durations"
    )
    p.add_argument(
        "--store-quota", type=int, default=1, help="reference stores per account and Region"
    )
    p.add_argument(
        "--token-ttl",
        type=float,
        default=DEFAULT_TOKEN_TTL,
        help="seconds a clientToken is remembered",
    )
    p.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="read sources from this S3 instead of an embedded one",
    )
    p.add_argument(
        "--tps", type=float, default=5.0, help="calls/s per account, Region and operation (0: off)"
    )
    p.add_argument(
        "--p-timeout", type=float, default=0.0, help="probability of 408 after the call ran"
    )
    p.add_argument(
        "--p-500", type=float, default=0.0, help="probability of 500 before the call runs"
    )
    p.add_argument("--p-drop", type=float, default=0.0, help="probability of a dropped connection")
    p.add_argument(
        "--p-drop-after",
        type=float,
        default=0.0,
        help="probability of a dropped connection after the call ran",
    )
    p.add_argument(
        "--latency", type=_latency, default=0.0, help="added seconds per call: S or LOW:HIGH"
    )
    p.add_argument(
        "--fault-operations",
        default=None,
        help="comma-separated operations the random faults apply to (default: all)",
    )
    p.add_argument(
        "--busy-code",
        choices=sorted(BUSY_CODES),
        default="ServiceQuotaExceededException",
        help="error refusing a Start while the store has an active job (undocumented by AWS)",
    )
    p.add_argument(
        "--busy-message",
        default=None,
        metavar="TEXT",
        help="message of that refusal, in any words ({store} and {job} are replaced by the ids; "
        "default: the code's own wording)",
    )
    p.add_argument(
        "--import-quota",
        type=int,
        default=None,
        metavar="N",
        help="concurrent import jobs per account and Region, all its stores and read-set imports "
        "together; a Start beyond it is refused 402 (default: no limit)",
    )
    p.add_argument(
        "--other-imports",
        type=int,
        default=0,
        metavar="K",
        help="import-quota slots held by imports the emulator does not run (read-set imports)",
    )
    p.add_argument(
        "--other-imports-for",
        type=float,
        default=None,
        metavar="S",
        help="real seconds the other imports hold their slots, from start-up (default: for good)",
    )
    p.add_argument(
        "--get-lag",
        type=float,
        default=0.0,
        help="emulated seconds after a Start during which Get answers 404 for the new job",
    )
    p.add_argument(
        "--list-lag",
        type=float,
        default=0.0,
        help="emulated seconds before a new job or reference shows in List calls",
    )
    p.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="sequential",
        help="per-source statuses: one after another, or all together at the job's end",
    )
    p.add_argument(
        "--p-cancel",
        type=float,
        default=0.0,
        help="probability that a job is cancelled from outside half-way",
    )
    p.add_argument(
        "--cancel-events",
        action="store_true",
        help="send events for CANCELLING and CANCELLED too (AWS documents none for them)",
    )
    p.add_argument(
        "--no-events",
        action="store_true",
        help="publish no job status events to EventBridge",
    )
    p.add_argument(
        "--events-endpoint-url",
        default=None,
        help="EventBridge to publish job status events to (default: the embedded moto server)",
    )
    p.add_argument(
        "--p-event-drop", type=float, default=0.0, help="probability that an event is lost"
    )
    p.add_argument(
        "--event-delay",
        type=_latency,
        default=0.0,
        help="seconds before an event is delivered: S or LOW:HIGH",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of fault draws and ids")
    p.add_argument(
        "--same-region",
        action="store_true",
        help="enforce HealthOmics' same-Region rule: a source in a bucket of another Region than "
        "its store fails (default: off, one bucket serves stores of every Region)",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="once serving, write the environment that makes AWS clients this emulator's account "
        "(its key, Region, endpoints) as sh lines, to load with '. FILE'; removed on exit",
    )
    p.add_argument("--log-level", default="WARNING", help="log level of the emulator's own logs")
    return p


def _write_env_file(path: Path, emu: Emulator) -> None:
    """Write ``emu``'s environment as sh lines, whole or not at all (a reader polling for the file
    never sees half of it)."""
    lines = [f"unset {' '.join(CONFLICTING)}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in emu.environ(base={}).items()]
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _configure_logging(level: str) -> None:
    # The entry point, not the library, owns logging: the emulator's loggers are stdlib loggers
    # under "async_refimport.emulator".
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("werkzeug").setLevel(max(numeric, logging.WARNING))


async def _serve(args: argparse.Namespace, faults: Faults, unknowns: Unknowns) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Emulator(
            host=args.host,
            port=args.port,
            region=args.region,
            time_scale=args.time_scale,
            faults=faults,
            store_quota=args.store_quota,
            token_ttl=args.token_ttl,
            s3_endpoint_url=args.s3_endpoint_url,
            seed=args.seed,
            unknowns=unknowns,
            events=not args.no_events,
            events_endpoint_url=args.events_endpoint_url,
            same_region=args.same_region,
        ) as emu:
            if args.env_file is not None:
                # Before the JSON line: whoever waits for that line finds the file complete.
                _write_env_file(args.env_file, emu)
            try:
                print(json.dumps(emu.endpoints()), flush=True)
                await stop.wait()
            finally:
                if args.env_file is not None:
                    args.env_file.unlink(missing_ok=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """Run ``refimport emulator`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        # Checked before anything starts, so a bad value is one line and exit code 2.
        faults, unknowns = _faults(args), _unknowns(args)
        check_settings(
            time_scale=args.time_scale,
            token_ttl=args.token_ttl,
            store_quota=args.store_quota,
            job_overhead=None,
            throughput=None,
        )
        if args.s3_endpoint_url is None:
            # The embedded S3 is moto's: without the extra, one line says what to install.
            require_extra()
    except (ValueError, MissingExtraError) as exc:
        print(f"refimport emulator: {exc}", file=sys.stderr)
        return 2
    _configure_logging(args.log_level)
    asyncio.run(_serve(args, faults, unknowns))
    return 0


def _faults(args: argparse.Namespace) -> Faults:
    ops = args.fault_operations
    return Faults(
        tps=args.tps or None,
        p_timeout=args.p_timeout,
        p_500=args.p_500,
        p_drop=args.p_drop,
        p_drop_after=args.p_drop_after,
        latency=args.latency,
        p_event_drop=args.p_event_drop,
        event_delay=args.event_delay,
        operations=frozenset(o.strip() for o in ops.split(",") if o.strip()) if ops else None,
        seed=args.seed,
        import_quota=args.import_quota,
        other_imports=args.other_imports,
        other_imports_for=args.other_imports_for,
    )


def _unknowns(args: argparse.Namespace) -> Unknowns:
    return Unknowns(
        busy_code=args.busy_code,
        get_lag=args.get_lag,
        list_lag=args.list_lag,
        progress=args.progress,
        p_cancel=args.p_cancel,
        seed=args.seed,
        busy_message=args.busy_message,
        cancel_events=args.cancel_events,
    )
