"""What ``refimport import`` does with ``--staging``, ``--targets`` and ``--staging-part-size``:
the staging areas and the targets read from the options, the manifest's defaults under
``--targets``, every row for every target, the run's :class:`StagingPlan`, and how a dry run plans
a row whose source is staged first (docs/guides/staging.md)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import anyio
import botocore.exceptions

from async_refimport._console import ExitCode, err_console, print_problems
from async_refimport._errors import FieldError, ManifestError
from async_refimport._models import ImportRequest
from async_refimport.aws.clients import ClientPool, configured_endpoint, endpoint_configured
from async_refimport.cli.common import print_error, resolve_endpoint
from async_refimport.engine.importer import StorePlan
from async_refimport.engine.staging_driver import StagingPlan
from async_refimport.journal import is_dynamo_url
from async_refimport.journal.sqlite import default_journal_path
from async_refimport.manifest.reader import CheckedManifest, ManifestDefaults
from async_refimport.manifest.targets import TARGET_FIELDS, Target, read_targets
from async_refimport.staging import (
    MIB,
    SourceKind,
    StagingArea,
    StagingCode,
    StagingError,
    StagingLimits,
    parse_area_uri,
    parse_s3_uri,
    parse_staging,
    source_kind,
)
from async_refimport.staging.regions import BucketRegions

__all__ = [
    "cross_region_rows",
    "each_target",
    "manifest_defaults",
    "parse_size",
    "staged_placeholders",
    "staging_places",
    "staging_plan",
    "without_staged",
]

# What a manifest row is checked with under --targets: the targets file names the real ones.
_TARGETS_STORE = "0000000000"
_TARGETS_ROLE = "arn:aws:iam::000000000000:role/targets-file"


def staging_places(
    args: argparse.Namespace,
) -> tuple[dict[str, StagingArea], list[Target]] | ExitCode:
    """The ``--staging`` areas by Region and the ``--targets`` stores.

    Args:
        args: The parsed command line.

    Returns:
        The areas and the targets (none without ``--targets``); or the exit code of a refused
        option or targets file, its problems printed (nothing journaled).
    """
    areas: dict[str, StagingArea] = {}
    for spec in args.staging or ():
        try:
            area = parse_staging(spec)
        except ValueError as exc:
            print_error(f"--staging: {exc}")
            return ExitCode.INVALID_INPUT
        if area.region in areas and areas[area.region] != area:
            print_error(f"--staging: two staging areas for {area.region}: give one per Region")
            return ExitCode.INVALID_INPUT
        areas[area.region] = area
    if not args.targets:
        return areas, []
    try:
        return areas, read_targets(args.targets)
    except ManifestError as exc:
        print_problems(exc.errors, err_console())
        return ExitCode.INVALID_INPUT


def with_run_defaults(
    targets: Sequence[Target], profile: str | None, endpoint_url: str | None
) -> list[Target]:
    """The targets, those naming no profile or endpoint given the run's (``--profile``,
    ``--endpoint-url`` and their defaults), as rows naming none get them without ``--targets``:
    a target's store is never signed for by another account's credentials by omission.

    Args:
        targets: The ``--targets`` stores.
        profile: The run's AWS profile.
        endpoint_url: The run's HealthOmics endpoint.

    Returns:
        The targets to import into.
    """
    return [
        replace(t, profile=t.profile or profile, endpoint_url=t.endpoint_url or endpoint_url)
        for t in targets
    ]


def manifest_defaults(
    args: argparse.Namespace,
    region: str | None,
    profile: str | None,
    areas: dict[str, StagingArea],
    targets: Sequence[Target],
) -> ManifestDefaults:
    """The manifest's defaults: from the options; under ``--targets``, rows may not set the
    targets' fields and are checked with placeholders for them (each row is then sent to every
    target). Sources elsewhere are accepted when there is somewhere to stage them.

    Args:
        args: The parsed command line.
        region: The Region of rows naming none.
        profile: The AWS profile of rows naming none.
        areas: The ``--staging`` areas.
        targets: The ``--targets`` stores.

    Returns:
        The defaults the manifest is checked with.
    """
    stageable = bool(areas) or any(t.staging for t in targets)
    if targets:
        return ManifestDefaults(
            store_id=_TARGETS_STORE,
            role_arn=_TARGETS_ROLE,
            region=targets[0].region,
            stageable=stageable,
            fixed=frozenset(TARGET_FIELDS),
        )
    return ManifestDefaults(
        store_id=args.store_id,
        role_arn=args.role_arn,
        region=region,
        endpoint_url=resolve_endpoint(args.endpoint_url),
        profile=profile,
        stageable=stageable,
    )


def each_target(
    checked: CheckedManifest, targets: Sequence[Target]
) -> list[ImportRequest] | ExitCode:
    """Every manifest row for every target, store by store (so results come grouped by store).

    The rows are held in memory, once per target (a manifest of 10^5 rows into 3 stores: some
    100 MB); without ``--targets`` they are read a chunk at a time instead.

    Args:
        checked: The checked manifest.
        targets: The stores.

    Returns:
        The requests; or the exit code of a manifest that changed since it was checked (its
        problem printed).
    """
    try:
        rows = [request for chunk in checked.chunks() for request in chunk]
    except ManifestError as exc:
        print_problems(exc.errors, err_console())
        return ExitCode.INVALID_INPUT
    return [target.request_for(row) for target in targets for row in rows]


def staging_plan(
    args: argparse.Namespace,
    journal: str | Path,
    areas: dict[str, StagingArea],
    targets: Sequence[Target],
) -> StagingPlan | None:
    """Where and how this run stages sources.

    Args:
        args: The parsed command line.
        journal: The journal (the Stager's ledger is a file beside a SQLite one).
        areas: The ``--staging`` areas.
        targets: The ``--targets`` stores (their own areas).

    Returns:
        The plan; None when nothing can be staged (no area at all).
    """
    own = {
        t.store().key: parse_area_uri(t.region, t.staging) for t in targets if t.staging is not None
    }
    if not areas and not own:
        return None
    path = Path(str(journal))
    # The Stager's ledger beside a SQLite journal (one per journal), else in the state directory.
    ledger = (
        default_journal_path().with_name("staging.sqlite")
        if is_dynamo_url(journal)
        else path.with_name(path.name + ".staging")
    )
    return StagingPlan(
        areas=areas,
        store_areas=own,
        ledger=ledger,
        s3_endpoint_url=configured_endpoint("s3", args.s3_endpoint_url),
        limits=StagingLimits(
            part_size=args.staging_part_size, retry_delay=args.staging_retry_delay
        ),
        per_store=bool(targets),  # a target with nowhere to stage never holds the others back
    )


def parse_size(text: str) -> int:
    """A size in bytes (argparse's type of ``--staging-part-size``).

    Args:
        text: ``16`` or ``16MiB`` (MiB), ``64KiB``, ``1GiB``.

    Returns:
        The bytes.

    Raises:
        argparse.ArgumentTypeError: not a size.
    """
    units = {"kib": 1024, "mib": MIB, "gib": 1024 * MIB, "": MIB}
    number = text.strip().lower().rstrip("kmgib")
    unit = text.strip().lower()[len(number) :]
    if unit not in units or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (16, 16MiB, 64KiB, 1GiB)")
    return int(number) * units[unit]


# What a dry run plans a row to stage with: a source of the form the plan takes (never sent).
_TO_STAGE = "s3://to-be-staged/source.fa"


def staged_placeholders(
    requests: list[ImportRequest], region: str | None
) -> tuple[list[ImportRequest], set[tuple[str, str | None, str]]]:
    """The requests a dry run plans: a source staged first is given a placeholder in S3.

    Args:
        requests: The run's requests.
        region: The Region of requests naming none.

    Returns:
        The requests to plan, and the rows given a placeholder by store id, Region and name.
    """
    staged = {
        (r.store_id, r.region or region, r.name)
        for r in requests
        if not r.source_file.startswith("s3:")
    }
    if not staged:
        return requests, staged
    planned = [
        r if r.source_file.startswith("s3:") else replace(r, source_file=_TO_STAGE)
        for r in requests
    ]
    return planned, staged


def without_staged(plan: StorePlan, staged: set[tuple[str, str | None, str]]) -> StorePlan:
    """``plan`` without the placeholder sources its source check found missing.

    Args:
        plan: A store's plan.
        staged: The rows given a placeholder (:func:`staged_placeholders`).

    Returns:
        The plan, its ``missing`` without them.
    """
    key = (plan.store.store_id, plan.store.region)
    missing = {n: why for n, why in plan.missing.items() if (*key, n) not in staged}
    return plan if len(missing) == len(plan.missing) else replace(plan, missing=missing)


def cross_region_rows(
    rows: Iterable[ImportRequest], region: str | None, s3_endpoint_url: str | None
) -> tuple[list[FieldError], str | None]:
    """With nowhere to stage: the rows whose ``s3://`` source is in a bucket of another Region
    than their store's, which HealthOmics refuses (it imports only from its own Region).

    Each distinct bucket's Region is asked once (HeadBucket, else GetBucketLocation). When the
    lookup is refused (access denied, no credentials), the rows go as they are and one line
    says so; when S3 cannot be reached or has no such bucket, they go as they are silently (the
    service or the source check tells it); a store behind another
    HealthOmics endpoint (an emulator) with no S3 endpoint named is not looked at (as the
    source check does not).

    Args:
        rows: The run's rows.
        region: The Region of rows naming none.
        s3_endpoint_url: The S3 endpoint (an emulator's), ``None`` for AWS's.

    Returns:
        A row error per such row, and the warning line (or ``None``).
    """
    return anyio.run(_cross_region_rows, rows, region, s3_endpoint_url)


async def _cross_region_rows(
    rows: Iterable[ImportRequest], region: str | None, s3_endpoint_url: str | None
) -> tuple[list[FieldError], str | None]:
    errors: list[FieldError] = []
    unknown: dict[str, str] = {}  # bucket -> why its Region is not known
    async with ClientPool() as pool:
        regions = BucketRegions(pool)
        for row in rows:
            if source_kind(row.source_file) is not SourceKind.S3:
                continue
            try:
                bucket, _ = parse_s3_uri(row.source_file)
                store = row.store(region)
            except ValueError:
                continue  # the service (or the pre-flight) says what is wrong with it
            if bucket in unknown:
                continue
            if s3_endpoint_url is None and endpoint_configured("omics", store.endpoint_url):
                continue  # an emulator's S3 is only known by name (as for the source check)
            try:
                found = await regions.region(
                    bucket, profile=store.profile, endpoint_url=s3_endpoint_url
                )
            except StagingError as exc:
                # Refused: said once. Unreachable, or no such bucket: the service (or the source
                # check) will say it better, and a run that cannot reach S3 fails on its own.
                unknown[bucket] = exc.detail if exc.code is StagingCode.ACCESS_DENIED else ""
                continue
            except botocore.exceptions.BotoCoreError:  # no Region, no such profile: as above
                unknown[bucket] = ""
                continue
            if found != store.region:
                errors.append(_cross_region_error(row, bucket, found, store.region))
    return errors, _unknown_line(unknown)


def _cross_region_error(row: ImportRequest, bucket: str, found: str, region: str) -> FieldError:
    return FieldError(
        "source_file",
        f"{row.source_file} is in a bucket of {found} ({bucket}) and the store is in {region}: "
        f"HealthOmics imports only from a bucket of the store's Region; stage it with "
        f"--staging {region}=s3://BUCKET/PREFIX/ (a bucket in {region})",
        row_name=row.name,
    )


def _unknown_line(unknown: dict[str, str]) -> str | None:
    refused = {bucket: why for bucket, why in unknown.items() if why}
    if not refused:
        return None
    buckets = ", ".join(sorted(refused))
    why = next(iter(refused.values()))
    return (
        f"Region of source bucket(s) {buckets} not known ({why}): their rows are sent as they "
        "are, and HealthOmics fails any in a bucket of another Region than its store's."
    )
