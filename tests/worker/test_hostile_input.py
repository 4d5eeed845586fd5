"""A worker subprocess meeting hostile and broken input where users meet it (its HTTP intake,
its spool, its journal's disk): each is refused or filed with a reason, the worker stays up (or,
when its journal cannot be written, stops in one line), and nothing is lost or imported twice."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import genomes
from tests.helpers.worker import WORKER, WorkerProcess, _read_announcement, drop, wait_for


def raw_request(
    worker: WorkerProcess, method: str, path: str, body: bytes | None = None
) -> tuple[int, Any]:
    """One request with the bytes given as they are (no client-side encoding or checks)."""
    host, port = worker.http.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw)


# -- a full disk ----------------------------------------------------------------------------------


def ignore_sigxfsz() -> None:
    # A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def copy_lines(stream: IO[str], path: Path) -> None:
    with path.open("a") as out:
        for line in stream:
            out.write(line)
            out.flush()


_SPAWNED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    """A worker of a failed test is killed, not left running."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def spawn_worker(emu: EmulatorThread, tmp_path: Path, *args: str) -> WorkerProcess:
    log_path = tmp_path / f"worker.{time.monotonic_ns()}.log"
    cmd = [
        *WORKER, "--endpoint-url", emu.omics_endpoint_url, "--region", emu.region,
        "--role-arn", ROLE_ARN, "--rescan-interval", "0.5", "--busy-wait", "0.2",
        "--api-rate", "50", "--http-port", "0", "--scan-interval", "0.1", *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        # A pipe, not a file: the worker's own file-size limit must not swallow its log.
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        preexec_fn=ignore_sigxfsz,
    )
    _SPAWNED.append(proc)
    threading.Thread(target=copy_lines, args=(proc.stderr, log_path), daemon=True).start()
    worker = WorkerProcess(proc, log_path)
    worker.announced = _read_announcement(proc, 60, log_path)
    return worker


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit(2) (Linux)")
def test_a_full_disk_is_a_503_and_the_worker_goes_on_once_space_is_back(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    emulator.configure(time_scale=0.01)  # jobs of a second or two
    journal = tmp_path / "j.sqlite"
    spool = tmp_path / "spool"
    args = ("--journal", str(journal), "--store-id", store_id, "--max-sources-per-job", "4")
    worker = spawn_worker(emulator, tmp_path, *args, "--spool", str(spool))
    first = genomes(s3_fasta, 8, "disk-a")
    status, answer = raw_request(worker, "POST", "/v1/imports", submission(first))
    assert status == 202, answer
    wait_for(lambda: emulator.stats()["calls"]["StartReferenceImportJob"] >= 1, 30, 0.02)
    # From now on the worker can write no byte past offset 512 of any file: a full disk.
    pid = worker.proc.pid
    limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (512, limits[1]))

    second = genomes(s3_fasta, 3, "disk-b")
    status, answer = raw_request(worker, "POST", "/v1/imports", submission(second))
    # Rows that cannot be recorded are not accepted: a 503 saying why, never a 500.
    assert status == 503, answer
    assert "journal" in answer["error"] and "disk" in answer["error"], answer
    assert raw_request(worker, "POST", "/v1/imports", submission(second))[0] == 503  # a retry
    # A manifest dropped in the spool meanwhile waits in processing/.
    third = genomes(s3_fasta, 2, "disk-c")
    drop(spool, "outage.csv", "name,source_file\n" + "".join(f"{n},{u}\n" for n, u in third))
    wait_for(lambda: (spool / "processing" / "outage.csv").exists(), 30, 0.05)
    assert worker.alive()
    # The job in flight ends meanwhile: its end cannot be recorded either, and the worker waits.
    wait_for(lambda: '"journal.failed"' in worker.log_path.read_text(), 30, 0.05)
    time.sleep(1)  # a few of its retries (--busy-wait 0.2)
    assert worker.alive() and raw_request(worker, "GET", "/healthz")[0] == 200
    assert raw_request(worker, "GET", "/readyz")[0] == 503  # not ready while it cannot record

    # Space is back: the worker finishes the job in flight, takes the refused rows when they
    # are sent again, and imports each row exactly once.
    resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
    wait_for(lambda: len(emulator.stats()["references"].get(store_id, [])) == 8, 60)
    wait_for(lambda: raw_request(worker, "GET", "/readyz")[0] == 200, 30)
    status, answer = raw_request(worker, "POST", "/v1/imports", submission(second))
    assert status == 202, answer
    wait_for(lambda: (spool / "done" / "outage.csv").exists(), 60)
    wait_for(lambda: len(emulator.stats()["references"].get(store_id, [])) == 13, 60)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    names = [r["name"] for r in emulator.stats()["references"][store_id]]
    assert sorted(names) == sorted(n for n, _ in first + second + third)
    text = worker.log_path.read_text()
    assert "Traceback" not in text and "ExceptionGroup" not in text, text[-3000:]
    assert "lane.crashed" not in text, text[-3000:]
    # Said once, not at every retry of the outage.
    events = [e.get("event") for e in worker.logs()]
    assert events.count("journal.failed") == 1 and events.count("spool.cannot_write") == 1
    assert events.count("http.journal_failed") == 1
    assert "spool.file_error" not in events


def submission(items: list[tuple[str, str]]) -> bytes:
    return json.dumps({"requests": [{"name": n, "source_file": u} for n, u in items]}).encode()


# -- the spool and the HTTP intake ----------------------------------------------------------------


def test_hostile_files_and_requests_are_refused_with_a_reason_and_the_worker_goes_on(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    incoming = spool / "incoming"
    incoming.mkdir(parents=True)
    outside = tmp_path / "outside.csv"
    outside.write_text("name,source_file\nnever-read,s3://genomes/a.fa\n")
    (incoming / "link.csv").symlink_to(outside)
    (incoming / "folder.csv").mkdir()
    os.mkfifo(incoming / "pipe.csv")
    # Left in processing/ by a worker that crashed on it: resumed once at start-up, then filed.
    row = '{"name": "deep-genome", "source_file": "s3://genomes/a.fa", "tags": %s}\n'
    deep = "[" * 100_000 + "]" * 100_000
    (spool / "processing").mkdir()
    (spool / "processing" / "crashed.jsonl").write_text(row % deep)
    worker = start_worker(
        "--spool", str(spool), "--http-port", "0", "--journal", str(tmp_path / "j.sqlite"),
        "--store-id", store_id,
    )  # fmt: skip
    drop(spool, "nested.jsonl", row % deep)
    (tmp_path / "latin1.csv").write_bytes(b"name,source_file\ng\xe9nome-1,s3://genomes/a.fa\n")
    os.replace(tmp_path / "latin1.csv", incoming / "latin1.csv")
    drop(spool, "empty.csv", "")

    # Over HTTP: nesting beyond any parser, ids no row can have, bytes that are not UTF-8.
    answers = [
        raw_request(worker, "POST", "/v1/imports", (row % deep).replace("\n", "").encode()),
        raw_request(worker, "POST", "/v1/imports", b'{"requests": [{"name": "g\xe9nome"}]}'),
        raw_request(worker, "POST", "/v1/imports", b"[" * 200_000),
        raw_request(worker, "GET", "/v1/imports/" + "9" * 30),
        raw_request(worker, "GET", "/v1/imports?ids=" + "9" * 30),
        raw_request(worker, "GET", "/v1/nowhere"),
    ]
    assert [status for status, _ in answers] == [400, 400, 400, 404, 200, 404], answers
    for _, body in answers:
        assert body.get("error") or body.get("errors") or body == {"items": []}, body

    for name in ("crashed.jsonl", "nested.jsonl", "latin1.csv", "empty.csv"):
        wait_for(lambda name=name: (spool / "failed" / f"{name}.report.json").exists(), 30)
        report = json.loads((spool / "failed" / f"{name}.report.json").read_text())
        assert report["errors"] and all(e["reason"] for e in report["errors"]), report
    assert not list((spool / "processing").iterdir())

    # A good file still goes through, and the worker never followed the link.
    good = genomes(s3_fasta, 2, "after-hostile")
    drop(spool, "good.csv", "name,source_file\n" + "".join(f"{n},{u}\n" for n, u in good))
    wait_for(lambda: (spool / "done" / "good.csv").exists(), 60)
    assert (incoming / "link.csv").is_symlink() and outside.read_text().startswith("name,")
    names = [r["name"] for r in emulator.stats()["references"][store_id]]
    assert sorted(names) == sorted(n for n, _ in good)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    logs = worker.logs()
    ignored = {e["file"]: e["reason"] for e in logs if e.get("event") == "spool.ignored"}
    assert len([e for e in logs if e.get("event") == "spool.ignored"]) == 3  # once each
    assert "symbolic link" in ignored["link.csv"] and "FIFO" in ignored["pipe.csv"]
    assert "directory" in ignored["folder.csv"]
    text = worker.log_path.read_text()
    assert "Traceback" not in text and "RecursionError" not in text, text[-3000:]


def test_a_remote_client_cannot_aim_the_workers_credentials_or_name_a_foreign_store(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    """What a client may set per row is a closed list: a row naming an endpoint or a profile is
    refused (400, naming the field) and the endpoint it named is never called; with
    --allow-store, a row naming another store is refused too; the worker's own rows go on."""
    from tests.helpers.listener import Listener

    [(name, uri)] = genomes(s3_fasta, 1, "aimed")
    args = ("--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id)
    with Listener() as trap:
        worker = spawn_worker(emulator, tmp_path, *args, "--allow-store", "9999999999")
        row = {"name": name, "source_file": uri}
        refused = {
            "endpoint_url": {**row, "endpoint_url": trap.url},
            "profile": {**row, "profile": "admin"},
            "store_id": {**row, "store_id": "1111111111"},
        }
        for field, bad in refused.items():
            status, answer = raw_request(
                worker, "POST", "/v1/imports", json.dumps({"requests": [bad]}).encode()
            )
            assert status == 400, answer
            assert [e["field"] for e in answer["errors"]] == [field], answer
        status, answer = raw_request(
            worker, "POST", "/v1/imports", json.dumps({"requests": [row]}).encode()
        )
        assert status == 202, answer
        wait_for(lambda: len(emulator.stats()["references"].get(store_id, [])) == 1, 60)
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert trap.connections == 0
    assert [r["name"] for r in emulator.stats()["references"][store_id]] == [name]
