"""``refimport`` run as a subprocess against the emulator, as a user or a script would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run, create_store, starts

Genomes = Callable[[int, str], list[tuple[str, str]]]


def write_manifest(path: Path, items: list[tuple[str, str]], fmt: str) -> Path:
    if fmt == "jsonl":
        lines = [
            json.dumps({"sourceFile": uri, "name": name, "tags": {"suite": "cli"}})
            for name, uri in items
        ]
        path.write_text("\n".join(lines) + "\n")
    else:
        sep = "\t" if fmt == "tsv" else ","
        rows = [sep.join(["source_file", "name", "description", "tags"])]
        rows += [sep.join([uri, name, f"genome {name}", "suite=cli"]) for name, uri in items]
        path.write_text("\n".join(rows) + "\n")
    return path


def import_args(emu: EmulatorThread, store: str, journal: Path, *extra: str) -> list[str]:
    return [
        "--store-id", store, "--role-arn", ROLE_ARN, "--endpoint-url", emu.omics_endpoint_url,
        "--journal", str(journal), *extra,
    ]  # fmt: skip


def assert_matches_emulator(run: Run, emu: EmulatorThread, store: str) -> None:
    doc = run.json()
    refs = {r["name"]: r["id"] for r in emu.stats()["references"].get(store, [])}
    imported = {i["name"]: i["reference_id"] for i in doc["items"] if i["status"] == "IMPORTED"}
    assert imported == refs


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_import_each_format(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
    fmt: str,
) -> None:
    items = genomes(5, f"fmt-{fmt}")
    manifest = write_manifest(tmp_path / f"refs.{fmt}", items, fmt)
    args = import_args(emulator, store, journal_path, "--json", "--max-sources-per-job", "2")
    run = cli("import", manifest, *args)
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["summary"] == {"total": 5, "imported": 5, "already_present": 0, "failed": 0}
    assert {i["name"] for i in doc["items"]} == {n for n, _ in items}
    assert all(i["store_id"] == store and i["job_id"] for i in doc["items"])
    assert_matches_emulator(run, emulator, store)
    assert starts(emulator) == 3  # five rows, two per job


def test_endpoint_and_region_from_the_standard_environment(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    store = create_store(emulator, "eu-west-1")
    manifest = write_manifest(tmp_path / "refs.csv", genomes(2, "env"), "csv")
    env = {"AWS_ENDPOINT_URL_OMICS": emulator.omics_endpoint_url, "AWS_REGION": "eu-west-1"}
    run = cli(
        "import", manifest, "--store-id", store, "--role-arn", ROLE_ARN,
        "--journal", journal_path, "--json", env=env,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert run.json()["summary"]["imported"] == 2
    assert_matches_emulator(run, emulator, store)


def test_invalid_manifest_names_every_bad_line_and_sends_nothing(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    manifest = tmp_path / "bad.csv"
    manifest.write_text(
        "source_file,name\n"
        "s3://refimport-test/a.fa,good-one\n"
        "s3://refimport-test/b.txt,not-fasta\n"
        "\n"
        "s3://refimport-test/c.fa,x\n"
        "s3://refimport-test/d.fa,good-one\n"
    )
    run = cli("import", manifest, *import_args(emulator, store, journal_path))
    assert run.code == 2
    assert f"{manifest}:3: source_file: must name a FASTA file" in run.stderr
    assert f"{manifest}:5: name: must be 3..255 characters long, got 1" in run.stderr
    assert (
        f"{manifest}:6: name: 'good-one' is repeated for store {store} (first on line 2)"
        in run.stderr
    )
    assert "nothing was sent" in run.stderr
    assert run.stdout == ""
    stats = emulator.stats()
    assert stats["calls"]["StartReferenceImportJob"] == 0
    assert stats["calls"]["ListReferences"] == 0
    assert not journal_path.exists()


@pytest.mark.slow
def test_skip_invalid_imports_the_valid_rows_and_exits_1(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    items = genomes(2, "skip")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "source_file,name\n" + "".join(f"{u},{n}\n" for n, u in items) + "s3://x/y.txt,bad-row\n"
    )
    run = cli(
        "import", manifest, *import_args(emulator, store, journal_path, "--skip-invalid", "--json")
    )
    assert run.code == 1, run.stderr
    assert f"{manifest}:4: source_file" in run.stderr
    assert run.json()["summary"]["imported"] == 2


@pytest.mark.slow
def test_rerun_sends_nothing_new_and_failed_rows_exit_1(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    items = genomes(3, "rerun")
    broken = ("broken-one", s3_fasta("cli/broken.fa", "not a fasta file\n"))
    manifest = write_manifest(tmp_path / "m.csv", [*items, broken], "csv")
    first = cli("import", manifest, *import_args(emulator, store, journal_path, "--json"))
    assert first.code == 1, first.stderr
    assert first.json()["summary"] == {"total": 4, "imported": 3, "already_present": 0, "failed": 1}
    failed = [i for i in first.json()["items"] if i["status"] == "FAILED"]
    assert failed[0]["name"] == "broken-one" and "FASTA" in failed[0]["message"]

    # The broken file is fixed: the re-run retries only that row.
    manifest2 = write_manifest(tmp_path / "m2.csv", items, "csv")
    before = starts(emulator)
    second = cli("import", manifest2, *import_args(emulator, store, journal_path, "--json"))
    assert second.code == 0, second.stderr
    assert second.json()["items"] == [i for i in first.json()["items"] if i["name"] != "broken-one"]
    assert starts(emulator) == before
    refs = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(refs) == sorted(n for n, _ in items)


@pytest.mark.slow
def test_dry_run_starts_nothing(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    tmp_path: Path,
    journal_path: Path,
) -> None:
    items = genomes(5, "dry")
    first = cli("import", write_manifest(tmp_path / "one.csv", items[:1], "csv"),
                *import_args(emulator, store, journal_path))  # fmt: skip
    assert first.code == 0, first.stderr
    before = starts(emulator)
    manifest = write_manifest(tmp_path / "all.csv", items, "csv")
    dry = cli("import", manifest, "--dry-run", "--json", "--max-sources-per-job", "2",
              *import_args(emulator, store, tmp_path / "other.sqlite"))  # fmt: skip
    assert dry.code == 0, dry.stderr
    [plan] = dry.json()["stores"]
    assert plan == {
        "store_id": store, "region": "us-east-1", "rows": 5,
        "already_present": [items[0][0]], "to_import": 4, "jobs": 2,
    }  # fmt: skip
    table = cli("import", manifest, "--dry-run", *import_args(emulator, store, journal_path))
    assert table.code == 0 and "nothing was started" in table.stdout
    assert starts(emulator) == before
    assert not (tmp_path / "other.sqlite").exists()


@pytest.mark.slow
def test_status_and_report_read_the_journal(
    cli: Callable[..., Run],
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    s3_fasta: Callable[..., str],
    tmp_path: Path,
    journal_path: Path,
) -> None:
    items = [*genomes(3, "rep"), ("bad-fasta", s3_fasta("cli/bad.fa", ">a\nACGT\n>a\nACGT\n"))]
    run = cli("import", write_manifest(tmp_path / "m.csv", items, "csv"),
              *import_args(emulator, store, journal_path))  # fmt: skip
    assert run.code == 1
    assert "refimport summary" in run.stdout and "bad-fasta" in run.stdout

    status = cli("status", "--journal", journal_path, "--json")
    assert status.code == 0, status.stderr
    doc = status.json()
    [entry] = doc["stores"]
    assert entry["store_id"] == store and entry["counts"]["IMPORTED"] == 3
    assert entry["counts"]["FAILED"] == 1 and doc["active_jobs"] == []
    assert [e["name"] for e in doc["last_errors"]] == ["bad-fasta"]
    table = cli("status", "--journal", journal_path)
    assert table.code == 0 and store in table.stdout and "bad-fasta" in table.stdout

    as_json = cli("report", "--journal", journal_path, "--format", "json")
    assert as_json.json()["summary"] == {
        "total": 4,
        "imported": 3,
        "already_present": 0,
        "failed": 1,
    }
    as_csv = cli("report", "--journal", journal_path, "--format", "csv")
    assert (
        as_csv.stdout.splitlines()[0]
        == "store_id,name,source_file,status,reference_id,md5,job_id,message,arn,uri"
    )
    html_path = tmp_path / "report.html"
    html = cli("report", "--journal", journal_path, "--format", "html", "-o", html_path)
    assert html.code == 0
    text = html_path.read_text()
    assert "<svg" in text and "bad-fasta" in text

    missing = cli("status", "--journal", tmp_path / "nope.sqlite")
    assert missing.code == 2 and "no journal" in missing.stderr


@pytest.mark.slow
def test_ctrl_c_once_stops_cleanly_and_a_rerun_finishes(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path, journal_path: Path
) -> None:
    emulator.configure(time_scale=0.03)  # about a second per job
    items = genomes(6, "sigint")
    manifest = write_manifest(tmp_path / "m.csv", items, "csv")
    args = [sys.executable, "-m", "async_refimport", "import", str(manifest),
            *import_args(emulator, store, journal_path, "--max-sources-per-job", "1", "--json")]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ})  # fmt: skip
    deadline = time.monotonic() + 60
    while starts(emulator) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert starts(emulator) >= 1
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in err
    doc = json.loads(out)
    assert doc["summary"]["total"] == 6 and doc["summary"].get("pending", 0) > 0
    assert starts(emulator) < 6

    emulator.configure(time_scale=0.001)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["summary"]["imported"] == 6
    refs = [r["name"] for r in emulator.stats()["references"][store]]
    assert sorted(refs) == sorted(n for n, _ in items)  # each exactly once


@pytest.mark.slow
def test_help_and_delegated_commands(cli: Callable[..., Run]) -> None:
    top = cli("--help")
    assert top.code == 0
    for word in ("import", "status", "report", "demo", "emulator", "worker", "exit codes"):
        assert word in top.stdout
    imp = cli("import", "--help")
    assert (
        imp.code == 0 and "--skip-invalid" in imp.stdout and "AWS_ENDPOINT_URL_OMICS" in imp.stdout
    )
    assert cli("emulator", "--help").code == 0
    assert cli("worker", "--help").code == 0
    assert cli("import").code == 2
    assert cli().code == 2


@pytest.mark.slow
def test_demo_runs_end_to_end(cli: Callable[..., Run], tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    run = cli("demo", "--rows", "12", "--workdir", workdir, "--time-scale", "0.002")
    assert run.code == 0, run.stderr
    assert "refimport summary" in run.stdout
    assert "lab_notes_not_fasta" in run.stdout and "duplicate_contig_names" in run.stdout
    assert "demo finished" in run.stderr
    assert len((workdir / "manifest.csv").read_text().splitlines()) == 1 + 12 + 2
    assert "<svg" in (workdir / "report.html").read_text()
    status = cli("status", "--journal", workdir / "journal.sqlite", "--json")
    counts = [s["counts"] for s in status.json()["stores"]]
    assert sum(c["IMPORTED"] + c["ALREADY_PRESENT"] for c in counts) == 12
    assert sum(c["ALREADY_PRESENT"] for c in counts) >= 1  # imported earlier by "someone else"
