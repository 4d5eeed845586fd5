"""A HealthOmics endpoint that is not a URL is a set-up mistake said once, naming where it comes
from (the environment variable or the option), never a problem blamed on every row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import ROLE_ARN, run_cli


@pytest.mark.parametrize(
    ("env", "option", "code", "named"),
    [
        ({"AWS_ENDPOINT_URL_OMICS": "garbage"}, [], 3, "AWS_ENDPOINT_URL_OMICS"),
        ({"AWS_ENDPOINT_URL": "not a url"}, [], 3, "AWS_ENDPOINT_URL"),
        ({}, ["--endpoint-url", "ftp://host"], 2, "--endpoint-url"),
    ],
)
def test_a_bad_endpoint_is_one_line_naming_its_source(
    tmp_path: Path, env: dict[str, str], option: list[str], code: int, named: str
) -> None:
    manifest = tmp_path / "m.csv"
    rows = "".join(f"ref-{i},s3://genomes/ref-{i}.fa\n" for i in range(3))
    manifest.write_text("name,source_file\n" + rows)
    journal = tmp_path / "j.sqlite"
    run = run_cli(
        "import", manifest, "--store-id", "1234567890", "--role-arn", ROLE_ARN,
        "--journal", journal, *option, env=env,
    )  # fmt: skip
    assert run.code == code, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}: "), run.stderr
    assert "m.csv:" not in run.stderr and "Traceback" not in run.stderr
    assert not journal.exists()  # nothing journaled
