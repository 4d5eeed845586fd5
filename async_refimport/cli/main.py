"""The ``refimport`` command: import manifests, watch them, report on them, try it all in a demo.

Subcommands: ``import``, ``status``, ``report``, ``journal``, ``events``, ``demo`` (this
module), plus ``emulator`` and ``worker``, which :mod:`async_refimport.__main__` hands to their
own shells. Exit codes: 0 every row imported or already present, 1 some rows failed (or were
skipped as invalid), 2 usage or manifest errors (nothing sent), 3 a set-up error (credentials,
profile, access, store, endpoint: nothing failed), 130 interrupted (re-run the same command to
resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import anyio
import botocore.exceptions
from rich.table import Table

from async_refimport._application import (
    ImportOutcome,
    JournalStatus,
    check_manifest_file,
    journal_status,
    plan_document,
    plan_import,
    read_results,
    write_journal_report,
)
from async_refimport._console import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SETUP,
    EXIT_USAGE,
    display_path,
    err_console,
    escape,
    import_with_progress,
    out_console,
    print_problems,
    print_summary,
)
from async_refimport._errors import (
    JournalError,
    ManifestError,
    QueueError,
    RefImportError,
    SetupError,
)
from async_refimport._logconfig import LEVELS, configure_logging
from async_refimport._models import (
    MAX_SOURCES_PER_JOB,
    ImportRequest,
    RowResult,
    RowState,
    StoreRef,
)
from async_refimport._report import REPORT_FORMATS, JsonReportWriter, report_file
from async_refimport.aws.preflight import PreflightPolicy
from async_refimport.completion.events import EventsPolicy
from async_refimport.engine.importer import ImporterSettings, StorePlan
from async_refimport.journal.sqlite import JobRecord, default_journal_path
from async_refimport.manifest.reader import FORMATS, ManifestDefaults

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SETUP",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

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
        f"(default: $REFIMPORT_JOURNAL or {display_path(default_journal_path())}) "
        "or dynamodb://TABLE, shared by a fleet"
    )


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
            "k=v;k2=v2); store_id, role_arn, region, profile, endpoint_url (override the flags "
            "for that row).\n"
            "AWS configuration: the standard credentials chain, AWS_PROFILE, AWS_REGION / "
            "AWS_DEFAULT_REGION and AWS_ENDPOINT_URL_OMICS are honoured.\n\n" + _EPILOG
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument(
        "manifest",
        metavar="MANIFEST",
        help="the manifest: a file, - for standard input, or s3://bucket/key (read with your "
        "AWS credentials)",
    )
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
    imp.add_argument(
        "--setup-timeout",
        metavar="SECONDS",
        type=float,
        default=ImporterSettings().setup_timeout,
        help="give up on a store whose first call gets no answer at all within SECONDS (a wrong "
        "endpoint, an unreachable VPC endpoint or proxy): exit code 3 (default: %(default)s)",
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
        "--check-sources",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="HEAD every source in S3 first: a missing or oversized object fails its row before "
        "it costs a slot in a job (default: on; a dry run always checks)",
    )
    imp.add_argument(
        "--s3-endpoint-url",
        metavar="URL",
        help="the S3 an emulator behind --endpoint-url reads sources from (for the source check)",
    )
    imp.add_argument(
        "--events-queue-url",
        metavar="URL",
        action="append",
        help="SQS queue fed with HealthOmics job status events by an EventBridge rule: jobs are "
        "noticed the moment they end (repeat for each Region; see the README)",
    )
    imp.add_argument(
        "--format",
        choices=FORMATS,
        help="manifest format (default: from the extension, else sniffed from the first line)",
    )
    imp.add_argument(
        "--ignore-unknown-columns",
        action="store_true",
        help="skip columns (JSON keys) that are not manifest fields, e.g. a sample sheet's "
        "sample_id, instead of refusing them",
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

    ev = sub.add_parser(
        "events",
        help="set up job status events (events init --queue-name NAME)",
        description="Set up what --events-queue-url listens to.",
    )
    ev_sub = ev.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    ev_init = ev_sub.add_parser(
        "init",
        help="create an SQS queue fed by an EventBridge rule matching HealthOmics' reference "
        "import job status events (idempotent); prints the queue URL",
        description="Create, in one Region, an SQS queue NAME, an EventBridge rule NAME matching "
        "'Reference Import Job Status Change' events of source aws.omics, the queue policy that "
        "lets that rule send to the queue, and the rule's target. Running it again changes "
        "nothing. Prints the queue URL on stdout: pass it to --events-queue-url (one queue per "
        "Region your stores are in).",
    )
    ev_init.add_argument("--queue-name", metavar="NAME", required=True, help="queue and rule name")
    ev_init.add_argument("--region", metavar="R", help="Region (default: the standard chain)")
    ev_init.add_argument("--profile", metavar="P", help="AWS profile (default: AWS_PROFILE)")
    ev_init.set_defaults(handler=_cmd_events_init)

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

    # Other shells' commands, listed for --help: async_refimport.__main__ hands them their
    # arguments, and their own parsers own their options.
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
    sub.add_parser(
        "completion",
        help="print the shell completion script (refimport completion bash|zsh|tcsh)",
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
        err_console().print("[yellow]Interrupted.[/] Run the same command again to resume.")
        return EXIT_INTERRUPTED
    except JournalError as exc:
        # Most say "journal PATH: ..." or "DynamoDB table T ..." themselves; name it otherwise.
        text = str(exc)
        what = "" if text.startswith(("journal", "DynamoDB")) else "journal: "
        err_console().print(f"[red]error:[/] {what}{escape(text)}")
        return EXIT_USAGE
    except SetupError as exc:
        print_setup_errors([exc])
        return EXIT_SETUP
    except RefImportError as exc:
        err_console().print(f"[red]error:[/] {escape(exc)}")
        return EXIT_FAILED
    except botocore.exceptions.ProfileNotFound as exc:  # AWS_PROFILE, wherever a client is made
        err_console().print(
            f"[red]error:[/] {escape(exc)}: name a profile of ~/.aws/config or "
            "~/.aws/credentials (--profile or AWS_PROFILE)"
        )
        return EXIT_SETUP
    except OSError as exc:  # an unreadable manifest, an unwritable journal directory ...
        err_console().print(f"[red]error:[/] {escape(exc)}")
        return EXIT_USAGE
    return code


# -- import ---------------------------------------------------------------------------------------


def print_setup_errors(errors: Sequence[SetupError]) -> None:
    """One line per store that cannot be used: what is wrong, then what to fix."""
    err = err_console()
    for error in errors:
        err.print(f"[red]error:[/] {escape(error)}")


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


def _configure_logging(args: argparse.Namespace, *, shift: int = 0) -> None:
    verbosity = -1 if args.quiet else args.verbose + shift
    configure_logging(args.log_format, verbosity, log_level=args.log_level)


def _cmd_import(args: argparse.Namespace) -> int:
    _configure_logging(args)
    err = err_console()
    if not 1 <= args.max_sources_per_job <= MAX_SOURCES_PER_JOB:
        err.print(f"[red]error:[/] --max-sources-per-job must be 1..{MAX_SOURCES_PER_JOB}")
        return EXIT_USAGE
    if not args.setup_timeout > 0:
        err.print("[red]error:[/] --setup-timeout must be a positive number of seconds")
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
        # Checked whole now, its rows read again a chunk at a time as they are journaled: a
        # manifest of 10^5 rows is never held whole (see run_import).
        checked = check_manifest_file(
            args.manifest,
            defaults,
            format=args.format,
            ignore_unknown_columns=args.ignore_unknown_columns,
        )
    except ManifestError as exc:
        print_problems(exc.errors, err)
        return EXIT_USAGE
    manifest = checked.manifest
    if manifest.ignored_columns:
        ignored = ", ".join(sorted(manifest.ignored_columns))
        err.print(f"Ignoring column(s): {ignored}", markup=False)
    skipped = 0
    if manifest.errors:
        print_problems(manifest.errors, err)
        bad_rows = manifest.invalid_rows
        if not args.skip_invalid:
            err.print(
                f"[red]{len(manifest.errors)} problem(s) in {bad_rows} row(s) of "
                f"{escape(args.manifest)}; nothing was sent.[/] Fix them, or pass "
                "--skip-invalid to import the valid rows."
            )
            return EXIT_USAGE
        skipped = bad_rows
        err.print(f"[yellow]Skipping {skipped} invalid row(s); importing the other rows.[/]")
    settings = ImporterSettings(
        max_sources_per_job=args.max_sources_per_job,
        events=EventsPolicy(queue_urls=tuple(args.events_queue_url or ())),
        preflight=PreflightPolicy(enabled=args.check_sources, s3_endpoint_url=args.s3_endpoint_url),
        setup_timeout=args.setup_timeout,
    )
    if args.dry_run:
        try:
            requests = [request for chunk in checked.chunks() for request in chunk]
        except ManifestError as exc:
            print_problems(exc.errors, err)
            return EXIT_USAGE
        return _dry_run(requests, region, settings, json_output=args.json)
    journal: str | Path = args.journal or default_journal_path()
    outcome = import_with_progress(
        checked, journal=journal, region=region, settings=settings, quiet=args.quiet
    )
    if outcome is None:
        return EXIT_USAGE
    if args.json:
        extra = {"skipped_invalid": skipped} if skipped else {}
        if outcome.not_started:
            extra["not_started"] = outcome.not_started  # rows of stores whose set-up is wrong
        if outcome.not_journaled:
            extra["not_journaled"] = outcome.not_journaled  # stopped before they were journaled
        anyio.run(_write_json, journal, outcome, region, extra)
    elif outcome.row_ids or not outcome.setup_errors:
        print_summary(outcome.tally, out_console(), skipped=skipped)
    if outcome.manifest_changed is not None:
        print_problems(outcome.manifest_changed.errors, err)
        err.print(
            f"[yellow]{outcome.not_journaled} row(s) not imported:[/] the manifest changed while "
            "it was read; the rows read before the change were imported. Check it, then run the "
            "same command again."
        )
        return EXIT_USAGE
    if outcome.setup_errors and not outcome.stopped:
        print_setup_errors(outcome.setup_errors)
        err.print(
            f"[yellow]{outcome.pending} row(s) not imported yet[/], none failed: fix the set-up, "
            "then run the same command again."
        )
        return EXIT_SETUP
    if outcome.stopped:
        err.print(
            f"[yellow]Stopped with {outcome.pending} row(s) unfinished.[/] "
            "Run the same command again to resume (journal: "
            f"{escape(_show_journal(journal))})."
        )
        return EXIT_INTERRUPTED
    if outcome.failed:
        err.print(
            f"[red]{outcome.failed} row(s) failed.[/] See `refimport report --journal "
            f"{escape(journal)} --format html -o report.html`; re-running the same command "
            "retries them."
        )
    return EXIT_FAILED if outcome.failed or skipped else EXIT_OK


async def _write_json(
    journal: str | Path, outcome: ImportOutcome, region: str | None, extra: dict[str, int]
) -> None:
    """The ``--json`` document, its items read back from the journal a page at a time and
    written as they come: the whole document of 10^5 rows would take hundreds of MB."""
    writer = JsonReportWriter(sys.stdout, {**outcome.summary, **extra})
    async for page in read_results(journal, outcome.row_ids, region=region):
        writer.write(page)
    writer.close()
    sys.stdout.flush()


def _dry_run(
    requests: Sequence[ImportRequest],
    region: str | None,
    settings: ImporterSettings,
    *,
    json_output: bool,
) -> int:
    try:
        plans = anyio.run(_plan, requests, region, settings)
    except RefImportError as exc:
        err_console().print(f"[red]error:[/] {escape(exc)}")
        return EXIT_FAILED
    if json_output:
        sys.stdout.write(json.dumps(plan_document(plans), indent=2) + "\n")
    else:
        _print_plan(plans)
    unusable = [p.setup_error for p in plans if p.setup_error is not None]
    if unusable:
        print_setup_errors(unusable)
        return EXIT_SETUP
    return EXIT_OK


async def _plan(
    requests: Sequence[ImportRequest], region: str | None, settings: ImporterSettings
) -> list[StorePlan]:
    return await plan_import(requests, region=region, settings=settings)


def _print_plan(plans: Sequence[StorePlan]) -> None:
    out = out_console()
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
        unusable = p.setup_error is not None
        table.add_row(
            escape(p.store.store_id),
            escape(p.store.region),
            str(p.rows),
            "?" if unusable else str(len(p.already_present)),
            "?" if unusable else str(p.rows - len(p.already_present) - len(p.missing)),
            f"set-up error ({p.setup_error.kind})" if p.setup_error else str(p.jobs),
        )
    out.print(table)
    for p in plans:
        for name, reason in sorted(p.missing.items()):
            out.print(f"Missing source (the row would fail): {name}: {reason}", markup=False)
    for p in plans:
        if p.already_present:
            names = sorted(p.already_present)
            shown = ", ".join(names[:10]) + (
                f" … ({len(names) - 10} more)" if len(names) > 10 else ""
            )
            out.print(f"Already in store {p.store}: {shown}", markup=False)


# -- status and report ----------------------------------------------------------------------------


def _show_journal(journal: str | Path) -> str:
    return display_path(journal) if isinstance(journal, Path) else journal


def _existing_journal(spec: str | None) -> str | Path | None:
    if spec is not None and spec.startswith("dynamodb:"):
        return spec  # opening it says whether the table exists
    journal = Path(spec) if spec else default_journal_path()
    if not journal.exists():
        err_console().print(
            f"[red]error:[/] no journal at {escape(journal)} (nothing imported yet?)"
        )
        return None
    return journal


def _cmd_status(args: argparse.Namespace) -> int:
    journal = _existing_journal(args.journal)
    if journal is None:
        return EXIT_USAGE
    status = anyio.run(_journal_status, journal, args.region)
    if args.json:
        sys.stdout.write(json.dumps(status.document(), indent=2) + "\n")
        return EXIT_OK
    out = out_console()
    out.print(f"Journal: {journal}", markup=False)
    out.print(_rows_table(status.counts))
    if status.active_jobs:
        out.print(_active_jobs_table(status.active_jobs))
    else:
        out.print(f"No active jobs ({status.jobs} jobs in the journal).")
    if status.last_errors:
        out.print(_errors_table(status.last_errors))
    return EXIT_OK


async def _journal_status(journal: str | Path, region: str | None) -> JournalStatus:
    return await journal_status(journal, region=region)


def _rows_table(counts: Mapping[StoreRef, Mapping[RowState, int]]) -> Table:
    table = Table(title="rows per store", title_justify="left")
    table.add_column("Store")
    table.add_column("Region")
    for s in RowState:
        table.add_column(s.value.replace("_", " ").lower(), justify="right")
    table.add_column("total", justify="right")
    for store, states in sorted(counts.items(), key=lambda kv: kv[0].key):
        table.add_row(
            escape(store.store_id),
            escape(store.region),
            *(str(states.get(s, 0)) for s in RowState),
            str(sum(states.values())),
        )
    return table


def _active_jobs_table(jobs: Sequence[JobRecord]) -> Table:
    table = Table(title="active jobs", title_justify="left")
    for col in ("Store", "Job", "State", "Status"):
        table.add_column(col)
    for job in jobs:
        table.add_row(
            escape(job.store),
            escape(job.job_id or "(being started)"),
            job.state.value,
            escape(job.status or ""),
        )
    return table


def _errors_table(errors: Sequence[RowResult]) -> Table:
    table = Table(title="last errors", title_justify="left")
    for col in ("Store", "Name", "Job", "Reason"):
        table.add_column(col)
    for r in errors:
        table.add_row(
            escape(r.store_id), escape(r.name), escape(r.job_id or ""), escape(r.message or "")
        )
    return table


def _cmd_report(args: argparse.Namespace) -> int:
    journal = _existing_journal(args.journal)
    if journal is None:
        return EXIT_USAGE
    # Written as the rows are read, a page at a time (a report of 10^6 rows is never held).
    write = partial(write_journal_report, journal, args.format, region=args.region)
    if args.output is None:
        anyio.run(write, sys.stdout)
    else:
        with report_file(args.output) as out:
            anyio.run(write, out)
        err_console().print(f"Report written to {args.output}", markup=False)
    return EXIT_OK


def _cmd_journal_init(args: argparse.Namespace) -> int:
    from async_refimport.journal.dynamo import create_table, parse_url

    table, url_region = parse_url(args.url)
    region = url_region or _resolve_region(args.region, args.profile)
    profile = args.profile or os.environ.get("AWS_PROFILE") or None
    created = anyio.run(lambda: create_table(table, region=region, profile=profile))
    verb = "Created" if created else "Found"
    err_console().print(
        f"{verb} journal table {escape(table)} ({escape(region or 'default Region')}): "
        "ACTIVE, TTL on."
    )
    return EXIT_OK


def _cmd_events_init(args: argparse.Namespace) -> int:
    from async_refimport.aws.event_rule import create_event_queue

    profile = args.profile or os.environ.get("AWS_PROFILE") or None
    region = _resolve_region(args.region, profile)
    try:
        made = anyio.run(
            lambda: create_event_queue(args.queue_name, region=region, profile=profile)
        )
    except QueueError as exc:
        err_console().print(f"[red]error:[/] {escape(exc)}")
        return EXIT_SETUP
    verb = "Created" if made.created else "Found"
    err_console().print(
        f"{verb} queue {escape(args.queue_name)} ({escape(region or 'default Region')}), fed by "
        f"the EventBridge rule {escape(made.rule_arn)}. Pass --events-queue-url {escape(made.queue_url)}"
    )
    sys.stdout.write(made.queue_url + "\n")
    return EXIT_OK


# -- demo -----------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from async_refimport.cli.demo import run_demo

    # Failures of the demo's broken files are shown in the summary: keep warnings out of the way.
    _configure_logging(args, shift=-1)
    if args.rows < 1:
        err_console().print("[red]error:[/] --rows must be at least 1")
        return EXIT_USAGE
    return run_demo(rows=args.rows, workdir=args.workdir, time_scale=args.time_scale)


if __name__ == "__main__":
    sys.exit(main())
