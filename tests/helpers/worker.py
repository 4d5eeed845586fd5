"""Helpers of the worker tests (their fixtures are in tests/worker/conftest.py)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.common import ROLE_ARN

WORKER = [sys.executable, "-m", "async_refimport.worker.main"]


#: The same worker, reached the way users start it: ``refimport worker ...``.
CLI_WORKER = [sys.executable, "-m", "async_refimport", "worker"]


@dataclass
class WorkerProcess:
    """A running ``refimport worker`` and what it announced on stdout."""

    proc: subprocess.Popen[str]
    log_path: Path
    announced: dict[str, Any] = field(default_factory=dict)
    token: str | None = None

    @property
    def http(self) -> str:
        url = self.announced.get("http")
        assert url, "the worker has no HTTP intake"
        return str(url)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | bool | None = True,
    ) -> tuple[int, Any, dict[str, str]]:
        """One HTTP call; returns (status, JSON body or text, headers)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.http + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        bearer = self.token if token is True else token
        if isinstance(bearer, str):
            req.add_header("Authorization", f"Bearer {bearer}")
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                status, raw, headers = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            status, raw, headers = exc.code, exc.read(), dict(exc.headers)
        text = raw.decode()
        try:
            return status, json.loads(text), headers
        except ValueError:
            return status, text, headers

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "raw", "text": line})
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None


def _read_announcement(
    proc: subprocess.Popen[str], timeout: float, log_path: Path
) -> dict[str, Any]:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if line:
                return dict(json.loads(line))
        if proc.poll() is not None:
            break
    raise AssertionError(f"worker did not become ready; log:\n{log_path.read_text()[-4000:]}")


def drop(spool: Path, name: str, content: str) -> Path:
    """Move a manifest into ``incoming/`` atomically, as users are told to."""
    incoming = spool / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    tmp = incoming / f".{name}.tmp"
    tmp.write_text(content)
    final = incoming / name
    os.replace(tmp, final)
    return final


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


def csv_manifest(items: list[tuple[str, str]], store: str | None = None) -> str:
    header = (
        "store_id,name,source_file,description\n" if store else "name,source_file,description\n"
    )
    lines = [
        (f"{store},{name},{uri},genome {name}" if store else f"{name},{uri},genome {name}")
        for name, uri in items
    ]
    return header + "\n".join(lines) + "\n"


@pytest.fixture
def start_worker(
    tmp_path: Path, emulator: EmulatorThread
) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker(*args, token=None, name="w")`` starts a worker with fast test settings."""
    started: list[WorkerProcess] = []
    counter = iter(range(1000))

    def start(
        *args: str, token: str | None = None, name: str | None = None, cli: bool = False
    ) -> WorkerProcess:
        label = name or f"worker{next(counter)}"
        log_path = tmp_path / f"{label}.{len(started)}.log"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("REFIMPORT_WORKER_TOKEN", None)
        if token is not None:
            env["REFIMPORT_WORKER_TOKEN"] = token
        cmd = [
            *(CLI_WORKER if cli else WORKER),
            "--endpoint-url",
            emulator.omics_endpoint_url,
            "--region",
            emulator.region,
            "--role-arn",
            ROLE_ARN,
            "--scan-interval",
            "0.1",
            "--rescan-interval",
            "0.5",
            "--busy-wait",
            "0.2",
            "--api-rate",
            "50",
            *args,
        ]
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, cwd=tmp_path
            )
        worker = WorkerProcess(proc, log_path, token=token)
        started.append(worker)
        worker.announced = _read_announcement(proc, 60, log_path)
        return worker

    yield start
    for worker in started:
        if worker.alive():
            worker.proc.kill()
            worker.proc.wait(10)
        if worker.proc.stdout is not None:
            worker.proc.stdout.close()
