"""The worker against hostile set-ups: no secret in its logs at any verbosity, no HTTP beyond
loopback without a token."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from async_refimport.worker.config import is_loopback as _loopback
from tests.cli.test_cli_hardening import SESSION_TOKEN
from tests.helpers.integration import genomes
from tests.helpers.worker import WORKER, WorkerProcess, wait_for

WORKER_TOKEN = "worker-token-0123456789"


@pytest.mark.slow
def test_worker_logs_no_secret_even_at_debug(
    start_worker: Callable[..., WorkerProcess],
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    worker = start_worker(
        "--http-port", "0", "--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id,
        "-vvv", token=WORKER_TOKEN,
    )  # fmt: skip
    items = genomes(s3_fasta, 2, "redact")
    body = {"requests": [{"name": n, "source_file": u} for n, u in items]}
    status, answer, _ = worker.request("POST", "/v1/imports", body)
    assert status == 202
    wait_for(
        lambda: all(worker.request("GET", f"/v1/imports/{i}")[1]["final"] for i in answer["ids"])
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    text = worker.log_path.read_text()
    assert "x-amz-security-token" in text.lower()  # botocore's debug lines were there
    for secret in (SESSION_TOKEN, SESSION_TOKEN[200:240], WORKER_TOKEN, "emulator-secret-not-real"):
        assert secret not in text
    assert "AKIAEMULATORTESTKEY0" not in text


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "refimport.internal"])
def test_worker_refuses_http_beyond_loopback_without_a_token(host: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*WORKER, "--http-port", "0", "--http-host", host, "--journal", str(tmp_path / "j.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1"},
    )
    assert proc.returncode == 2
    assert "reachable from other hosts" in proc.stderr
    assert "REFIMPORT_WORKER_TOKEN" in proc.stderr and "--trusted-network" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "j.sqlite").exists()  # refused before anything was opened


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert _loopback(host), host
    for host in ("0.0.0.0", "", "::", "10.0.0.1", "example.com"):
        assert not _loopback(host), host
