"""The ``refimport`` command: import manifests, watch them, report on them, try it all in a demo.

Subcommands: ``import``, ``status``, ``report``, ``demo``, plus ``emulator`` and ``worker``, which
hand their arguments to their own modules. Exit codes: 0 every row imported or already present,
1 some rows failed (or were skipped as invalid), 2 usage or manifest errors (nothing sent),
130 interrupted (re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from rich import box
from rich.console import Console
from rich.table import Table

from ._errors import JournalError, ManifestError, RefImportError, RequestValidationError
from ._journal import JobState, default_journal_path, opened_journal
from ._logconfig import LEVELS, configure_logging
from ._manifest import FORMATS, ManifestDefaults, format_error, read_manifest
from ._models import MAX_SOURCES_PER_JOB, ImportRequest, RowResult, RowState
from ._progress import ImportProgress
from ._report import (
    REPORT_FORMATS,
    json_document,
    render_csv,
    render_html,
    render_json,
    report_item,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DESCRIPTION = """\
Bulk, crash-safe imports of reference genomes (FASTA files in S3) into AWS HealthOmics
reference stores. Every row of a manifest ends imported exactly once, or failed with a reason;
progress is journaled, so an interrupted run resumes where it stopped."""

_EPILOG = """\
exit codes: 0 all rows imported or already present · 1 some rows failed or were skipped ·
2 usage or manifest error (nothing sent) · 130 interrupted (run the same command again to resume)

Try it without an AWS account: refimport demo"""


def _journal_help() -> str:
    return (
        "journal recording every row and job: a SQLite file "
        f"(default: $REFIMPORT_JOURNAL or {_display_path(default_journal_path())}) "
        "or dynamodb://TABLE, shared by a fleet"
    )


def _display_path(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if text.startswith(home + os.sep) else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refimport",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    imp = sub.add_parser(
        "import",
        help="import the references listed in a manifest (CSV, TSV or JSON Lines)",
        description=(
            "Validate the whole manifest, then import every row, packing up to "
            "--max-sources-per-job rows into each import job, one job at a time per store. "
            "Running the same command again resumes from the journal: finished rows are not "
            "sent again, failed rows are retried. Ctrl-C once stops starting jobs and exits "
            "cleanly; twice exits at once."
        ),
        epilog=(
            "manifest columns: source_file, name (required); description; tags (JSON object or "
            "k=v;k2=v2); store_id, role_arn, region (override the flags for that row).\n"
            "AWS configuration: the standard credentials chain, AWS_PROFILE, AWS_REGION / "
            "AWS_DEFAULT_REGION and AWS_ENDPOINT_URL_OMICS are honoured.\n\n" + _EPILOG
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("manifest", metavar="MANIFEST", type=Path, help="the manifest file")
    imp.add_argument("--store-id", metavar="ID", help="reference store for rows naming none")
    imp.add_argument(
        "--role-arn",
        metavar="ARN",
        help="IAM service role HealthOmics assumes to read the sources, for rows naming none",
    )
    imp.add_argument(
        "--region", metavar="R", help="Region for rows naming none (default: AWS_REGION, profile)"
    )
    imp.add_argument("--profile", metavar="P", help="AWS profile (default: AWS_PROFILE)")
    imp.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="HealthOmics endpoint, e.g. an emulator (default: AWS_ENDPOINT_URL_OMICS)",
    )
    imp.add_argument("--journal", metavar="PATH|URL", help=_journal_help())
    imp.add_argument(
        "--max-sources-per-job",
        metavar="N",
        type=int,
        default=MAX_SOURCES_PER_JOB,
        help=f"rows packed into one import job, 1..{MAX_SOURCES_PER_JOB} (default: %(default)s)",
    )
    imp.add_argument(
        "--format", choices=FORMATS, help="manifest format (default: from the file extension)"
    )
    imp.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (summary and every row) on stdout instead of the table",
    )
    imp.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, check which names already exist, print the plan; start no job",
    )
    imp.add_argument(
        "--skip-invalid",
        action="store_true",
        help="import the valid rows even if others are invalid (the run then exits 1)",
    )
    _add_log_options(imp)
    imp.set_defaults(handler=_cmd_import)

    st = sub.add_parser(
        "status",
        help="rows per store and state, active jobs and the last errors, from the journal",
        description="Show what the journal knows: rows per store and state, jobs still "
        "active, and the most recent failures. Reads the journal only; calls no AWS API.",
    )
    st.add_argument("--journal", metavar="PATH|URL", help=_journal_help())
    st.add_argument("--json", action="store_true", help="print JSON instead of tables")
    st.add_argument("--region", metavar="R", help="Region of a DynamoDB journal")
    st.set_defaults(handler=_cmd_status)

    rep = sub.add_parser(
        "report",
        help="every row with its outcome, as CSV, JSON or a self-contained HTML page",
        description="Write a report of every row in the journal. The HTML report shows the "
        "summary, a timeline of import jobs per store (where the time went) and the failures.",
    )
    rep.add_argument("--journal", metavar="PATH|URL", help=_journal_help())
    rep.add_argument(
        "--format", choices=REPORT_FORMATS, default="html", help="default: %(default)s"
    )
    rep.add_argument("--region", metavar="R", help="Region of a DynamoDB journal")
    rep.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write to FILE (default: stdout)"
    )
    rep.set_defaults(handler=_cmd_report)

    jr = sub.add_parser(
        "journal",
        help="manage a shared journal (journal init dynamodb://TABLE)",
        description="Manage the journal a fleet of workers shares.",
    )
    jr_sub = jr.add_subparsers(dest="journal_command", metavar="ACTION", required=True)
    init = jr_sub.add_parser(
        "init",
        help="create the DynamoDB table of a shared journal (idempotent) and enable its TTL",
        description="Create the journal's DynamoDB table (on-demand billing, one index), wait "
        "until it is ACTIVE and enable TTL. Running it again changes nothing.",
    )
    init.add_argument("url", metavar="dynamodb://TABLE", help="the journal to create")
    init.add_argument("--region", metavar="R", help="Region (default: the standard chain)")
    init.add_argument("--profile", metavar="P", help="AWS profile (default: AWS_PROFILE)")
    init.set_defaults(handler=_cmd_journal_init)

    demo = sub.add_parser(
        "demo",
        help="try it locally: an emulated HealthOmics, a few hundred synthetic genomes",
        description="Start the embedded HealthOmics emulator with a compressed clock, upload "
        "synthetic genomes (and two broken ones) to its S3, import them through the real "
        "engine with the progress display, and write an HTML report. No AWS account needed.",
    )
    demo.add_argument(
        "--rows", metavar="N", type=int, default=300, help="genomes to import (default: 300)"
    )
    demo.add_argument(
        "--workdir",
        metavar="DIR",
        type=Path,
        default=Path("refimport-demo"),
        help="where the manifest, journal and report go (default: ./refimport-demo)",
    )
    demo.add_argument(
        "--time-scale",
        metavar="F",
        type=float,
        default=None,
        help="emulated seconds → real seconds (default: chosen to finish in under a minute)",
    )
    _add_log_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    # Delegated commands: their own parsers own their options (see main()).
    sub.add_parser(
        "emulator",
        help="run the local HealthOmics emulator (see: refimport emulator --help)",
        add_help=False,
    )
    sub.add_parser(
        "worker",
        help="long-lived worker: spool directory and HTTP intake (see: refimport worker --help)",
        add_help=False,
    )
    return parser


def _add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="log lines on stderr as console text or JSON (default: %(default)s)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging (-v info, -vv debug, -vvv also botocore); secrets are always masked",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="errors only: no warnings, no progress display",
    )
    p.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        help="level of refimport's own log lines (overrides -v and -q)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("async-refimport")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refimport``; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in ("emulator", "worker"):
        return _delegate(args_list[0], args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        _err().print("[yellow]Interrupted.[/] Run the same command again to resume.")
        return EXIT_INTERRUPTED
    except JournalError as exc:
        _err().print(f"[red]error:[/] journal: {exc}", markup=True)
        return EXIT_USAGE
    except RefImportError as exc:
        _err().print(f"[red]error:[/] {exc}")
        return EXIT_FAILED
    except OSError as exc:  # an unreadable manifest, an unwritable journal directory ...
        _err().print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    return code


def _delegate(command: str, argv: list[str]) -> int:
    if command == "emulator":
        try:
            from .emulator._cli import main as emulator_main
        except ImportError as exc:
            _err().print(
                f"[red]error:[/] the emulator needs the 'emulator' extra "
                f"(pip install 'async-refimport[emulator]'): {exc}"
            )
            return EXIT_USAGE
        return int(emulator_main(argv) or 0)
    if importlib.util.find_spec("async_refimport._worker") is None:
        _err().print("[red]error:[/] the worker is not part of this installation")
        return EXIT_USAGE
    from ._worker import main as worker_main

    return int(worker_main(argv) or 0)


def _err() -> Console:
    # Messages are not wrapped by rich: a terminal wraps them, and log files keep whole lines.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped or redirected: rich would assume 80 columns and truncate the tables.
        console.width = max(console.width, 120)
    return console


# -- import ---------------------------------------------------------------------------------------


def _resolve_region(explicit: str | None, profile: str | None) -> str | None:
    if explicit:
        return explicit
    env = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if env:
        return env
    import botocore.session

    try:
        configured = botocore.session.Session(profile=profile).get_config_variable("region")
    except Exception:  # an unknown profile: reported later, by the credentials chain
        return None
    return str(configured) if configured else None


def _resolve_endpoint(explicit: str | None) -> str | None:
    # botocore would read these itself, but then prefix the host with "control-storage-";
    # passing the URL explicitly lets the gateway turn host prefixing off for it.
    return (
        explicit
        or os.environ.get("AWS_ENDPOINT_URL_OMICS")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


@dataclass(slots=True)
class ImportOutcome:
    """What an import run ended with."""

    results: list[RowResult]
    stopped: bool = False


def _configure_logging(args: argparse.Namespace, *, shift: int = 0) -> None:
    verbosity = -1 if args.quiet else args.verbose + shift
    configure_logging(args.log_format, verbosity, log_level=args.log_level)


def _cmd_import(args: argparse.Namespace) -> int:
    _configure_logging(args)
    err = _err()
    if not 1 <= args.max_sources_per_job <= MAX_SOURCES_PER_JOB:
        err.print(f"[red]error:[/] --max-sources-per-job must be 1..{MAX_SOURCES_PER_JOB}")
        return EXIT_USAGE
    profile = args.profile or os.environ.get("AWS_PROFILE") or None
    region = _resolve_region(args.region, profile)
    defaults = ManifestDefaults(
        store_id=args.store_id,
        role_arn=args.role_arn,
        region=region,
        endpoint_url=_resolve_endpoint(args.endpoint_url),
        profile=profile,
    )
    try:
        manifest = read_manifest(args.manifest, defaults, format=args.format)
    except ManifestError as exc:
        for e in exc.errors:
            err.print(format_error(e), markup=False)
        return EXIT_USAGE
    skipped = 0
    if manifest.errors:
        for e in manifest.errors:
            err.print(format_error(e), markup=False)
        bad_rows = len({line for line in manifest.invalid_lines if line > 1})
        if not args.skip_invalid:
            err.print(
                f"[red]{len(manifest.errors)} problem(s) in {bad_rows} row(s) of "
                f"{args.manifest}; nothing was sent.[/] Fix them, or pass --skip-invalid "
                "to import the valid rows."
            )
            return EXIT_USAGE
        skipped = bad_rows
        err.print(f"[yellow]Skipping {skipped} invalid row(s); importing the other rows.[/]")
    requests = manifest.requests
    journal = args.journal or default_journal_path()
    if args.dry_run:
        return anyio.run(_dry_run, requests, region, args.max_sources_per_job, args.json)
    outcome = run_import(
        requests,
        journal=journal,
        region=region,
        max_sources_per_job=args.max_sources_per_job,
    )
    if outcome is None:
        return EXIT_USAGE
    return _finish(outcome, json_output=args.json, journal=journal, skipped=skipped)


def run_import(
    requests: Sequence[ImportRequest],
    *,
    journal: str | Path,
    region: str | None,
    max_sources_per_job: int = MAX_SOURCES_PER_JOB,
    settings: Any = None,
    live: bool | None = None,
) -> ImportOutcome | None:
    """Import ``requests`` with the progress display and Ctrl-C handling (None: invalid input)."""
    try:
        return anyio.run(_import, requests, journal, region, max_sources_per_job, settings, live)
    except RequestValidationError as exc:
        for e in exc.errors:
            _err().print(str(e), markup=False)
        return None


async def _import(
    requests: Sequence[ImportRequest],
    journal: str | Path,
    region: str | None,
    max_sources_per_job: int,
    settings: Any,
    live: bool | None,
) -> ImportOutcome:
    from ._importer import Importer

    err = _err()
    progress = ImportProgress(err, live=live)
    async with Importer(
        journal=journal, region=region, max_sources_per_job=max_sources_per_job, settings=settings
    ) as imp:
        async with imp.subscribe() as events, anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, imp, err)
            ids = await imp.submit(requests)
            with progress:
                progress.set_rows(await imp.results(ids))
                tg.start_soon(progress.run, events)
                results = await imp.wait(ids)
            tg.cancel_scope.cancel()
        stopped = imp.stopping and not all(r.state.is_final for r in results)
        if stopped:
            err.print(
                "[yellow]Stopping:[/] finishing the request in flight; jobs already running "
                "at AWS are picked up by the next run."
            )
    return ImportOutcome(results, stopped)


async def _watch_signals(imp: Any, err: Console) -> None:
    first_at: float | None = None
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            now = time.monotonic()
            if first_at is not None and now - first_at < 0.5:
                # One keypress can arrive twice (to the process and to its group, e.g. under
                # `timeout` or `make`): a deliberate second Ctrl-C comes later.
                continue
            if first_at is not None:
                # Second signal: leave now. The journal is written ahead, so this is as safe as a
                # crash; the next run recovers the job that was being started.
                sys.stderr.write("\nrefimport: exiting now; re-run the same command to resume.\n")
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            first_at = now
            err.print(
                "\n[yellow]Interrupted:[/] no new jobs will be started; "
                "press Ctrl-C again to exit at once."
            )
            imp.stop()


def _finish(outcome: ImportOutcome, *, json_output: bool, journal: str | Path, skipped: int) -> int:
    results = outcome.results
    failed = sum(1 for r in results if r.state is RowState.FAILED)
    if json_output:
        doc = json_document(results)
        if skipped:
            doc["summary"]["skipped_invalid"] = skipped
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        print_summary(results, _out(), skipped=skipped)
    err = _err()
    if outcome.stopped:
        pending = sum(1 for r in results if not r.state.is_final)
        err.print(
            f"[yellow]Stopped with {pending} row(s) unfinished.[/] "
            "Run the same command again to resume (journal: "
            f"{_display_path(Path(journal)) if isinstance(journal, Path) else journal})."
        )
        return EXIT_INTERRUPTED
    if failed:
        err.print(
            f"[red]{failed} row(s) failed.[/] See `refimport report --journal {journal} "
            "--format html -o report.html`; re-running the same command retries them."
        )
    return EXIT_FAILED if failed or skipped else EXIT_OK


def print_summary(results: Sequence[RowResult], console: Console, *, skipped: int = 0) -> None:
    """The summary table of an import (per store), then the failures."""
    per_store: dict[tuple[str, str], Counter[RowState]] = {}
    jobs: dict[tuple[str, str], set[str]] = {}
    for r in results:
        key = (r.store_id, r.region)
        per_store.setdefault(key, Counter())[r.state] += 1
        if r.job_id:
            jobs.setdefault(key, set()).add(r.job_id)
    table = Table(
        title="refimport summary",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("Store", no_wrap=True, min_width=10)
    table.add_column("Region", no_wrap=True)
    # Short headers: the table must fit 80 columns (CI logs, narrow terminals) without truncation.
    for col in ("Rows", "Imported", "Present", "Failed", "Pending", "Jobs"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    total: Counter[RowState] = Counter()
    for (store_id, region), c in sorted(per_store.items()):
        total.update(c)
        table.add_row(
            store_id,
            region,
            str(sum(c.values())),
            f"[green]{c[RowState.IMPORTED]}[/]",
            str(c[RowState.ALREADY_PRESENT]),
            f"[red]{c[RowState.FAILED]}[/]" if c[RowState.FAILED] else "0",
            str(c[RowState.QUEUED] + c[RowState.SUBMITTED]),
            str(len(jobs.get((store_id, region), ()))),
        )
    if len(per_store) > 1:
        table.add_section()
        table.add_row(
            "[bold]all[/]",
            "",
            str(sum(total.values())),
            str(total[RowState.IMPORTED]),
            str(total[RowState.ALREADY_PRESENT]),
            str(total[RowState.FAILED]),
            str(total[RowState.QUEUED] + total[RowState.SUBMITTED]),
            str(sum(len(j) for j in jobs.values())),
        )
    console.print(table)
    failures = [r for r in results if r.state is RowState.FAILED]
    if failures:
        ft = Table(title=f"failures ({len(failures)})", title_justify="left")
        ft.add_column("Store")
        ft.add_column("Name")
        ft.add_column("Reason")
        for r in failures[:20]:
            ft.add_row(r.store_id, r.name, r.message or "")
        if len(failures) > 20:
            ft.add_row("…", f"{len(failures) - 20} more", "see `refimport report`")
        console.print(ft)
    if skipped:
        console.print(f"[yellow]{skipped} invalid row(s) skipped.[/]")


async def _dry_run(
    requests: Sequence[ImportRequest],
    region: str | None,
    max_sources_per_job: int,
    json_output: bool,
) -> int:
    from ._importer import Importer

    # A throw-away journal: the real one might hold unfinished work, which an Importer opened on
    # it would resume, and a dry run must not start anything.
    with tempfile.TemporaryDirectory(prefix="refimport-dry-run-") as tmp:
        async with Importer(
            journal=Path(tmp) / "journal.sqlite",
            region=region,
            max_sources_per_job=max_sources_per_job,
        ) as imp:
            try:
                plans = await imp.plan(requests)
            except RefImportError as exc:
                _err().print(f"[red]error:[/] {exc}", markup=True)
                return EXIT_FAILED
    if json_output:
        doc = {
            "stores": [
                {
                    "store_id": p.store.store_id,
                    "region": p.store.region,
                    "rows": p.rows,
                    "already_present": sorted(p.already_present),
                    "to_import": p.rows - len(p.already_present),
                    "jobs": p.jobs,
                }
                for p in plans
            ]
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_OK
    out = _out()
    table = Table(title="refimport plan (dry run: nothing was started)", title_justify="left")
    for col, justify in (
        ("Store", "left"),
        ("Region", "left"),
        ("Rows", "right"),
        ("Already present", "right"),
        ("To import", "right"),
        ("Jobs", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]  # literal values above
    for p in plans:
        table.add_row(
            p.store.store_id,
            p.store.region,
            str(p.rows),
            str(len(p.already_present)),
            str(p.rows - len(p.already_present)),
            str(p.jobs),
        )
    out.print(table)
    for p in plans:
        if p.already_present:
            names = sorted(p.already_present)
            shown = ", ".join(names[:10]) + (
                f" … ({len(names) - 10} more)" if len(names) > 10 else ""
            )
            out.print(f"Already in store {p.store}: {shown}", markup=False)
    return EXIT_OK


# -- status and report ----------------------------------------------------------------------------


def _existing_journal(spec: str | None) -> str | Path | None:
    if spec is not None and spec.startswith("dynamodb:"):
        return spec  # opening it says whether the table exists
    journal = Path(spec) if spec else default_journal_path()
    if not journal.exists():
        _err().print(f"[red]error:[/] no journal at {journal} (nothing imported yet?)")
        return None
    return journal


def _cmd_status(args: argparse.Namespace) -> int:
    journal = _existing_journal(args.journal)
    if journal is None:
        return EXIT_USAGE
    return anyio.run(_status, journal, args.json, args.region)


async def _status(journal: str | Path, json_output: bool, region: str | None = None) -> int:
    async with opened_journal(journal, region=region) as j:
        counts = await j.counts()
        jobs = await j.jobs()
        results = await j.results()
    active = [job for job in jobs if job.state is not JobState.DONE]
    errors = [r for r in results if r.state is RowState.FAILED][-10:]
    if json_output:
        doc = {
            "journal": str(journal),
            "stores": [
                {
                    "store_id": store.store_id,
                    "region": store.region,
                    "endpoint_url": store.endpoint_url,
                    "profile": store.profile,
                    "counts": {s.value: states.get(s, 0) for s in RowState},
                    "total": sum(states.values()),
                }
                for store, states in counts.items()
            ],
            "active_jobs": [
                {
                    "store_id": job.store.store_id,
                    "region": job.store.region,
                    "job_id": job.job_id,
                    "client_token": job.client_token,
                    "state": job.state.value,
                    "status": job.status,
                    "written_at": job.written_at,
                    "started_at": job.started_at,
                }
                for job in active
            ],
            "jobs": len(jobs),
            "last_errors": [report_item(r) for r in errors],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_OK
    out = _out()
    out.print(f"Journal: {journal}", markup=False)
    table = Table(title="rows per store", title_justify="left")
    table.add_column("Store")
    table.add_column("Region")
    for s in RowState:
        table.add_column(s.value.replace("_", " ").lower(), justify="right")
    table.add_column("total", justify="right")
    for store, states in sorted(counts.items(), key=lambda kv: kv[0].key):
        table.add_row(
            store.store_id,
            store.region,
            *(str(states.get(s, 0)) for s in RowState),
            str(sum(states.values())),
        )
    out.print(table)
    if active:
        at = Table(title="active jobs", title_justify="left")
        for col in ("Store", "Job", "State", "Status"):
            at.add_column(col)
        for job in active:
            at.add_row(
                str(job.store), job.job_id or "(being started)", job.state.value, job.status or ""
            )
        out.print(at)
    else:
        out.print(f"No active jobs ({len(jobs)} jobs in the journal).")
    if errors:
        et = Table(title="last errors", title_justify="left")
        for col in ("Store", "Name", "Job", "Reason"):
            et.add_column(col)
        for r in errors:
            et.add_row(r.store_id, r.name, r.job_id or "", r.message or "")
        out.print(et)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    journal = _existing_journal(args.journal)
    if journal is None:
        return EXIT_USAGE
    text = anyio.run(build_report, journal, args.format, args.region)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        _err().print(f"Report written to {args.output}", markup=False)
    return EXIT_OK


async def build_report(journal: str | Path, fmt: str, region: str | None = None) -> str:
    """The report of a journal in ``csv``, ``json`` or ``html``."""
    async with opened_journal(journal, region=region) as j:
        results = await j.results()
        jobs = await j.jobs() if fmt == "html" else []
    if fmt == "csv":
        return render_csv(results)
    if fmt == "json":
        return render_json(results)
    return render_html(results, jobs)


def _cmd_journal_init(args: argparse.Namespace) -> int:
    from ._dynamo_journal import create_table, parse_url

    table, url_region = parse_url(args.url)
    region = url_region or _resolve_region(args.region, args.profile)
    profile = args.profile or os.environ.get("AWS_PROFILE") or None
    created = anyio.run(lambda: create_table(table, region=region, profile=profile))
    verb = "Created" if created else "Found"
    _err().print(f"{verb} journal table {table} ({region or 'default Region'}): ACTIVE, TTL on.")
    return EXIT_OK


# -- demo -----------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    # Failures of the demo's broken files are shown in the summary: keep warnings out of the way.
    _configure_logging(args, shift=-1)
    if args.rows < 1:
        _err().print("[red]error:[/] --rows must be at least 1")
        return EXIT_USAGE
    return run_demo(rows=args.rows, workdir=args.workdir, time_scale=args.time_scale)


if __name__ == "__main__":
    sys.exit(main())
