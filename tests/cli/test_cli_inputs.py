"""``refimport`` meeting manifests where they live (standard input, S3, sample sheets, several
accounts) and broken or hostile ones, as a subprocess: what the user sees, and that nothing
invalid is ever sent."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run, starts

Genomes = Callable[[int, str], list[tuple[str, str]]]


def refimport(
    *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def csv_text(items: list[tuple[str, str]], extra: dict[str, str] | None = None) -> str:
    columns = ["source_file", "name", *(extra or {})]
    rows = [",".join(columns)]
    rows += [",".join([uri, name, *(extra or {}).values()]) for name, uri in items]
    return "\n".join(rows) + "\n"


def args_for(emu: EmulatorThread, store: str, journal: Path, *extra: str) -> list[str]:
    return [
        "--store-id", store, "--role-arn", ROLE_ARN, "--endpoint-url", emu.omics_endpoint_url,
        "--journal", str(journal), *extra,
    ]  # fmt: skip


def no_call_was_made(emu: EmulatorThread) -> bool:
    """No call of the importer's reached the service (the test's own set-up calls aside)."""
    calls = emu.stats()["calls"]
    return not any(n for op, n in calls.items() if op != "CreateReferenceStore")


def assert_one_clean_error(run: Run) -> None:
    assert run.code == 2, run.stderr
    assert "Traceback" not in run.stderr and "Error:" not in run.stderr


# -- where manifests live ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [None, "csv"])
def test_manifest_from_standard_input(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, fmt: str | None
) -> None:
    items = genomes(3, "stdin")
    format_args = ["--format", fmt] if fmt else []
    run = refimport(
        "import", "-", *format_args, *args_for(emulator, store, journal_path, "--json"),
        stdin=csv_text(items),
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert {i["name"] for i in run.json()["items"]} == {n for n, _ in items}


def test_standard_input_errors_name_it_and_an_empty_one_is_refused(
    emulator: EmulatorThread, store: str, journal_path: Path
) -> None:
    bad = refimport(
        "import", "-", *args_for(emulator, store, journal_path),
        stdin='{"source_file": "s3://bkt/a.fa", "name": "x"}\n',
    )  # fmt: skip
    assert_one_clean_error(bad)
    assert "-:1: name: must be 3..255 characters long, got 1" in bad.stderr
    empty = refimport("import", "-", *args_for(emulator, store, journal_path), stdin="")
    assert_one_clean_error(empty)
    assert "-: file: is empty: no rows to import" in empty.stderr
    assert no_call_was_made(emulator)


@pytest.fixture
def manifest_bucket(moto_endpoint: str) -> str:
    bucket = f"manifests-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(
        Bucket=bucket
    )
    return bucket


def test_manifest_from_s3(
    emulator: EmulatorThread,
    store: str,
    genomes: Genomes,
    journal_path: Path,
    moto_endpoint: str,
    manifest_bucket: str,
) -> None:
    items = genomes(3, "s3m")
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.put_object(Bucket=manifest_bucket, Key="batches/refs.csv", Body=csv_text(items).encode())
    env = {"AWS_ENDPOINT_URL_S3": moto_endpoint}
    uri = f"s3://{manifest_bucket}/batches/refs.csv"
    run = refimport("import", uri, *args_for(emulator, store, journal_path, "--json"), env=env)
    assert run.code == 0, run.stderr
    assert {i["name"] for i in run.json()["items"]} == {n for n, _ in items}

    missing = f"s3://{manifest_bucket}/batches/nope.csv"
    gone = refimport("import", missing, *args_for(emulator, store, journal_path), env=env)
    assert_one_clean_error(gone)
    assert f"{missing}: file: cannot read from S3: no such object" in gone.stderr


def test_a_sample_sheet_with_extra_columns(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    sheet = tmp_path / "samples.csv"
    sheet.write_text(csv_text(genomes(2, "sheet"), {"sample_id": "S1", "species": "human"}))
    refused = refimport("import", sheet, *args_for(emulator, store, journal_path))
    assert_one_clean_error(refused)
    assert f"{sheet}:1: sample_id: unknown column 'sample_id'" in refused.stderr
    run = refimport(
        "import", sheet, "--ignore-unknown-columns", *args_for(emulator, store, journal_path)
    )
    assert run.code == 0, run.stderr
    assert "Ignoring column(s): sample_id, species" in run.stderr


def test_one_manifest_fans_out_over_two_accounts(
    emulator: EmulatorThread, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    # The emulator takes a 12-digit access key id as the account: two profiles, two accounts.
    credentials = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    credentials.write_text(
        "[research]\naws_access_key_id = 111111111111\naws_secret_access_key = x\n"
        "[clinical]\naws_access_key_id = 222222222222\naws_secret_access_key = y\n"
    )
    stores = {}
    for profile, key in (("research", "111111111111"), ("clinical", "222222222222")):
        kwargs = {**emulator.client_kwargs(), "region_name": "us-east-1"}
        kwargs.update(aws_access_key_id=key, aws_secret_access_key="x")
        omics = boto3.client("omics", **kwargs)
        stores[profile] = str(omics.create_reference_store(name="refs")["id"])
    items = genomes(4, "acct")
    manifest = tmp_path / "accounts.csv"
    lines = ["source_file,name,store_id,profile"]
    for i, (name, uri) in enumerate(items):
        profile = "research" if i % 2 else "clinical"
        lines.append(f"{uri},{name},{stores[profile]},{profile}")
    manifest.write_text("\n".join(lines) + "\n")
    run = refimport(
        "import", manifest, "--role-arn", ROLE_ARN, "--endpoint-url", emulator.omics_endpoint_url,
        "--journal", journal_path, "--json",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    refs = emulator.stats()["references"]
    assert sorted(r["name"] for r in refs[stores["research"]]) == [items[1][0], items[3][0]]
    assert sorted(r["name"] for r in refs[stores["clinical"]]) == [items[0][0], items[2][0]]


# -- broken and hostile manifests ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "reason"),
    [
        ("arn:aws:iam:123:role/x", "not an IAM role ARN: 4 ':' separators, an ARN has 5"),
        ("HealthOmicsImport", "not an ARN"),
    ],
)
def test_a_role_arn_that_cannot_be_a_role_is_refused_before_anything_is_sent(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path,
    arn: str, reason: str,
) -> None:  # fmt: skip
    manifest = tmp_path / "m.csv"
    manifest.write_text(csv_text(genomes(2, "arn")))
    run = refimport(
        "import", manifest, "--store-id", store, "--role-arn", arn,
        "--endpoint-url", emulator.omics_endpoint_url, "--journal", journal_path,
    )  # fmt: skip
    assert_one_clean_error(run)
    assert f"role_arn: {reason}" in run.stderr
    assert "arn:<partition>:iam::<12-digit account>:role/<name>" in run.stderr
    assert "characters long" not in run.stderr
    assert no_call_was_made(emulator)


def test_a_line_break_in_one_row_never_sinks_its_job_mates(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    items = genomes(10, "nl")
    rows = [{"source_file": uri, "name": name} for name, uri in items]
    rows[4]["source_file"] = rows[4]["source_file"].replace(".fa", "\n.fa")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    strict = refimport("import", manifest, *args_for(emulator, store, journal_path))
    assert_one_clean_error(strict)
    assert f"{manifest}:5: source_file:" in strict.stderr
    assert no_call_was_made(emulator)
    run = refimport(
        "import", manifest, "--skip-invalid", *args_for(emulator, store, journal_path, "--json")
    )
    assert run.code == 1, run.stderr
    doc = run.json()
    assert doc["summary"]["imported"] == 9 and doc["summary"]["skipped_invalid"] == 1
    assert starts(emulator) == 1  # the nine valid rows in one job, none failed


def test_an_invalid_first_json_line_is_counted_when_skipped(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    items = genomes(2, "first")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "{oops\n" + "".join(json.dumps({"source_file": u, "name": n}) + "\n" for n, u in items)
    )
    run = refimport(
        "import", manifest, "--skip-invalid", *args_for(emulator, store, journal_path, "--json")
    )
    assert run.code == 1, run.stderr
    assert "Skipping 1 invalid row(s)" in run.stderr
    assert run.json()["summary"]["skipped_invalid"] == 1


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("empty.csv", "", "empty.csv: file: is empty: no rows to import"),
        ("header.csv", "source_file,name\n", "header.csv: file: has a header but no rows"),
        ("blank.jsonl", "\n\n", "blank.jsonl: file: is empty: no rows to import"),
        (
            "dup.jsonl",
            '{"source_file": "s3://bkt/a.fa", "name": "aaa", "name": "bbb"}\n',
            "dup.jsonl:1: json: key 'name' is given twice in one object",
        ),
        (
            "deep.jsonl",
            '{"source_file": "s3://bkt/a.fa", "name": "aaa", "tags": '
            + "[" * 100_000
            + "]" * 100_000
            + "}\n",
            "deep.jsonl:1: json: JSON nested too deeply",
        ),
        (
            "spaces.csv",
            "source_file,name\ns3://bkt/a.fa, hg38\n",
            "spaces.csv:2: name: ' hg38' has leading or trailing whitespace",
        ),
    ],
)
def test_manifests_that_are_refused_with_one_line_each(
    emulator: EmulatorThread, store: str, journal_path: Path, tmp_path: Path,
    name: str, text: str, expected: str,
) -> None:  # fmt: skip
    manifest = tmp_path / name
    manifest.write_text(text)
    run = refimport("import", manifest, *args_for(emulator, store, journal_path))
    assert_one_clean_error(run)
    assert f"{tmp_path}/{expected}" in run.stderr
    assert no_call_was_made(emulator)


def test_errors_printed_are_capped(
    emulator: EmulatorThread, store: str, journal_path: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "many.csv"
    manifest.write_text("source_file,name\n" + "s3://bkt/a.fa,x\n" * 5000)
    run = refimport("import", manifest, *args_for(emulator, store, journal_path))
    assert_one_clean_error(run)
    assert run.stderr.count(": name: must be 3..255") == 100
    assert "... and 4900 more problem(s) not shown" in run.stderr


# -- reports ------------------------------------------------------------------------------------


def test_report_csv_neutralises_formulas_and_report_files_are_private(
    emulator: EmulatorThread,
    store: str,
    s3_fasta: Callable[..., str],
    journal_path: Path,
    tmp_path: Path,
) -> None:
    hostile = '=HYPERLINK("http://evil.example/x","click")'
    uri = s3_fasta("cli/formula.fa", ">chr1\nACGTACGTAC\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"source_file": uri, "name": hostile}) + "\n")
    run = refimport("import", manifest, *args_for(emulator, store, journal_path))
    assert run.code == 0, run.stderr
    out = tmp_path / "report.csv"
    report = refimport("report", "--journal", journal_path, "--format", "csv", "-o", out)
    assert report.code == 0, report.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [row] = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert row["name"] == "'" + hostile
    assert row["md5"] == emulator.stats()["references"][store][0]["md5"]


def test_json_items_carry_the_md5_the_service_reports(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    items = genomes(5, "md5")
    manifest = tmp_path / "m.csv"
    manifest.write_text(csv_text(items))
    first = refimport(
        "import", manifest, *args_for(emulator, store, tmp_path / "a.sqlite", "--json")
    )
    assert first.code == 0, first.stderr
    reported = {r["name"]: r["md5"] for r in emulator.stats()["references"][store]}
    assert {i["name"]: i["md5"] for i in first.json()["items"]} == reported
    assert all(len(md5) == 32 for md5 in reported.values())
    # Another journal, the same store: every name is already there, with its md5 from the listing.
    again = refimport(
        "import", manifest, *args_for(emulator, store, tmp_path / "b.sqlite", "--json")
    )
    assert again.code == 0, again.stderr
    doc = again.json()
    assert doc["summary"]["already_present"] == 5
    assert {i["name"]: i["md5"] for i in doc["items"]} == reported
    report = refimport("report", "--journal", tmp_path / "a.sqlite", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(report.stdout, newline="")))
    assert {r["name"]: r["md5"] for r in rows} == reported
