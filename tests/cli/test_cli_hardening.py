"""Hostile and broken input at the CLI, as a user meets it: no secret in any output at any
verbosity, data never taken for markup, a flood of manifest errors capped."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import Run, run_cli

from .test_cli import import_args

Genomes = Callable[[int, str], list[tuple[str, str]]]

# A session token as STS issues them: hundreds of base64 characters.
SESSION_TOKEN = "IQoJb3JpZ2luX2VjE" + base64.b64encode(random.Random(7).randbytes(420)).decode()
# The test session's own (tests/conftest.py): the emulated account the store was created in.
SECRET_KEY = "emulator-secret-not-real"
ACCESS_KEY = "AKIAEMULATORTESTKEY0"


def assert_no_secret(run: Run) -> None:
    for stream in (run.stdout, run.stderr):
        for secret in (SESSION_TOKEN, SESSION_TOKEN[100:140], SECRET_KEY, ACCESS_KEY):
            assert secret not in stream
        assert "Signature=" not in stream or "Signature=***" in stream
        lowered = stream.lower()
        # Every Authorization header value printed is masked.
        for part in lowered.split("authorization")[1:]:
            assert "***" in part[:40], part[:200]


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_no_secret_at_any_verbosity_from_any_logger(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path, log_format: str
) -> None:
    items = genomes(3, f"secret-{log_format}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in items))
    env = {"AWS_SESSION_TOKEN": SESSION_TOKEN}
    journal = tmp_path / "j.sqlite"
    run = run_cli(
        "import", manifest, *import_args(emulator, store, journal, "-vvv", "--log-format", log_format),
        env=env,
    )  # fmt: skip
    # Every logger spoke at DEBUG, botocore's signed requests included ...
    assert "x-amz-security-token" in run.stderr.lower(), run.stderr[-3000:]
    assert "botocore" in run.stderr
    # ... and none of it leaked a credential.
    assert_no_secret(run)
    assert run.code == 0, run.stderr[-3000:]


@pytest.mark.slow
def test_rich_markup_in_data_is_printed_verbatim(
    emulator: EmulatorThread, store: str, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    names = ["corrupt_[/]_x", "[link=https://evil.example]click[/link]", "[bold red]loud[/]"]
    rows = [
        {"name": name, "source_file": s3_fasta(f"markup/{i}.fa", "not a genome\n")}
        for i, name in enumerate(names)
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    journal = tmp_path / "j.sqlite"
    # Every source of the job fails, so the List has nothing to be judged by: the names are
    # looked up again for --consistency-grace before the rows fail (a short one here).
    run = run_cli(
        "import", manifest, *import_args(emulator, store, journal), "--consistency-grace", "2"
    )  # fmt: skip
    assert run.code == 1, run.stderr[-3000:]  # the rows failed (not FASTA), and nothing crashed
    status = run_cli("status", "--journal", journal)
    assert status.code == 0, status.stderr
    for result in (run, status):
        assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr
        for name in names:
            assert name in result.stdout, result.stdout


@pytest.mark.slow
def test_a_flood_of_manifest_errors_is_capped(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.csv"
    bad = 199_001
    manifest.write_text("name,source_file\n" + "x,not-s3\n" * bad)
    run = run_cli(
        "import", manifest, "--store-id", "1234567890", "--role-arn",
        "arn:aws:iam::123456789012:role/OmicsImport", timeout=120,
    )  # fmt: skip
    assert run.code == 2
    lines = run.stderr.splitlines()
    assert len(lines) < 120
    problems = sum(1 for line in lines if line.startswith(f"{manifest}:"))
    assert problems == 100
    assert any("more problem(s) not shown" in line for line in lines)
    assert "Traceback" not in run.stderr
