"""``refimport`` on a DynamoDB journal, as a platform team would run it (subprocesses, moto's
DynamoDB on 127.0.0.1, the emulator)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run, create_store, run_cli, starts

from .test_cli import assert_matches_emulator, write_manifest


@pytest.fixture
def ddb_env(moto_endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}


@pytest.mark.slow
def test_journal_init_import_rerun_status_and_report(
    emulator: EmulatorThread,
    genomes: Callable[..., list[tuple[str, str]]],
    tmp_path: Path,
    ddb_env: dict[str, str],
) -> None:
    url = f"dynamodb://refimport-{uuid.uuid4().hex[:8]}"
    init = run_cli("journal", "init", url, "--region", "us-east-1", env=ddb_env)
    assert init.code == 0, init.stderr
    assert "Created journal table" in init.stderr
    again = run_cli("journal", "init", url, env=ddb_env)
    assert again.code == 0 and "Found journal table" in again.stderr  # idempotent

    store = create_store(emulator)
    manifest = write_manifest(tmp_path / "refs.csv", genomes(5, "ddb"), "csv")
    args = [
        "import", manifest, "--store-id", store, "--role-arn", ROLE_ARN,
        "--endpoint-url", emulator.omics_endpoint_url, "--journal", url,
        "--max-sources-per-job", "2", "--json",
    ]  # fmt: skip
    run = run_cli(*args, env=ddb_env)
    assert run.code == 0, run.stderr
    assert run.json()["summary"]["imported"] == 5
    assert_matches_emulator(run, emulator, store)
    assert starts(emulator) == 3

    rerun = run_cli(*args, env=ddb_env)
    assert rerun.code == 0, rerun.stderr
    assert rerun.json()["summary"]["imported"] == 5
    assert starts(emulator) == 3, "the re-run sent something new"

    status = run_cli("status", "--journal", url, "--json", env=ddb_env)
    assert status.code == 0, status.stderr
    [row] = status.json()["stores"]
    assert row["store_id"] == store and row["counts"]["IMPORTED"] == 5
    assert status.json()["active_jobs"] == []

    report = run_cli("report", "--journal", url, "--format", "csv", env=ddb_env)
    assert report.code == 0, report.stderr
    assert report.stdout.count("IMPORTED") == 5


def test_a_missing_table_is_one_clear_line(
    emulator: EmulatorThread,
    genomes: Callable[..., list[tuple[str, str]]],
    tmp_path: Path,
    ddb_env: dict[str, str],
) -> None:
    store = create_store(emulator)
    manifest = write_manifest(tmp_path / "refs.csv", genomes(1, "nope"), "csv")
    for run in (
        run_cli("status", "--journal", "dynamodb://no-such-table", env=ddb_env),
        run_cli(
            "import",
            manifest,
            "--store-id",
            store,
            "--role-arn",
            ROLE_ARN,
            "--endpoint-url",
            emulator.omics_endpoint_url,
            "--journal",
            "dynamodb://no-such-table",
            env=ddb_env,
        ),
    ):
        assert_one_line_error(run, "no-such-table does not exist")
        assert "refimport journal init dynamodb://no-such-table" in run.stderr
    assert starts(emulator) == 0


def test_a_bad_journal_url_is_refused(ddb_env: dict[str, str]) -> None:
    run = run_cli("status", "--journal", "dynamodb://", env=ddb_env)
    assert_one_line_error(run, "is not a DynamoDB journal URL")


def assert_one_line_error(run: Run, needle: str) -> None:
    assert run.code != 0
    assert needle in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr


def test_a_worker_on_a_missing_table_exits_with_one_line(ddb_env: dict[str, str]) -> None:
    run = run_cli(
        "worker", "--journal", "dynamodb://no-such-table", "--http-port", "0", env=ddb_env
    )
    assert run.code != 0
    assert "no-such-table does not exist" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1, run.stderr


def test_journal_init_refuses_a_foreign_table_and_changes_nothing(
    moto_endpoint: str, ddb_env: dict[str, str]
) -> None:
    """Someone else's table of that name is refused before anything is changed: its TTL stays
    off (DynamoDB would otherwise expire its items), and so is one with a journal's key but the
    wrong key types or no index."""
    import boto3

    ddb = boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    foreign = {
        f"orders-{uuid.uuid4().hex[:6]}": dict(
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        ),
        f"numbers-{uuid.uuid4().hex[:6]}": dict(
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "N"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        ),
        f"noindex-{uuid.uuid4().hex[:6]}": dict(
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        ),
    }
    for name, layout in foreign.items():
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **layout)
        init = run_cli(
            "journal", "init", f"dynamodb://{name}", "--region", "us-east-1", env=ddb_env
        )
        assert_one_line_error(init, f"{name} is not a refimport journal")
        assert "left unchanged" in init.stderr
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "DISABLED", (name, ttl)
        # The other commands say the same thing, instead of "does not exist; create it".
        status = run_cli("status", "--journal", f"dynamodb://{name}", env=ddb_env)
        assert_one_line_error(status, f"{name} is not a refimport journal")
        assert "does not exist" not in status.stderr
