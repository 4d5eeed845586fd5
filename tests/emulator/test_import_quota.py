"""The account's concurrent import quota: Starts refused 402 while the store itself runs no job.

AWS's Service Quotas list "Storage - Maximum concurrent sequence or reference store import jobs":
read-set imports and the reference imports of all the account's stores share it. The emulator
models it as ``Faults.import_quota`` slots per account and Region, of which ``other_imports``
(read-set imports it does not run) hold some, for ``other_imports_for`` seconds or until changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
import pytest

import async_refimport.emulator as emulator_pkg
from async_refimport.emulator import EmulatorThread, Faults
from tests.helpers.emulator import ROLE, wait_job

from .test_faults import _http
from .test_semantics import error_code, start

SLOW_JOBS = 0.05  # time_scale: 1.5 s of overhead per job, long enough to see a job running


def refused(omics: Any, store_id: str, uri: str, name: str, **kwargs: Any) -> tuple[str, int, str]:
    """Start a job that must be refused: (code, HTTP status, message)."""
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        omics.start_reference_import_job(
            referenceStoreId=store_id,
            roleArn=ROLE,
            sources=[{"sourceFile": uri, "name": name}],
            **kwargs,
        )
    code, status = error_code(exc)
    return code, status, str(exc.value.response["Error"]["Message"])


def test_a_full_account_quota_refuses_every_start_while_the_store_runs_no_job(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    # Read-set imports fill both of the account's slots for 0.8 s (real seconds).
    emulator.configure(
        faults=Faults(tps=None, import_quota=2, other_imports=2, other_imports_for=0.8)
    )
    uri = fasta_uri("quota1")
    for _ in range(3):
        code, status, message = refused(omics, store_id, uri, "quota1", clientToken="q-1")
        assert (code, status) == ("ServiceQuotaExceededException", 402)
        assert "quota of concurrent import jobs (2)" in message
    # What the client can see: the store runs nothing, and has never run anything.
    assert omics.list_reference_import_jobs(referenceStoreId=store_id)["importJobs"] == []
    stats = emulator.stats()
    assert stats["jobs"] == []
    assert stats["rejected_quota_starts"] == 3
    assert stats["rejected_concurrent_starts"] == 0  # not a busy store
    assert stats["errors"] == {"ServiceQuotaExceededException": 3}
    slots = stats["import_slots"]
    assert (slots["quota"], slots["other_imports"]) == (2, 2)
    assert 0 < slots["other_imports_left"] <= 0.8
    assert slots["reference_imports"][0]["running"] == 0
    # Once the other imports end, the same request (same token: a refusal remembers none)
    # starts the job, which imports.
    time.sleep(slots["other_imports_left"] + 0.05)
    job = start(omics, store_id, (uri, "quota1"), token="q-1")
    assert wait_job(omics, store_id, job["id"])["status"] == "COMPLETED"
    after = emulator.stats()["import_slots"]
    assert (after["other_imports"], after["other_imports_left"]) == (0, None)


def test_the_accounts_stores_share_the_quota_and_other_accounts_do_not(
    emulator: EmulatorThread, fasta_uri: Callable[..., str]
) -> None:
    # Three slots per account and Region, one held by a read-set import: two reference imports.
    # Jobs of 5 s (real), which end only when cancelled here.
    emulator.configure(
        time_scale=SLOW_JOBS,
        job_overhead=100.0,
        store_quota=3,
        faults=Faults(tps=None, import_quota=3, other_imports=1),
    )

    def client(key: str, region: str = "us-east-1") -> Any:
        kw = emulator.client_kwargs(max_attempts=1) | {
            "aws_access_key_id": key,
            "region_name": region,
        }
        return boto3.client("omics", **kw)

    ours = client("111111111111")
    a, b, c = (ours.create_reference_store(name=n)["id"] for n in ("a", "b", "c"))
    job_a = start(ours, a, (fasta_uri("share-a"), "share-a"))
    job_b = start(ours, b, (fasta_uri("share-b"), "share-b"))
    code, status, message = refused(ours, c, fasta_uri("share-c"), "share-c")
    assert (code, status) == ("ServiceQuotaExceededException", 402)
    assert "2 reference and 1 other" in message
    assert ours.list_reference_import_jobs(referenceStoreId=c)["importJobs"] == []
    # Another account, and the same account in another Region, have quotas of their own.
    theirs = client("222222222222")
    other = theirs.create_reference_store(name="theirs")["id"]
    start(theirs, other, (fasta_uri("share-other"), "share-other"))
    eu = client("111111111111", "eu-west-1")
    eu_store = eu.create_reference_store(name="eu")["id"]
    start(eu, eu_store, (fasta_uri("share-eu"), "share-eu"))
    running = {
        (p["account"], p["region"]): p["running"]
        for p in emulator.stats()["import_slots"]["reference_imports"]
    }
    assert running == {
        ("111111111111", "us-east-1"): 2,
        ("222222222222", "us-east-1"): 1,
        ("111111111111", "eu-west-1"): 1,
    }
    # A slot comes free when one of the account's jobs ends (CANCELLING still holds it).
    assert emulator.cancel_job(job_a["id"])
    assert wait_job(ours, a, job_a["id"])["status"] == "CANCELLED"
    start(ours, c, (fasta_uri("share-c"), "share-c"))
    assert emulator.stats()["rejected_quota_starts"] == 1
    assert job_b["id"] in {j["job_id"] for j in emulator.stats()["jobs"]}


def test_the_store_busy_refusal_comes_before_the_quota(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    emulator.configure(time_scale=SLOW_JOBS, faults=Faults(tps=None, import_quota=1))
    first = start(omics, store_id, (fasta_uri("order-a"), "order-a"))
    code, status, message = refused(omics, store_id, fasta_uri("order-b"), "order-b")
    assert (code, status) == ("ServiceQuotaExceededException", 402)
    assert first["id"] in message  # the busy store's refusal, naming its job
    stats = emulator.stats()
    assert (stats["rejected_concurrent_starts"], stats["rejected_quota_starts"]) == (1, 0)


def test_other_imports_are_set_and_released_at_runtime_over_http(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    uri = fasta_uri("rt1")
    status, cfg = _http(
        emulator,
        "POST",
        "/_emulator/config",
        {"faults": {"import_quota": 1, "other_imports": 1, "other_imports_for": 30}},
    )
    assert status == 200
    assert (cfg["faults"]["import_quota"], cfg["faults"]["other_imports"]) == (1, 1)
    assert refused(omics, store_id, uri, "rt1")[:2] == ("ServiceQuotaExceededException", 402)
    _, stats = _http(emulator, "GET", "/_emulator/stats")
    left = stats["import_slots"]["other_imports_left"]
    assert 25 < left <= 30
    # Changing another fault keeps the period running; changing the other imports restarts it.
    time.sleep(0.2)
    _http(emulator, "POST", "/_emulator/config", {"faults": {"latency": 0}})
    _, stats = _http(emulator, "GET", "/_emulator/stats")
    assert stats["import_slots"]["other_imports_left"] < left - 0.1
    # Released at runtime: the very next Start runs.
    status, cfg = _http(emulator, "POST", "/_emulator/config", {"faults": {"other_imports": 0}})
    assert status == 200 and cfg["faults"]["other_imports"] == 0
    job = start(omics, store_id, (uri, "rt1"))
    assert wait_job(omics, store_id, job["id"])["status"] == "COMPLETED"
    # A quota of its own can hold the store's Start too: 0 slots.
    _http(emulator, "POST", "/_emulator/config", {"faults": {"import_quota": 0}})
    assert refused(omics, store_id, fasta_uri("rt2"), "rt2")[:2] == (
        "ServiceQuotaExceededException",
        402,
    )
    # Reset with settings restores the session's: no quota at all.
    _http(emulator, "POST", "/_emulator/reset?settings=1")
    _, stats = _http(emulator, "GET", "/_emulator/stats")
    assert stats["import_slots"] == {
        "quota": None,
        "other_imports": 0,
        "other_imports_left": None,
        "reference_imports": [],
    }
    assert stats["rejected_quota_starts"] == 0


def test_other_imports_in_python_and_their_period_restarts_on_reset(
    omics: Any, emulator: EmulatorThread, store_id: str, fasta_uri: Callable[..., str]
) -> None:
    full = Faults.none().replace(import_quota=1, other_imports=1, other_imports_for=0.3)
    emulator.configure(faults=full)
    assert emulator.faults == full
    time.sleep(0.35)
    job = start(omics, store_id, (fasta_uri("py1"), "py1"))  # the period has passed
    wait_job(omics, store_id, job["id"])
    emulator.reset()  # keeps the settings, starts their period anew
    store = omics.create_reference_store(name="again")["id"]
    assert refused(omics, store, fasta_uri("py2"), "py2")[:2] == (
        "ServiceQuotaExceededException",
        402,
    )
    emulator.configure(faults=emulator.faults.replace(other_imports=0))
    start(omics, store, (fasta_uri("py2"), "py2"))


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"other_imports": 1}, "other_imports needs an import_quota"),
        ({"import_quota": -1}, "import_quota must be >= 0"),
        ({"import_quota": 1.5}, "import_quota must be an integer"),
        ({"import_quota": 1, "other_imports": -1}, "other_imports must be >= 0"),
        ({"import_quota": 1, "other_imports": True}, "other_imports must be an integer"),
        ({"other_imports_for": -2}, "other_imports_for must be >= 0"),
        ({"other_imports_for": "1"}, "other_imports_for must be a number"),
    ],
)
def test_bad_quota_settings_are_refused_with_a_reason(
    emulator: EmulatorThread, faults: dict[str, Any], reason: str
) -> None:
    before = emulator.config()
    status, answer = _http(emulator, "POST", "/_emulator/config", {"faults": faults})
    assert status == 400 and reason in answer["message"]
    assert emulator.config() == before
    with pytest.raises(ValueError, match=reason):
        Faults(**faults)


def test_the_cli_sets_the_quota_the_busy_message_and_cancel_events() -> None:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    command = [
        sys.executable,
        "-m",
        "async_refimport.emulator",
        "--time-scale",
        "0.001",
        "--tps",
        "0",
        "--import-quota",
        "2",
        "--other-imports",
        "2",
        "--other-imports-for",
        "600",
        "--busy-code",
        "ValidationException",
        "--busy-message",
        "Only one reference import job may run at a time in a reference store",
        "--cancel-events",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            omics = boto3.client("omics", **emulator_pkg.client_kwargs(info, max_attempts=1))
            store = omics.create_reference_store(name="cli")["id"]
            code, status, _ = refused(omics, store, "s3://nowhere/a.fa", "cli-a")
            assert (code, status) == ("ServiceQuotaExceededException", 402)
            cfg = get_json(f"{info['omics_endpoint_url']}/_emulator/config")
            assert cfg["faults"]["import_quota"] == 2
            assert cfg["faults"]["other_imports"] == 2
            assert cfg["faults"]["other_imports_for"] == 600
            assert cfg["unknowns"]["busy_code"] == "ValidationException"
            assert cfg["unknowns"]["busy_message"].startswith("Only one reference import")
            assert cfg["unknowns"]["cancel_events"] is True
        finally:
            proc.terminate()
            proc.wait(30)


def test_the_cli_refuses_other_imports_without_a_quota_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport.emulator", "--other-imports", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("refimport emulator: other_imports needs an import_quota")
    assert len(proc.stderr.strip().splitlines()) == 1


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())
