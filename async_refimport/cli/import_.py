"""``refimport import MANIFEST``: validate the whole manifest, then import every row.

The command runs in steps, each its own function: check the options, check the manifest
(every problem found before anything is sent), then either plan (``--dry-run``) or import with
the progress display, print the summary (or the ``--json`` document), and end with the exit
code and closing line of :mod:`async_refimport.cli.outcome`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import anyio
from rich.table import Table

from async_refimport._application import (
    ImportOutcome,
    check_manifest_file,
    plan_document,
    plan_import,
    read_results,
)
from async_refimport._console import (
    ExitCode,
    err_console,
    escape,
    import_with_progress,
    out_console,
    print_problems,
    print_summary,
)
from async_refimport._errors import ManifestError, QueueError, RefImportError
from async_refimport._models import MAX_SOURCES_PER_JOB, ImportRequest, printable, redact_url
from async_refimport._report import JsonReportWriter
from async_refimport.aws.clients import configured_endpoint, endpoint_configured
from async_refimport.aws.preflight import PreflightPolicy
from async_refimport.cli.common import (
    EPILOG,
    Subparsers,
    add_config_option,
    add_journal_option,
    add_log_options,
    configure_cli_logging,
    print_error,
    print_setup_errors,
    resolve_endpoint,
    resolve_profile,
    resolve_region,
    silence_stdout,
)
from async_refimport.cli.outcome import exit_code, plan_exit_code, print_ending
from async_refimport.cli.targeting import (
    cross_region_rows,
    each_target,
    manifest_defaults,
    parse_size,
    staged_placeholders,
    staging_places,
    staging_plan,
    with_run_defaults,
    without_staged,
)
from async_refimport.completion.events import EventsPolicy, check_queues
from async_refimport.engine.importer import ImporterSettings, StorePlan
from async_refimport.engine.staging_driver import StagingPlan
from async_refimport.journal import journal_spec_problem
from async_refimport.journal.sqlite import default_journal_path
from async_refimport.manifest.reader import FORMATS, CheckedManifest, ManifestDefaults
from async_refimport.manifest.targets import Target
from async_refimport.staging import MIB, StagingArea, StagingLimits

# -- the parser -----------------------------------------------------------------------------------


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """Add ``import`` to ``refimport``'s commands.

    Args:
        sub: ``refimport``'s subcommands.

    Returns:
        The command's parser (its handler is :func:`run`).
    """
    parser = sub.add_parser(
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
            "AWS_DEFAULT_REGION and AWS_ENDPOINT_URL_OMICS are honoured.\n\n" + EPILOG
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "manifest",
        metavar="MANIFEST",
        help="the manifest: a file, - for standard input, or s3://bucket/key (read with your "
        "AWS credentials)",
    )
    _add_store_options(parser)
    _add_run_options(parser)
    _add_staging_options(parser)
    _add_mode_options(parser)
    add_config_option(parser)
    add_log_options(parser)
    parser.set_defaults(handler=run)
    return parser


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    # Where rows naming no store go, and how their stores are reached.
    parser.add_argument("--store-id", metavar="ID", help="reference store for rows naming none")
    parser.add_argument(
        "--role-arn",
        metavar="ARN",
        help="IAM service role HealthOmics assumes to read the sources, for rows naming none",
    )
    parser.add_argument(
        "--region", metavar="R", help="Region for rows naming none (default: AWS_REGION, profile)"
    )
    parser.add_argument("--profile", metavar="P", help="AWS profile (default: AWS_PROFILE)")
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="HealthOmics endpoint, e.g. an emulator (default: AWS_ENDPOINT_URL_OMICS)",
    )
    parser.add_argument(
        "--setup-timeout",
        metavar="SECONDS",
        type=float,
        default=ImporterSettings().setup_timeout,
        help="give up on a store whose first call gets no answer at all within SECONDS (a wrong "
        "endpoint, an unreachable VPC endpoint or proxy): exit code 3 (default: %(default)s)",
    )
    parser.add_argument(
        "--consistency-grace",
        metavar="SECONDS",
        type=float,
        default=ImporterSettings().consistency_grace,
        help="how long the service's reads may lag its writes before they are believed: a "
        "job's source failed and its name not listed is looked up again for so long when the "
        "List cannot be judged current (default: %(default)s)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    # The journal, how rows are packed into jobs, and how sources and job ends are watched.
    add_journal_option(parser)
    parser.add_argument(
        "--max-sources-per-job",
        metavar="N",
        type=int,
        default=MAX_SOURCES_PER_JOB,
        help=f"rows packed into one import job, 1..{MAX_SOURCES_PER_JOB} (default: %(default)s)",
    )
    parser.add_argument(
        "--check-sources",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="HEAD every source in S3 first: a missing or oversized object fails its row before "
        "it costs a slot in a job (default: on; a dry run checks even with --no-check-sources, "
        "except a store behind another HealthOmics endpoint, e.g. an emulator, whose S3 is not "
        "named by --s3-endpoint-url or AWS_ENDPOINT_URL_S3: the plan then says its sources "
        "were not checked)",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        metavar="URL",
        help="the S3 an emulator behind --endpoint-url reads sources from, for the source check "
        "(default: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--events-queue-url",
        metavar="URL",
        action="append",
        help="SQS queue fed with HealthOmics job status events by an EventBridge rule: jobs are "
        "noticed the moment they end (repeat for each Region; see the README)",
    )


def _add_staging_options(parser: argparse.ArgumentParser) -> None:
    # Sources from anywhere (docs/guides/staging.md), and one manifest into many stores.
    parser.add_argument(
        "--staging",
        metavar="REGION=s3://BUCKET/PREFIX/",
        action="append",
        help="where a source that is not in S3 in its store's Region (s3:// of another Region, "
        "http(s)://, a local file) is staged first, for the stores of REGION (repeat for each "
        "Region)",
    )
    parser.add_argument(
        "--targets",
        metavar="TARGETS.csv",
        help="import every manifest row into every store of this file (columns store_id, "
        "region, role_arn; optional profile, endpoint_url, staging); rows then name no store, "
        "Region, role, profile or endpoint",
    )
    parser.add_argument(
        "--staging-part-size",
        metavar="SIZE",
        type=parse_size,
        default=StagingLimits().part_size,
        help="part size of a streamed upload: MiB, or a size such as 64KiB or 16MiB (S3 needs "
        "at least 5 MiB, but an S3 of one's own may take less; default: 8 MiB); memory in "
        "flight is 4 parts per file, 16 in all",
    )
    parser.add_argument(
        "--staging-retry-delay",
        metavar="SECONDS",
        type=float,
        default=StagingLimits().retry_delay,
        help="seconds before a source whose staging failed for a reason that may pass (a "
        "truncated download, a 5xx) is tried again, doubled each time, 3 tries in all "
        "(default: 1)",
    )


def _add_mode_options(parser: argparse.ArgumentParser) -> None:
    # How the manifest is read, what is printed, and whether anything is started.
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="manifest format (default: from the extension, else sniffed from the first line)",
    )
    parser.add_argument(
        "--ignore-unknown-columns",
        action="store_true",
        help="skip columns (JSON keys) that are not manifest fields, e.g. a sample sheet's "
        "sample_id, instead of refusing them",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (summary and every row) on stdout instead of the table",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, check which names already exist, print the plan; start no job",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="import the valid rows even if others are invalid (the run then exits 1)",
    )


# -- the run --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run ``refimport import``: check, then plan (``--dry-run``) or import, then report.

    Args:
        args: The parsed command line (see :func:`add_parser`).

    Returns:
        The exit code: :func:`async_refimport.cli.outcome.exit_code` of the run, or
        :attr:`ExitCode.INVALID_INPUT` when the options or the manifest are refused (nothing
        was sent).
    """
    configure_cli_logging(args)
    if (problem := _option_problem(args)) is not None:
        print_error(problem)
        return ExitCode.INVALID_INPUT
    if (endpoint_problem := _endpoint_problem(args.endpoint_url)) is not None:
        print_error(endpoint_problem)
        return ExitCode.INVALID_INPUT if args.endpoint_url else ExitCode.SETUP
    profile = resolve_profile(args.profile)
    region = resolve_region(args.region, profile)
    places = staging_places(args)
    if isinstance(places, ExitCode):
        return places
    areas, targets = places
    targets = with_run_defaults(targets, profile, resolve_endpoint(args.endpoint_url))
    checked = _check_manifest(args, manifest_defaults(args, region, profile, areas, targets))
    if not isinstance(checked, CheckedManifest):
        return checked
    rows = each_target(checked, targets) if targets else checked
    if isinstance(rows, ExitCode):
        return rows
    if args.events_queue_url and not _events_queues_readable(args.events_queue_url, region):
        return ExitCode.SETUP
    skipped = checked.manifest.invalid_rows if checked.errors else 0
    settings = _settings(args)
    if args.dry_run:
        return _dry_run(checked, region, settings, json_output=args.json, targets=targets)
    journal: str | Path = args.journal or default_journal_path()
    plan = _staging(args, journal, (areas, targets), rows, region)
    if isinstance(plan, ExitCode):
        return plan
    outcome = import_with_progress(
        rows,
        journal=journal,
        region=region,
        settings=settings,
        quiet=args.quiet,
        staging=plan,
    )
    if outcome is None:
        return ExitCode.INVALID_INPUT
    try:
        _print_result(args, outcome, journal=journal, region=region, skipped=skipped)
    except BrokenPipeError:
        # The reader stopped early (`--json | head -1`): the rows are imported all the same,
        # and the run ends with their outcome's code, not as an error of its own.
        silence_stdout()
    code = exit_code(outcome, skipped=skipped)
    print_ending(code, outcome, journal)
    return code


def _staging(
    args: argparse.Namespace,
    journal: str | Path,
    places: tuple[dict[str, StagingArea], list[Target]],
    rows: CheckedManifest | Sequence[ImportRequest],
    region: str | None,
) -> StagingPlan | ExitCode | None:
    """The run's staging plan; with nowhere to stage, INVALID_INPUT for rows whose s3:// bucket
    is of another Region than their store's (printed, nothing journaled)."""
    plan = staging_plan(args, journal, *places)
    if plan is None and not _same_regions(rows, region, args):
        return ExitCode.INVALID_INPUT
    return plan


def _same_regions(
    rows: CheckedManifest | Sequence[ImportRequest], region: str | None, args: argparse.Namespace
) -> bool:
    requests = (
        (r for chunk in rows.chunks() for r in chunk) if isinstance(rows, CheckedManifest) else rows
    )
    try:
        errors, warning = cross_region_rows(
            requests, region, configured_endpoint("s3", args.s3_endpoint_url)
        )
    except ManifestError as exc:  # the manifest changed since it was checked
        print_problems(exc.errors, err_console())
        return False
    if warning is not None:
        err_console().print(f"Warning: {warning}", markup=False, highlight=False)
    if errors:
        print_problems(errors, err_console())
        return False
    return True


def _option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options argparse cannot check; None when nothing is."""
    if not 1 <= args.max_sources_per_job <= MAX_SOURCES_PER_JOB:
        return f"--max-sources-per-job must be 1..{MAX_SOURCES_PER_JOB}"
    if not args.setup_timeout > 0:
        return "--setup-timeout must be a positive number of seconds"
    if not args.consistency_grace >= 0:
        return "--consistency-grace must be a number of seconds, 0 or more"
    if not 1024 <= args.staging_part_size <= 5120 * MIB:
        return "--staging-part-size must be 1KiB..5120MiB (S3's own minimum is 5MiB)"
    if args.targets and (args.store_id or args.role_arn):
        return "--targets names the stores and their roles: leave out --store-id and --role-arn"
    return journal_spec_problem(args.journal)


def _endpoint_problem(explicit: str | None) -> str | None:
    """What is wrong with the HealthOmics endpoint, named where it comes from (the option, or
    the environment variable), so that it is one line rather than a problem of every row."""
    endpoint = resolve_endpoint(explicit)
    if endpoint is None:
        return None
    parts = urllib.parse.urlsplit(endpoint)
    if (
        parts.scheme in ("http", "https")
        and parts.hostname
        and not any(c.isspace() for c in endpoint)
    ):
        return None
    if explicit:
        where = "--endpoint-url"
    else:
        where = next(
            (v for v in ("AWS_ENDPOINT_URL_OMICS", "AWS_ENDPOINT_URL") if os.environ.get(v)),
            "the AWS configuration",
        )
    return (
        f"{where}: {printable(redact_url(endpoint))!r} is not an http:// or https:// URL; "
        "nothing was journaled. Fix it, or unset it to use AWS's own endpoint."
    )


def _check_manifest(
    args: argparse.Namespace, defaults: ManifestDefaults
) -> CheckedManifest | ExitCode:
    """The manifest, checked whole, its problems printed; else the exit code it is refused
    with: a set-up error when rows name no Region and none is configured, else a manifest
    error (unreadable, or with invalid rows and no ``--skip-invalid``)."""
    err = err_console()
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
        return ExitCode.INVALID_INPUT
    manifest = checked.manifest
    if defaults.region is None:
        # No Region configured anywhere: with no default, a row's Region problem is that it
        # names none. One set-up line, not one per row (--skip-invalid could not help).
        unplaced = [e for e in manifest.errors if e.field == "region"]
        if unplaced:
            print_error(
                f"no Region for {len(unplaced)} row(s) of {args.manifest}: no region column "
                "value, no --region, no AWS_REGION / AWS_DEFAULT_REGION and no Region in the "
                "profile; pass --region R (or set AWS_REGION), then run the same command again"
            )
            return ExitCode.SETUP
    if manifest.ignored_columns:
        ignored = ", ".join(sorted(manifest.ignored_columns))
        err.print(f"Ignoring column(s): {ignored}", markup=False)
    if not manifest.errors:
        return checked
    print_problems(manifest.errors, err)
    if manifest.refused:  # a problem of the whole file: --skip-invalid cannot skip it
        return ExitCode.INVALID_INPUT
    if not args.skip_invalid:
        err.print(
            f"[red]{len(manifest.errors)} problem(s) in {manifest.invalid_rows} row(s) of "
            f"{escape(args.manifest)}; nothing was sent.[/] Fix them, or pass "
            "--skip-invalid to import the valid rows."
        )
        return ExitCode.INVALID_INPUT
    err.print(
        f"[yellow]Skipping {manifest.invalid_rows} invalid row(s); importing the other rows.[/]"
    )
    return checked


def _events_queues_readable(urls: Sequence[str], region: str | None) -> bool:
    """Whether every ``--events-queue-url`` can be read; when one cannot, its one set-up line
    is printed (nothing is journaled: a run whose jobs all wait for the safety net would be a
    minute per job)."""
    try:
        anyio.run(partial(check_queues, urls, region))
    except QueueError as exc:
        print_error(
            f"--events-queue-url: {exc}; nothing was journaled. Fix the URL (refimport events "
            "init prints it), or leave the option out to notice job ends by polling"
        )
        return False
    return True


def _settings(args: argparse.Namespace) -> ImporterSettings:
    """The Importer's settings the options choose (the rest are the library's defaults)."""
    return ImporterSettings(
        max_sources_per_job=args.max_sources_per_job,
        events=EventsPolicy(queue_urls=tuple(args.events_queue_url or ())),
        # The S3 an emulator's sources are in, as any AWS client finds it (AWS_ENDPOINT_URL_S3).
        preflight=PreflightPolicy(
            enabled=args.check_sources,
            s3_endpoint_url=configured_endpoint("s3", args.s3_endpoint_url),
        ),
        setup_timeout=args.setup_timeout,
        consistency_grace=args.consistency_grace,
    )


def _print_result(
    args: argparse.Namespace,
    outcome: ImportOutcome,
    *,
    journal: str | Path,
    region: str | None,
    skipped: int,
) -> None:
    """The ``--json`` document on stdout, or the summary table (unless no store could be used:
    the set-up errors say it all)."""
    if args.json:
        extra = {"skipped_invalid": skipped} if skipped else {}
        if outcome.not_started:
            extra["not_started"] = outcome.not_started  # rows of stores whose set-up is wrong
        if outcome.not_journaled:
            extra["not_journaled"] = outcome.not_journaled  # stopped before they were journaled
        anyio.run(_write_json, journal, outcome, region, extra)
    elif outcome.row_ids or not outcome.setup_errors:
        print_summary(outcome.tally, out_console(), skipped=skipped)


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


# -- the dry run ----------------------------------------------------------------------------------


def _dry_run(
    checked: CheckedManifest,
    region: str | None,
    settings: ImporterSettings,
    *,
    json_output: bool,
    targets: Sequence[Target] = (),
) -> int:
    """Plan the import and print the plan (the exit code is :func:`plan_exit_code`'s)."""
    try:
        requests = [request for chunk in checked.chunks() for request in chunk]
        if targets:
            requests = [t.request_for(r) for t in targets for r in requests]
    except ManifestError as exc:
        print_problems(exc.errors, err_console())
        return ExitCode.INVALID_INPUT
    requests, staged = staged_placeholders(requests, region)
    try:
        plans = anyio.run(_plan, requests, region, settings)
    except RefImportError as exc:
        print_error(exc)
        return ExitCode.FAILED_ROWS
    plans = [without_staged(p, staged) for p in plans]
    if staged:
        (err_console() if json_output else out_console()).print(
            f"{len(staged)} row(s) have a source that is staged first (not in S3): the dry run "
            "does not stage or check it.",
            markup=False,
        )
    if json_output:
        sys.stdout.write(json.dumps(plan_document(plans), indent=2) + "\n")
    else:
        _print_plan(plans)
    note = _unchecked_sources(plans, settings.preflight)
    if note is not None:
        # On stdout under the table (a plan without it would read "no source missing"), on
        # stderr beside --json's document.
        (err_console() if json_output else out_console()).print(note, markup=False, soft_wrap=True)
    code = plan_exit_code(plans)
    if code is ExitCode.SETUP:
        print_setup_errors([p.setup_error for p in plans if p.setup_error is not None])
    return code


async def _plan(
    requests: Sequence[ImportRequest], region: str | None, settings: ImporterSettings
) -> list[StorePlan]:
    return await plan_import(requests, region=region, settings=settings)


def _unchecked_sources(plans: Sequence[StorePlan], policy: PreflightPolicy) -> str | None:
    """The line saying which stores' sources the dry run could not check, and why; None when
    every usable store's were checked.

    A store behind another HealthOmics endpoint (an emulator) reads its sources from an S3
    only the user can name; without one, its sources are not checked (see the pre-flight).
    """
    if policy.s3_endpoint_url is not None:
        return None
    unchecked = [
        p.store
        for p in plans
        if p.setup_error is None and endpoint_configured("omics", p.store.endpoint_url)
    ]
    if not unchecked:
        return None
    stores = ", ".join(str(store) for store in unchecked)
    return (
        f"Sources not checked for {stores}: the store is behind another HealthOmics endpoint "
        f"({unchecked[0].endpoint_url or configured_endpoint('omics')}) and no S3 endpoint is "
        "named for its sources (--s3-endpoint-url or AWS_ENDPOINT_URL_S3)."
    )


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
