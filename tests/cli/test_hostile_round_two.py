"""Hostile input, round two (issue 25), where the user meets it: ``refimport`` as a subprocess,
given manifests, journal names and journals made to mislead it, and started with its standard
streams closed. Each is refused or handled with one clear line, no traceback; every row is
accounted for, and nothing data holds (a control character, a password) reaches the terminal.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run, starts

from .test_cli_inputs import args_for, assert_one_clean_error, csv_text, no_call_was_made

Genomes = Callable[[int, str], list[tuple[str, str]]]


def refimport_in(
    cwd: Path, *args: str | Path, shell_redirect: str = "", stdin: str | None = None
) -> Run:
    """``refimport ARGS`` run in ``cwd``; ``shell_redirect`` (``2>&-``) is applied by a shell."""
    command = [sys.executable, "-m", "async_refimport", *map(str, args)]
    if shell_redirect:
        command = ["sh", "-c", f'exec "$@" {shell_redirect}', "sh", *command]
    proc = subprocess.run(
        command,
        input=stdin,
        capture_output=True,  # a stream the shell closes stays closed for the command
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=180,
    )
    return Run(proc.returncode, proc.stdout or "", proc.stderr or "")


def one_error_line(run: Run) -> str:
    """The run's only error line (no traceback, nothing else on stderr)."""
    assert "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    return lines[0]


def imported(emulator: EmulatorThread, store: str, genomes: Genomes, journal: Path) -> list[str]:
    """Import two genomes into ``journal``; their names."""
    items = genomes(2, "seed")
    manifest = journal.parent / "seed.csv"
    manifest.write_text(csv_text(items))
    run = refimport_in(journal.parent, "import", manifest, *args_for(emulator, store, journal))
    assert run.code == 0, run.stderr
    return [n for n, _ in items]


# -- 1. every row accounted for ---------------------------------------------------------------------


def test_an_unclosed_quote_refuses_the_file_naming_its_line_even_with_skip_invalid(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    (a, ua), (b, ub), (c, uc), (d, ud) = genomes(4, "quote")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'name,source_file\n{a},{ua}\n"{b},{ub}\n{c},{uc}\n{d},{ud}\n')
    run = refimport_in(
        tmp_path, "import", manifest, "--skip-invalid", *args_for(emulator, store, journal_path)
    )
    assert_one_clean_error(run)
    assert (
        f"{manifest}:3: file: the quote opened on line 3 is never closed: lines 3-5" in run.stderr
    )
    assert no_call_was_made(emulator) and not journal_path.exists()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"name,source_file', "m.csv:1: header: the quote opened on line 1 is never closed"),
        ("nam,source_file", "m.csv:1: name: required column is missing"),
    ],
)
def test_a_header_no_row_can_be_read_by_refuses_the_file_even_with_skip_invalid(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path,
    header: str, expected: str,
) -> None:  # fmt: skip
    manifest = tmp_path / "m.csv"
    manifest.write_text(header + "\n" + "".join(f"{n},{u}\n" for n, u in genomes(2, "head")))
    run = refimport_in(
        tmp_path, "import", "m.csv", "--skip-invalid", *args_for(emulator, store, journal_path)
    )
    assert_one_clean_error(run)
    assert expected in run.stderr and "Skipping" not in run.stderr
    assert no_call_was_made(emulator) and not journal_path.exists()


def test_a_quote_closed_lines_later_is_one_row_named_with_its_lines(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    (a, ua), (b, ub), (c, uc) = genomes(3, "span")
    manifest = tmp_path / "m.csv"
    # The quote opened on line 3 closes on line 4, then text follows it: one malformed row.
    manifest.write_text(f'name,source_file\n{a},{ua}\n"{b},{ub}\n{c}"x,{uc}\n')
    run = refimport_in(
        tmp_path, "import", manifest, "--skip-invalid", "--json",
        *args_for(emulator, store, journal_path),
    )  # fmt: skip
    assert run.code == 1, run.stderr
    assert f"{manifest}:3: row: malformed CSV (lines 3-4)" in run.stderr
    document = run.json()
    assert [i["name"] for i in document["items"]] == [a]
    assert document["summary"]["skipped_invalid"] == 1


# -- 2, 3. what --journal names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("journal", "expected"),
    [
        ("", "error: --journal '' names no journal"),
        (
            "s3://bucket/journal",
            "error: --journal 's3://bucket/journal': s3:// is not a journal URL",
        ),
        ("DYNAMODB://tab?region=../../x", "region '../../x' is not an AWS Region name"),
        ("dynamodb://tab?region=us-east-1%0a", "region 'us-east-1\\n' is not an AWS Region name"),
    ],
)
@pytest.mark.parametrize("command", ["import", "status", "report"])
def test_a_journal_name_that_names_no_journal_is_refused_in_one_line(
    tmp_path: Path, command: str, journal: str, expected: str
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,source_file\nhg38,s3://bkt/a.fa\n")
    given = (
        ["import", manifest, "--store-id", "1234567890", "--role-arn", ROLE_ARN]
        if command == "import"
        else [command]
    )
    run = refimport_in(tmp_path, *given, "--region", "us-east-1", "--journal", journal)
    assert run.code == 2
    assert expected in one_error_line(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]  # no file made of the URL


def test_a_dynamodb_scheme_in_capitals_is_a_dynamodb_journal_not_a_file(tmp_path: Path) -> None:
    # No Region anywhere: the table cannot be reached, which says it is taken as a table.
    env_free = {
        k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport", "status", "--journal", "DYNAMODB://refimport-t"],
        capture_output=True, text=True, cwd=tmp_path, env=env_free, timeout=120,
    )  # fmt: skip
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    assert run.code == 2
    assert one_error_line(run).startswith("error: DynamoDB table refimport-t:")
    assert list(tmp_path.iterdir()) == []


# -- 4. control characters from data ----------------------------------------------------------------


def test_terminal_escapes_in_a_journal_are_shown_escaped_by_status(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    names = imported(emulator, store, genomes, journal)
    with sqlite3.connect(journal) as db:  # a hand edit, or any other writer of the journal
        db.execute(
            "UPDATE rows SET state = 'FAILED', name = ?, message = ? WHERE name = ?",
            ("evil\x1b]0;owned\x07\x1b[2J", "bad\r\nFAKE: all imported\x1b[31m\u202e", names[0]),
        )
    run = refimport_in(tmp_path, "status", "--journal", journal)
    assert run.code == 0, run.stderr
    assert "\x1b" not in run.stdout and "\x07" not in run.stdout and "\u202e" not in run.stdout
    assert "\\x1b]0;owned\\x07\\x1b[2J" in run.stdout
    assert "bad\\r\\nFAKE: all imported\\x1b[31m\\u202e" in run.stdout
    assert not any(line.startswith("FAKE") for line in run.stdout.splitlines())


def test_a_manifest_named_with_escapes_and_a_line_break_cannot_forge_error_lines(
    emulator: EmulatorThread, store: str, journal_path: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "a\x1b[31m\nforged.csv:9: name: fine\n.csv"
    manifest.write_text("name,source_file\nx,s3://bkt/a.fa\n")
    run = refimport_in(tmp_path, "import", manifest, *args_for(emulator, store, journal_path))
    assert_one_clean_error(run)
    assert "\x1b" not in run.stderr
    assert not any(line.startswith("forged.csv") for line in run.stderr.splitlines())
    assert "a\\x1b[31m\\nforged.csv:9: name: fine\\n.csv:2: name: must be 3..255" in run.stderr


# -- 5. a password in an endpoint URL ---------------------------------------------------------------


def test_a_password_in_the_endpoint_url_is_never_printed_nor_kept_in_the_journal(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    manifest = tmp_path / "m.csv"
    manifest.write_text(csv_text(genomes(1, "pw")))
    # A port nothing listens on: the set-up error names the endpoint.
    with_password = "http://admin:hunter2@127.0.0.1:9"
    run = refimport_in(
        tmp_path, "import", manifest, *args_for(emulator, store, journal),
        "--endpoint-url", with_password, "--setup-timeout", "5", "-vv",
    )  # fmt: skip
    assert run.code == 3, run.stderr
    assert "hunter2" not in run.stdout + run.stderr
    assert "http://***@127.0.0.1:9" in run.stderr
    assert not journal.exists() or b"hunter2" not in journal.read_bytes()
    # (The journal's store keys leave it out: tests/unit/test_printed_data.py.)


# -- 9. closed standard streams ---------------------------------------------------------------------


def test_an_import_with_stderr_closed_imports_everything(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    items = genomes(3, "closed")
    manifest = tmp_path / "m.csv"
    manifest.write_text(csv_text(items))
    run = refimport_in(
        tmp_path, "import", manifest, *args_for(emulator, store, journal), shell_redirect="2>&-"
    )
    assert run.code == 0
    assert starts(emulator) >= 1
    with sqlite3.connect(journal) as db:
        states = sorted(s for (s,) in db.execute("SELECT state FROM rows"))
    assert states == ["IMPORTED"] * 3


def test_a_report_to_a_closed_stdout_says_so_in_one_line(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    imported(emulator, store, genomes, journal)
    for command in (["report", "--format", "csv"], ["status"]):
        run = refimport_in(tmp_path, *command, "--journal", journal, shell_redirect=">&-")
        assert run.code == 2
        assert "standard output is closed" in one_error_line(run)


def test_an_import_from_a_closed_stdin_says_so_in_one_line(
    emulator: EmulatorThread, store: str, journal_path: Path, tmp_path: Path
) -> None:
    run = refimport_in(
        tmp_path, "import", "-", *args_for(emulator, store, journal_path), shell_redirect="<&-"
    )
    assert run.code == 2
    assert one_error_line(run) == "-: file: standard input is closed"
    assert no_call_was_made(emulator)


# -- 10. process substitution, Unicode normalization ------------------------------------------------


def test_a_process_substitution_manifest_is_sniffed(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    items = genomes(2, "sniff")
    (tmp_path / "rows.csv").write_text(csv_text(items))
    args = " ".join(f"'{a}'" for a in args_for(emulator, store, journal_path, "--json"))
    proc = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m async_refimport import <(cat rows.csv) {args}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cannot tell the format" not in proc.stderr
    assert sorted(i["name"] for i in Run(0, proc.stdout, "").json()["items"]) == sorted(
        n for n, _ in items
    )


def test_names_equal_but_for_unicode_normalization_are_one_name_in_a_manifest(
    emulator: EmulatorThread, store: str, genomes: Genomes, journal_path: Path, tmp_path: Path
) -> None:
    (_, u1), (_, u2), (plain, u3) = genomes(3, "nfc")
    nfc = unicodedata.normalize("NFC", "g\u00e9nome-1")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"name,source_file\n{nfd},{u1}\n{nfc},{u2}\n{plain},{u3}\n")
    run = refimport_in(tmp_path, "import", manifest, *args_for(emulator, store, journal_path))
    assert_one_clean_error(run)
    assert (
        f"{manifest}:3: name: '{nfc}' is the name on line 2 for store {store} in another "
        "Unicode normalization (NFC/NFD)"
    ) in run.stderr
    assert no_call_was_made(emulator)
    skipped = refimport_in(
        tmp_path, "import", manifest, "--skip-invalid", "--json",
        *args_for(emulator, store, journal_path),
    )  # fmt: skip
    assert skipped.code == 1, skipped.stderr
    assert sorted(i["name"] for i in skipped.json()["items"]) == sorted([nfd, plain])


# -- 6. journal items edited into an invalid shape -------------------------------------------------


def test_a_sqlite_row_in_a_state_no_refimport_wrote_is_named_in_one_line(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    names = imported(emulator, store, genomes, journal)
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE rows SET state = 'BOGUS' WHERE name = ?", (names[1],))
        (row_id,) = db.execute("SELECT id FROM rows WHERE name = ?", (names[1],)).fetchone()
    expected = f"row {row_id} ('{names[1]}'): state 'BOGUS' is not one of QUEUED, SUBMITTED"
    for command in (["status"], ["report", "--format", "csv"]):
        run = refimport_in(tmp_path, *command, "--journal", journal)
        assert run.code == 2, run.stderr
        line = one_error_line(run)
        assert line.startswith(f"error: journal {journal}: ") and expected in line
    # The import of the same manifest stops with that line; nothing is started or skipped.
    before = starts(emulator)
    run = refimport_in(
        tmp_path, "import", tmp_path / "seed.csv", *args_for(emulator, store, journal), "--json"
    )
    assert run.code == 2, run.stderr
    assert expected in run.stderr and "Traceback" not in run.stderr
    assert starts(emulator) == before


@pytest.fixture
def ddb_journal(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path, moto_endpoint: str
) -> tuple[str, dict[str, str], list[str]]:
    """A DynamoDB journal (moto) with two imported rows: its table, environment, and the
    command line that imported them."""
    env = {**os.environ, "COLUMNS": "200", "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}
    table = f"refimport-{uuid.uuid4().hex[:8]}"
    url = f"dynamodb://{table}?region=us-east-1"
    init = subprocess.run(
        [sys.executable, "-m", "async_refimport", "journal", "init", url],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    items = genomes(2, "ddbbad")
    manifest = tmp_path / "seed.csv"
    manifest.write_text(csv_text(items))
    command = [
        "import", str(manifest), *args_for(emulator, store, Path(url))[:-2], "--journal", url,
        "--json",
    ]  # fmt: skip
    run = ddb_cli(env, *command)
    assert run.code == 0, run.stderr
    return table, env, command


def ddb_cli(env: dict[str, str], *args: str) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport", *args],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_dynamodb_items_of_an_invalid_shape_are_named_in_one_line(
    ddb_journal: tuple[str, dict[str, str], list[str]], moto_endpoint: str
) -> None:
    table, env, import_command = ddb_journal
    url = f"dynamodb://{table}?region=us-east-1"
    ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    rows = ddb.scan(TableName=table, FilterExpression="sk = :r", ExpressionAttributeValues={
        ":r": {"S": "ROW"}})["Items"]  # fmt: skip
    stores = ddb.scan(TableName=table, FilterExpression="sk = :s", ExpressionAttributeValues={
        ":s": {"S": "STORE"}})["Items"]  # fmt: skip
    row, store_item = rows[0], stores[0]
    cases = [
        # A numeric name: reported by the report (which reads every row).
        ({**row, "name": {"N": "5"}}, ["report", "--format", "csv"], "name is a number (N) '5'"),
        # A counter written as a string: reported by status (which reads the counters).
        ({**store_item, "n_IMPORTED": {"S": "two"}}, ["status"], "n_IMPORTED is a string (S)"),
        # A store item whose key names no store.
        (
            {"pk": {"S": "STORE#garbage"}, "sk": {"S": "STORE"}, "gpk": {"S": "STORES"},
             "gsk": {"S": "garbage"}, "store": {"S": "garbage"}, "n_QUEUED": {"N": "1"}},
            ["status"],
            "store key 'garbage' is not",
        ),
    ]  # fmt: skip
    for item, command, expected in cases:
        original = ddb.get_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
        ddb.put_item(TableName=table, Item=item)
        run = ddb_cli(env, *command, "--journal", url)
        assert run.code == 2, (expected, run.stdout, run.stderr)
        line = one_error_line(run)
        assert line.startswith("error: DynamoDB journal item") and expected in line, line
        # The import of the same rows: stopped with that line, or every row accounted for.
        rerun = ddb_cli(env, *import_command)
        assert "Traceback" not in rerun.stderr
        if rerun.code != 0:
            assert rerun.code == 2 and expected in one_error_line(rerun), rerun.stderr
        else:
            assert rerun.json()["summary"]["total"] == 2, rerun.stdout
        if "Item" in original:
            ddb.put_item(TableName=table, Item=original["Item"])
        else:
            ddb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    assert ddb_cli(env, "status", "--journal", url).code == 0  # restored: read as before


# -- 7. read-only and unreadable journals -----------------------------------------------------------


def as_unprivileged(command: list[str]) -> list[str]:
    """``command`` under the file permissions a user meets: root keeps them only without the
    capabilities that override them."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv(1) to drop root's override of file permissions")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]


def test_a_read_only_journal_is_read_and_an_unreadable_one_says_permission_denied(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    names = imported(emulator, store, genomes, journal)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    shutil.copy(journal, read_only / "journal.db")
    (read_only / "journal.db").chmod(0o444)
    read_only.chmod(0o555)  # no -shm file can be made beside it
    unreadable = tmp_path / "unreadable.db"
    shutil.copy(journal, unreadable)
    unreadable.chmod(0)
    try:
        for command in (["status", "--json"], ["report", "--format", "csv"]):
            run = run_unprivileged(tmp_path, *command, "--journal", read_only / "journal.db")
            assert run.code == 0, run.stderr
            if command[0] == "status":
                [counts] = [s["counts"] for s in run.json()["stores"]]
                assert counts["IMPORTED"] == 2
            else:
                assert all(name in run.stdout for name in names)
            denied = run_unprivileged(tmp_path, *command, "--journal", unreadable)
            assert denied.code == 2
            line = one_error_line(denied)
            assert f"journal {unreadable} cannot be read: permission denied" in line
            assert "not a refimport journal" not in line
        assert sorted(p.name for p in read_only.iterdir()) == ["journal.db"]  # nothing written
    finally:
        read_only.chmod(0o755)


def run_unprivileged(cwd: Path, *args: str | Path) -> Run:
    proc = subprocess.run(
        as_unprivileged([sys.executable, "-m", "async_refimport", *map(str, args)]),
        capture_output=True, text=True, cwd=cwd, timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    return Run(proc.returncode, proc.stdout, proc.stderr)


# -- 8. another application's table ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        (
            {
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "N"},
                    {"AttributeName": "sk", "AttributeType": "N"},
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
            },
            "its key is not pk (string, hash) + sk (string, range)",
        ),
        (
            {
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
            },
            "it has no by_group index",
        ),
    ],
    ids=["number-keys", "no-index"],
)
def test_a_table_that_is_not_a_journal_is_called_so_by_init_status_and_import(
    moto_endpoint: str, tmp_path: Path, layout: dict[str, object], problem: str
) -> None:
    table = f"other-{uuid.uuid4().hex[:8]}"
    ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST", **layout)  # type: ignore[arg-type]
    env = {**os.environ, "COLUMNS": "200", "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}
    url = f"dynamodb://{table}?region=us-east-1"
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,source_file\nhg38,s3://bkt/a.fa\n")
    for command in (
        ["journal", "init", url],
        ["status", "--journal", url],
        ["report", "--journal", url],
        ["import", str(manifest), "--store-id", "1234567890", "--role-arn", ROLE_ARN,
         "--region", "us-east-1", "--journal", url, "--no-check-sources"],
    ):  # fmt: skip
        run = ddb_cli(env, *command)
        assert run.code == 2, (command, run.stderr)
        line = one_error_line(run)
        assert f"DynamoDB table {table} is not a refimport journal ({problem})" in line
        assert "does not exist" not in line and "Found journal table" not in run.stderr
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"  # left unchanged


def test_a_name_journaled_in_another_unicode_normalization_is_warned_of(
    emulator: EmulatorThread, store: str, genomes: Genomes, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    (_, u1), (_, u2) = genomes(2, "nfcj")
    nfc = unicodedata.normalize("NFC", "g\u00e9nome-2")
    nfd = unicodedata.normalize("NFD", nfc)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(f"name,source_file\n{nfc},{u1}\n")
    second.write_text(f"name,source_file\n{nfd},{u2}\n")
    run = refimport_in(tmp_path, "import", first, *args_for(emulator, store, journal))
    assert run.code == 0, run.stderr
    assert "normalization" not in run.stderr
    run = refimport_in(tmp_path, "import", second, *args_for(emulator, store, journal), "--json")
    assert run.code == 0, run.stderr  # a warning, not a refusal: the service takes both
    assert "journal.name_normalization" in run.stderr
    assert "form=NFD journaled_form=NFC" in run.stderr
    assert [i["name"] for i in run.json()["items"]] == [nfd]
