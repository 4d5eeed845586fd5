"""``refimport demo``: the whole tool on a laptop, with no AWS account.

Starts the embedded HealthOmics emulator (compressed clock, realistic throttling), uploads a few
hundred small synthetic genomes and two broken files to its S3, creates a reference store in each
of three Regions (the service allows one per account and Region), writes a manifest, and imports
it through the real engine with the progress display. Ends with the summary and an HTML report.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from rich.console import Console
from rich.panel import Panel

from async_refimport._application import ImportOutcome, read_manifest_file, render_report
from async_refimport._console import (
    ExitCode,
    err_console,
    escape,
    import_with_progress,
    out_console,
    outcome_words,
    print_problems,
    print_summary,
)
from async_refimport._models import ImportRequest
from async_refimport.aws.clients import sync_client
from async_refimport.cli.common import (
    Subparsers,
    add_log_options,
    configure_cli_logging,
    exit_codes_epilog,
    print_error,
)
from async_refimport.engine.importer import ImporterSettings
from async_refimport.manifest.reader import ManifestDefaults

if TYPE_CHECKING:
    from async_refimport.emulator import EmulatorThread

DEMO_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
DEMO_BUCKET = "refimport-demo"
DEMO_ROLE_ARN = "arn:aws:iam::123456789012:role/HealthOmicsImportRole"
# Emulated seconds → real seconds: an emulated 30 s job start-up takes ~2 s here.
DEFAULT_TIME_SCALE = 0.06
ROWS_PER_JOB = 25

_ORGANISMS = (
    "Escherichia_coli",
    "Salmonella_enterica",
    "Staphylococcus_aureus",
    "Mycobacterium_tuberculosis",
    "Bacillus_subtilis",
    "Pseudomonas_aeruginosa",
    "Klebsiella_pneumoniae",
    "Listeria_monocytogenes",
    "Vibrio_cholerae",
    "Streptococcus_pneumoniae",
    "Saccharomyces_cerevisiae",
    "Plasmodium_falciparum",
    "Candida_albicans",
    "Aspergillus_fumigatus",
    "Arabidopsis_thaliana",
    "Caenorhabditis_elegans",
)


def _isolate_aws_env(workdir: Path) -> None:
    """Keep the user's AWS configuration out: the demo must never touch a real account.

    The emulator's own credentials, Region and endpoints are put in the environment once it runs
    (``configure_environment``), so every client of the run is the emulator's one account.
    """
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_OMICS"):
        os.environ.pop(var, None)
    os.environ["AWS_CONFIG_FILE"] = str(workdir / "no-aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(workdir / "no-aws-credentials")


def _genomes(rows: int) -> list[dict[str, Any]]:
    rng = random.Random(42)
    out = []
    for i in range(rows):
        organism = _ORGANISMS[i % len(_ORGANISMS)]
        name = f"{organism}_str{i + 1:04d}"
        # Emulated sizes, from small bacteria to small eukaryotes: jobs take longer as they grow.
        bases = int(rng.lognormvariate(15.5, 0.8))
        out.append(
            {
                "name": name,
                "key": f"genomes/{organism}/{name}.fa",
                "store": i % len(DEMO_REGIONS),
                "bases": max(bases, 500_000),
                "seed": i,
                "description": f"{organism.replace('_', ' ')} strain {i + 1:04d} (synthetic)",
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class _Broken:
    key: str
    body: bytes
    name: str


def _broken_files() -> list[_Broken]:
    from async_refimport.emulator import make_fasta

    return [
        _Broken(
            "broken/lab_notes.fa",
            b"These are lab notes, not a FASTA file.\n",
            "lab_notes_not_fasta",
        ),
        _Broken(
            "broken/duplicate_contigs.fa",
            (make_fasta("contig1", 600, seed=1) + make_fasta("contig1", 600, seed=2)).encode(),
            "duplicate_contig_names",
        ),
    ]


# -- the command ----------------------------------------------------------------------------------


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    """Add ``demo`` to ``refimport``'s commands.

    Args:
        sub: ``refimport``'s subcommands.

    Returns:
        The command's parser (its handler is :func:`run`).
    """
    parser = sub.add_parser(
        "demo",
        help="try it locally: an emulated HealthOmics, a few hundred synthetic genomes",
        description="Start the embedded HealthOmics emulator with a compressed clock, upload "
        "synthetic genomes (and two broken ones) to its S3, import them through the real "
        "engine with the progress display, and write an HTML report. No AWS account needed.",
        epilog=exit_codes_epilog(
            {
                ExitCode.OK: "every row imported but the two broken ones (which fail, as meant)",
                ExitCode.FAILED_ROWS: "another row failed",
                ExitCode.INVALID_INPUT: "usage error, or the emulator's extra is not installed "
                "(one line says what to install)",
                ExitCode.INTERRUPTED: "interrupted (a demo starts afresh)",
            },
            tail="",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows", metavar="N", type=int, default=300, help="genomes to import (default: 300)"
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        type=Path,
        default=Path("refimport-demo"),
        help="where the manifest, journal and report go (default: ./refimport-demo)",
    )
    parser.add_argument(
        "--time-scale",
        metavar="F",
        type=float,
        default=None,
        help="emulated seconds → real seconds (default: chosen to finish in under a minute)",
    )
    add_log_options(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``refimport demo`` from its command line.

    Args:
        args: The parsed command line (``--rows``, ``--workdir``, ``--time-scale``, logging).

    Returns:
        The exit code of :func:`run_demo`, or :attr:`ExitCode.INVALID_INPUT` for fewer than
        one row.
    """
    # Failures of the demo's broken files are shown in the summary: keep warnings out of the way.
    configure_cli_logging(args, shift=-1)
    if args.rows < 1:
        print_error("--rows must be at least 1")
        return ExitCode.INVALID_INPUT
    return run_demo(rows=args.rows, workdir=args.workdir, time_scale=args.time_scale)


def run_demo(
    *, rows: int = 300, workdir: Path = Path("refimport-demo"), time_scale: float | None = None
) -> int:
    """Run the demo.

    Args:
        rows: Synthetic genomes to import (the two broken files come on top).
        workdir: Where the manifest, journal and report go.
        time_scale: Emulated seconds → real seconds (default: :data:`DEFAULT_TIME_SCALE`).

    Returns:
        The exit code: :attr:`ExitCode.OK` when every row but the two broken ones imported,
        :attr:`ExitCode.INVALID_INPUT` without the emulator's extra (one line says which).
    """
    from async_refimport.emulator import missing_extra_hint, require_extra

    try:
        # Before anything is printed: without the extra, the hint is the demo's only line.
        require_extra()
        return _run_demo(rows=rows, workdir=workdir, time_scale=time_scale)
    except ImportError as exc:
        hint = missing_extra_hint(exc)
        if hint is None:
            raise
        print_error(hint)
        return ExitCode.INVALID_INPUT


@dataclass(frozen=True, slots=True)
class _Staged:
    """What the demo put in place before the import: the rows to import and where they came
    from."""

    broken: list[_Broken]
    manifest: Path
    requests: list[ImportRequest]


def _run_demo(*, rows: int, workdir: Path, time_scale: float | None) -> int:
    from async_refimport.emulator import EmulatorThread, Faults

    # Wrapped by rich (unlike the CLI's messages): the demo's text and panel fit the terminal.
    err = Console(stderr=True, highlight=False)
    scale = DEFAULT_TIME_SCALE if time_scale is None else time_scale
    workdir = workdir.resolve()
    journal = _fresh_workdir(workdir)
    started = time.monotonic()

    err.rule("[bold]refimport demo[/]")
    with EmulatorThread(time_scale=scale, faults=Faults(tps=5.0)) as emu:
        emu.configure_environment()
        staged = _stage(err, emu, rows=rows, workdir=workdir, scale=scale)
        if staged is None:  # pragma: no cover - the demo writes a valid manifest
            return ExitCode.INVALID_INPUT
        outcome = import_with_progress(
            staged.requests,
            journal=journal,
            region=DEMO_REGIONS[0],
            settings=ImporterSettings(max_sources_per_job=ROWS_PER_JOB),
        )
        if outcome is None:  # pragma: no cover - validated above
            return ExitCode.INVALID_INPUT
        stats = emu.stats()

    report = workdir / "report.html"
    report.write_text(anyio.run(render_report, journal, "html"), encoding="utf-8")
    print_summary(outcome.tally, out_console())
    # The demo's few failures are all kept by the tally (its first hundred).
    unexpected = {r.name for r in outcome.tally.failures} - {b.name for b in staged.broken}
    _print_finish(
        err,
        outcome,
        stats,
        elapsed=time.monotonic() - started,
        unexpected=len(unexpected),
        paths={"HTML report": report, "Manifest": staged.manifest, "Journal": journal},
    )
    if outcome.stopped:
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED_ROWS if unexpected else ExitCode.OK


def _fresh_workdir(workdir: Path) -> Path:
    """Make ``workdir``, remove an earlier demo's journal, keep the user's AWS configuration
    out; returns the journal's path."""
    workdir.mkdir(parents=True, exist_ok=True)
    journal = workdir / "journal.sqlite"
    # A fresh emulator knows none of an earlier demo's jobs: start from a fresh journal too.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{journal}{suffix}").unlink(missing_ok=True)
    _isolate_aws_env(workdir)
    return journal


def _stage(
    err: Console, emu: EmulatorThread, *, rows: int, workdir: Path, scale: float
) -> _Staged | None:
    """Fill the emulator (genomes, broken files, stores, an earlier import), write the
    manifest and read it back, saying each step on ``err``; None if the manifest is invalid."""
    err.print(
        f"Emulated HealthOmics at [cyan]{emu.omics_endpoint_url}[/] "
        f"(S3 at {emu.s3_endpoint_url}); its clock runs {1 / scale:.0f} times faster than "
        "real time, and it throttles at 5 TPS like AWS."
    )
    genomes = _genomes(rows)
    broken = _broken_files()
    with err.status(f"Uploading {rows} synthetic genomes and 2 broken files to S3…"):
        _upload(emu, genomes, broken)
    stores = _create_stores(emu)
    err.print(
        "Created one reference store per Region (the service's quota): "
        + ", ".join(f"[bold]{s}[/] ({r})" for s, r in zip(stores, DEMO_REGIONS, strict=True))
    )
    earlier = _import_some_earlier(emu, stores[0], genomes)
    if earlier:
        err.print(
            f"{earlier} of the genomes were imported earlier by someone else "
            "(they will show as already present)."
        )
    manifest = _write_manifest(workdir / "manifest.csv", genomes, broken, stores)
    requests = _read_manifest(manifest, emu)
    if requests is None:  # pragma: no cover - the demo writes a valid manifest
        return None
    err.print(
        f"Wrote [bold]{escape(manifest)}[/] ({len(requests)} rows). Importing, "
        f"{ROWS_PER_JOB} genomes per job, one job at a time per store…\n"
    )
    return _Staged(broken=broken, manifest=manifest, requests=requests)


def _upload(emu: EmulatorThread, genomes: list[dict[str, Any]], broken: list[_Broken]) -> None:
    from async_refimport.emulator import EMULATED_BASES_META, make_fasta

    s3 = sync_client("s3", **emu.client_kwargs("s3"))
    s3.create_bucket(Bucket=DEMO_BUCKET)

    def put(g: dict[str, Any]) -> None:
        body = make_fasta(g["name"], 2_000, seed=g["seed"]).encode()
        s3.put_object(
            Bucket=DEMO_BUCKET,
            Key=g["key"],
            Body=body,
            Metadata={EMULATED_BASES_META: str(g["bases"])},
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, genomes))
    for b in broken:
        s3.put_object(Bucket=DEMO_BUCKET, Key=b.key, Body=b.body)


def _omics(emu: EmulatorThread, region: str) -> Any:
    kwargs = emu.client_kwargs("omics")
    kwargs["region_name"] = region
    return sync_client("omics", **kwargs)


def _create_stores(emu: EmulatorThread) -> list[str]:
    """One reference store per Region (the service allows one per account and Region)."""
    return [
        str(_omics(emu, region).create_reference_store(name=f"demo-{region}")["id"])
        for region in DEMO_REGIONS
    ]


def _import_some_earlier(emu: EmulatorThread, store: str, genomes: list[dict[str, Any]]) -> int:
    """A colleague imported a few of the genomes earlier: the import finds them with one
    ListReferences per store and reports them ALREADY_PRESENT instead of failing."""
    earlier = [g for g in genomes if g["store"] == 0][:5]
    if not earlier:
        return 0
    omics = _omics(emu, DEMO_REGIONS[0])
    job = omics.start_reference_import_job(
        referenceStoreId=store,
        roleArn=DEMO_ROLE_ARN,
        sources=[
            {"sourceFile": f"s3://{DEMO_BUCKET}/{g['key']}", "name": g["name"]} for g in earlier
        ],
    )
    final = ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED")
    while omics.get_reference_import_job(referenceStoreId=store, id=job["id"])["status"] not in (
        final
    ):
        time.sleep(0.1)
    return len(earlier)


def _write_manifest(
    path: Path, genomes: list[dict[str, Any]], broken: list[_Broken], stores: list[str]
) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["source_file", "name", "description", "tags", "store_id", "region"])
        for g in genomes:
            writer.writerow(
                [
                    f"s3://{DEMO_BUCKET}/{g['key']}",
                    g["name"],
                    g["description"],
                    "project=demo;kind=synthetic",
                    stores[g["store"]],
                    DEMO_REGIONS[g["store"]],
                ]
            )
        for b in broken:
            writer.writerow(
                [
                    f"s3://{DEMO_BUCKET}/{b.key}",
                    b.name,
                    "deliberately broken",
                    "project=demo",
                    stores[0],
                    DEMO_REGIONS[0],
                ]
            )
    return path


def _read_manifest(path: Path, emu: EmulatorThread) -> list[ImportRequest] | None:
    defaults = ManifestDefaults(role_arn=DEMO_ROLE_ARN, endpoint_url=emu.omics_endpoint_url)
    parsed = read_manifest_file(path, defaults)
    if parsed.errors:  # pragma: no cover - the demo writes a valid manifest
        print_problems(parsed.errors, err_console())
        return None
    return parsed.requests


def _print_finish(
    err: Console,
    outcome: ImportOutcome,
    stats: dict[str, Any],
    *,
    elapsed: float,
    unexpected: int,
    paths: dict[str, Path],
) -> None:
    # The counts of the summary table and of --json's summary, in their words.
    counts = outcome_words(outcome.summary)
    calls = stats.get("calls", {})
    throttled = sum(stats.get("throttled", {}).values())
    title, border = "demo finished", "green"
    if outcome.stopped:
        # The failed rows so far may not be the broken files yet, and the rest never ran: say
        # what happened, and that a demo starts afresh (its emulator kept nothing).
        title, border = "demo interrupted", "yellow"
        failure_note = (
            f"[yellow]Interrupted[/] with {outcome.pending} row(s) unfinished. The demo's "
            "emulator is gone with it: run [bold]refimport demo[/] again to start over."
        )
    elif not unexpected:
        failure_note = (
            f"The {outcome.failed} failed are the deliberately broken files (the report says why)."
        )
    else:
        failure_note = f"[red]{unexpected} unexpected failure(s)[/]: see the report."
    where = "\n".join(f"{label + ':':<14}[bold]{escape(path)}[/]" for label, path in paths.items())
    journal = escape(paths["Journal"])
    err.print(
        Panel.fit(
            f"{counts}.\n"
            f"{elapsed:.0f} s, {calls.get('StartReferenceImportJob', 0)} Start calls, "
            f"{throttled} throttled calls absorbed by pacing.\n"
            f"{failure_note}\n\n"
            f"{where}\n\n"
            f"Next: refimport status --journal {journal}\n"
            f"      refimport report --journal {journal} --format csv",
            title=title,
            border_style=border,
        )
    )
