"""Embedding: code that reads its credentials from the environment and the emulator's
``client_kwargs()`` are one caller, one account, once the emulator's environment is applied;
without it, the emulator's "not found" says what to fix in one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from async_refimport.emulator import ACCESS_KEY_ID, EmulatorThread, environ, make_fasta
from tests.helpers.common import ROLE_ARN

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "docs" / "guides" / "emulator.md"
HEADING = "## Your code and the emulator in one process"


def readme_embedding_snippet() -> str:
    """The first Python block of the emulator guide's embedding section, as written."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(HEADING) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the embedding section has no python block"
    return match.group(1)


def run_python(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readmes_embedding_snippet_runs_as_written(tmp_path: Path) -> None:
    # The test's environment holds another access key (tests/conftest.py), as a user's shell
    # holds theirs: the snippet must import all the same.
    assert os.environ["AWS_ACCESS_KEY_ID"] != ACCESS_KEY_ID
    script = tmp_path / "embedding.py"
    script.write_text(readme_embedding_snippet(), encoding="utf-8")
    proc = run_python(script, dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    name, state, reference_id = proc.stdout.split()
    assert (name, state) == ("ecoli", "IMPORTED")
    assert reference_id.isdigit()


FAILING_CASE = """
import json
import os

import anyio
import boto3

from async_refimport import Importer, ImportRequest
from async_refimport.emulator import client_kwargs

endpoints = json.loads(os.environ["EMULATOR_ENDPOINTS"])
omics = boto3.client("omics", **client_kwargs(endpoints))
store_id = omics.create_reference_store(name="refs")["id"]
request = ImportRequest(
    store_id, ROLE, SOURCE, "genome-a", endpoint_url=endpoints["omics_endpoint_url"]
)


async def main() -> None:
    async with Importer(journal="j.sqlite") as imp:
        for result in await imp.wait(await imp.submit([request])):
            print(result.state, result.message)


try:
    anyio.run(main)
except Exception as exc:  # however the run reports a store it cannot see
    print("error:", exc)
"""


def test_the_environments_key_without_the_emulators_says_what_to_fix_in_one_line(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    # The case as a user meets it: the store made with client_kwargs(), the Importer signing
    # with the environment's own key (no configure_environment).
    source = s3_fasta("failing/a.fa", make_fasta("chr", 500))
    script = tmp_path / "failing.py"
    script.write_text(f"ROLE = {ROLE_ARN!r}\nSOURCE = {source!r}\n{FAILING_CASE}", encoding="utf-8")
    env = {**os.environ, "EMULATOR_ENDPOINTS": json.dumps(emulator.endpoints())}
    proc = run_python(script, env)
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if "not found" in line]
    assert lines, out
    line = lines[0]
    assert f"AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}" in line
    assert "configure_environment()" in line
    # Both accounts are named, so the mismatch is visible without reading any docs.
    assert len(re.findall(r"account \d{12}", line)) == 2


def test_client_kwargs_and_the_environment_are_one_account(
    emulator_environ: dict[str, str], emulator: EmulatorThread
) -> None:
    store_id = boto3.client("omics", **emulator.client_kwargs()).create_reference_store(
        name="refs"
    )["id"]
    # A client with no arguments at all: key, Region, endpoint and host prefixing all come
    # from the environment the fixture applied. A new session, as an Importer makes one:
    # boto3's default session keeps the credentials it found when it was first used.
    plain = boto3.session.Session().client("omics")
    assert plain.get_reference_store(id=store_id)["id"] == store_id
    assert emulator_environ["AWS_ENDPOINT_URL_OMICS"] == emulator.omics_endpoint_url


def test_another_key_sees_no_store_and_is_told_why(emulator: EmulatorThread) -> None:
    store_id = boto3.client(
        "omics", **emulator.client_kwargs(max_attempts=1)
    ).create_reference_store(name="refs")["id"]
    other = boto3.client(
        "omics",
        **{
            **emulator.client_kwargs(max_attempts=1),
            "aws_access_key_id": "AKIASOMEONEELSE00000",
        },
    )
    # Accounts stay apart: the hint is in the message, the answer is AWS's 404.
    with pytest.raises(ClientError) as caught:
        other.get_reference_store(id=store_id)
    error = caught.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException"
    assert f"AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}" in error["Message"]
    # A store that exists nowhere gets the plain message.
    with pytest.raises(ClientError) as missing:
        other.get_reference_store(id="9999999999")
    assert missing.value.response["Error"]["Message"] == "Reference store 9999999999 not found"


def test_environ_is_the_emulators_variables_without_other_credentials(
    emulator: EmulatorThread,
) -> None:
    base = {
        "PATH": "/usr/bin",
        "AWS_PROFILE": "prod",
        "AWS_SESSION_TOKEN": "token-of-another-key",
        "AWS_ACCESS_KEY_ID": "AKIAREALKEY000000000",
    }
    env = emulator.environ(base)
    assert env["PATH"] == "/usr/bin"
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["AWS_ACCESS_KEY_ID"] == ACCESS_KEY_ID
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == emulator.region
    assert env["AWS_ENDPOINT_URL_OMICS"] == emulator.omics_endpoint_url
    assert env["AWS_ENDPOINT_URL_S3"] == emulator.s3_endpoint_url
    assert env["AWS_DISABLE_HOST_PREFIX_INJECTION"] == "true"
    # botocore's variable for the "events" client (service id EventBridge), and SQS beside it.
    assert env["AWS_ENDPOINT_URL_EVENTBRIDGE"] == emulator.events_endpoint_url
    assert env["AWS_ENDPOINT_URL_SQS"] == emulator.events_endpoint_url
    assert "AWS_ENDPOINT_URL_EVENTS" not in env  # read by nothing
    assert base["AWS_PROFILE"] == "prod"  # the caller's mapping is left alone
    # From the CLI's JSON line alone, the same variables.
    assert environ(emulator.endpoints(), base={}) == emulator.environ(base={})
    assert "PATH" not in emulator.environ(base={})


def test_configure_environment_restores_what_was_there(
    emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.delenv("AWS_ENDPOINT_URL_OMICS", raising=False)
    before = dict(os.environ)
    with emulator.configure_environment() as patch:
        assert os.environ["AWS_ACCESS_KEY_ID"] == ACCESS_KEY_ID
        assert "AWS_PROFILE" not in os.environ
        assert patch.saved["AWS_PROFILE"] == "prod"
    assert dict(os.environ) == before
    patch.restore()  # a second restore changes nothing
    assert dict(os.environ) == before


def test_a_child_refimport_import_with_environ_imports_into_the_emulators_store(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    store_id = boto3.client("omics", **emulator.client_kwargs()).create_reference_store(
        name="refs"
    )["id"]
    uri = s3_fasta("child/a.fa", make_fasta("chr", 400))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{uri},child-a\n", encoding="utf-8")
    # No --endpoint-url, no credentials on the command line: all from env=emulator.environ().
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "async_refimport",
            "import",
            str(manifest),
            "--store-id",
            store_id,
            "--role-arn",
            ROLE_ARN,
            "--journal",
            str(tmp_path / "j.sqlite"),
            "--json",
        ],
        env=emulator.environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["summary"]["imported"] == 1
    assert [(r["name"], r["status"]) for r in document["items"]] == [("child-a", "IMPORTED")]


#: Run by the shell that sourced the env file: omics, EventBridge and SQS clients, no arguments.
CLIENTS = """
import boto3
print(boto3.client("omics").list_reference_stores()["referenceStores"])
events = boto3.client("events")
print(events.meta.endpoint_url)
events.put_rule(Name="env-file-rule", EventPattern='{"source": ["aws.omics"]}')
print(events.describe_rule(Name="env-file-rule")["Name"])
boto3.client("sqs").list_queues()
"""


def test_the_emulator_command_writes_its_environment_for_a_shell(tmp_path: Path) -> None:
    env_file = tmp_path / "emulator.env"
    command = [sys.executable, "-m", "async_refimport", "emulator", "--env-file", str(env_file)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            endpoints = json.loads(server.stdout.readline()) if server.stdout else {}
            # A shell whose user has a profile and a key of their own loads the file; clients
            # with no arguments then list the emulator's stores (none yet) and make a rule in
            # its EventBridge, as `refimport events init` does.
            shell = subprocess.run(
                [
                    "bash",
                    "-c",
                    f". {env_file} && env && {sys.executable} -c {shlex.quote(CLIENTS)}",
                ],
                env={**os.environ, "AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "AKIAMINE"},
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            server.terminate()
            server.wait(30)
    assert shell.returncode == 0, shell.stderr
    *variables, stores, events_url, rule = shell.stdout.splitlines()
    seen = dict(line.split("=", 1) for line in variables if line.startswith("AWS_"))
    assert environ(endpoints, base={}).items() <= seen.items()
    assert "AWS_PROFILE" not in seen
    assert seen["AWS_ENDPOINT_URL_EVENTBRIDGE"] == endpoints["events_endpoint_url"]
    assert "AWS_ENDPOINT_URL_EVENTS" not in seen
    assert stores == "[]"
    # The events client went to the emulator's moto, not to AWS (which refuses the key).
    assert events_url == endpoints["events_endpoint_url"]
    assert rule == "env-file-rule"
    assert not env_file.exists()  # removed on exit


def test_refimport_import_with_another_key_says_what_to_fix_then_imports_once_fixed(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], tmp_path: Path
) -> None:
    # A shell user: the emulator's store, refimport signing with the user's own key.
    store_id = boto3.client("omics", **emulator.client_kwargs()).create_reference_store(
        name="refs"
    )["id"]
    uri = s3_fasta("shell/a.fa", make_fasta("chr", 400))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source_file,name\n{uri},shell-a\n", encoding="utf-8")
    args = [sys.executable, "-m", "async_refimport", "import", str(manifest)]
    args += ["--store-id", store_id, "--role-arn", ROLE_ARN, "--journal", str(tmp_path / "j")]
    wrong = subprocess.run(
        [*args, "--endpoint-url", emulator.omics_endpoint_url],
        env={**os.environ, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 3, wrong.stderr  # a set-up mistake, not a data one
    first = wrong.stderr.splitlines()[0]
    assert "not found" in first and f"AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}" in first
    assert "--env-file" in first
    # Fixed: the emulator's environment. The same command (and journal) imports the row once.
    fixed = subprocess.run(
        [*args, "--json"], env=emulator.environ(), capture_output=True, text=True, timeout=120
    )
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["summary"] == {
        "total": 1,
        "imported": 1,
        "already_present": 0,
        "failed": 0,
    }
    assert [r["name"] for r in emulator.stats()["references"][store_id]] == ["shell-a"]
