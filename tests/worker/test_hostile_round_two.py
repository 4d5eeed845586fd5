"""Issue 25, the worker's side: a worker subprocess meeting a web page aimed at it, a connection
flood, bodies its intake cannot read, spool files it cannot move or name, a port that is no port
and an endpoint with a password. Each is refused with a reason (or left and said once), the
worker stays up, and every row sent or dropped is accounted for."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from async_refimport.emulator import EmulatorThread
from async_refimport.worker.config import port_number
from async_refimport.worker.intakes.http_guard import (
    FLOOD_REPEAT,
    MAX_CONNECTIONS,
    connection_limit,
)
from async_refimport.worker.intakes.spool import NAME_MAX, filed_name, ids_name, shown_name
from tests.helpers.common import ROLE_ARN
from tests.helpers.integration import genomes
from tests.helpers.worker import (
    WORKER,
    WorkerProcess,
    _read_announcement,
    csv_manifest,
    drop,
    wait_for,
)
from tests.worker.test_hostile_input import copy_lines, submission

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


def spawn(
    emu: EmulatorThread, tmp_path: Path, *args: str, nofile: int | None = None
) -> WorkerProcess:
    """A worker with an HTTP intake on a free loopback port (``nofile``: its RLIMIT_NOFILE)."""
    log_path = tmp_path / f"worker.{time.monotonic_ns()}.log"
    cmd = [
        *WORKER, "--endpoint-url", emu.omics_endpoint_url, "--region", emu.region,
        "--role-arn", ROLE_ARN, "--rescan-interval", "0.5", "--busy-wait", "0.2",
        "--api-rate", "50", "--http-port", "0", "--scan-interval", "0.1", *args,
    ]  # fmt: skip

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        preexec_fn=limit_files,
    )
    _SPAWNED.append(proc)
    threading.Thread(target=copy_lines, args=(proc.stderr, log_path), daemon=True).start()
    worker = WorkerProcess(proc, log_path)
    worker.announced = _read_announcement(proc, 60, log_path)
    return worker


def address(worker: WorkerProcess) -> tuple[str, int]:
    host, port = worker.http.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def send(
    worker: WorkerProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request with exactly the headers given (``Host`` included, when given)."""
    host, port = address(worker)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        given = dict(headers or {})
        conn.putrequest(method, path, skip_host="Host" in given, skip_accept_encoding=True)
        for name, value in given.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode(errors="replace")


JSON = {"Content-Type": "application/json"}


def rows_journaled(worker: WorkerProcess) -> int:
    status, doc = send(worker, "GET", "/v1/stores")
    assert status == 200, doc
    return sum(sum(store["rows"].values()) for store in doc["stores"])


def no_traceback(worker: WorkerProcess) -> None:
    text = worker.log_path.read_text()
    assert "Traceback" not in text and "ExceptionGroup" not in text, text[-3000:]


# -- a web page aimed at a loopback worker --------------------------------------------------------


def test_a_web_page_cannot_post_to_or_read_a_loopback_worker(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    worker = spawn(
        emulator, tmp_path, "--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id
    )
    host, port = address(worker)
    body = submission(genomes(s3_fasta, 1, "web-a"))
    # A form or fetch() without a preflight: text/plain, or no type at all.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        status, doc = send(worker, "POST", "/v1/imports", body, headers)
        assert status == 415, doc
        assert "application/json" in doc["errors"][0]["reason"], doc
    # DNS rebinding: the page's own name resolved to 127.0.0.1; reads are refused too.
    for method, path in (("POST", "/v1/imports"), ("GET", "/v1/stores"), ("GET", "/healthz")):
        rebound = {**JSON, "Host": f"attacker.example:{port}"}
        status, doc = send(worker, method, path, body if method == "POST" else None, rebound)
        assert status == 421, (method, path, doc)
    # Another site's page, sent to the worker's own name.
    evil = {**JSON, "Origin": "http://attacker.example", "Host": f"{host}:{port}"}
    assert send(worker, "POST", "/v1/imports", body, evil)[0] == 403
    null = {**JSON, "Origin": "null", "Host": f"localhost:{port}"}
    assert send(worker, "POST", "/v1/imports", body, null)[0] == 403
    assert rows_journaled(worker) == 0  # nothing refused was recorded

    # The worker's own clients: its address, localhost, its own origin.
    own = {**JSON, "Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
    status, doc = send(worker, "POST", "/v1/imports", body, own)
    assert status == 202, doc
    assert send(worker, "GET", "/v1/stores", None, {"Host": f"{host}:{port}"})[0] == 200
    # Through a tunnel (ssh -L, kubectl port-forward) the port differs: still this machine.
    assert send(worker, "GET", "/v1/stores", None, {"Host": "localhost:9000"})[0] == 200
    assert send(worker, "GET", "/v1/stores", None, {"Host": "[::1]:9000"})[0] == 200
    assert rows_journaled(worker) == 1
    no_traceback(worker)


def test_bodies_the_intake_cannot_read_are_4xx_naming_the_problem(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    worker = spawn(
        emulator, tmp_path, "--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id
    )
    body = submission(genomes(s3_fasta, 1, "charset"))
    for charset in ("x-bogus", "rot13", "latin-1"):
        headers = {"Content-Type": f"application/json; charset={charset}"}
        status, doc = send(worker, "POST", "/v1/imports", body, headers)
        assert status == 415, (charset, doc)
        assert charset in doc["errors"][0]["reason"] and "UTF-8" in doc["errors"][0]["reason"]
    # A key given twice: refused as in a manifest, never "the last one wins".
    ((_, uri),) = genomes(s3_fasta, 1, "twice")
    twice = '{"requests": [{"name": "a", "name": "b", "source_file": ' + json.dumps(uri) + "}]}"
    status, doc = send(worker, "POST", "/v1/imports", twice.encode(), JSON)
    assert status == 400, doc
    assert "'name'" in doc["errors"][0]["reason"] and "twice" in doc["errors"][0]["reason"]
    assert rows_journaled(worker) == 0
    # UTF-8, said or not: accepted.
    utf8 = {"Content-Type": "application/json; charset=UTF-8"}
    assert send(worker, "POST", "/v1/imports", body, utf8)[0] == 202
    assert rows_journaled(worker) == 1
    no_traceback(worker)


# -- a connection flood -------------------------------------------------------------------------


def open_many(where: tuple[str, int], n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        try:
            out.append(socket.create_connection(where, timeout=30))
        except OSError:
            break  # the listen backlog is full: enough
    return out


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the worker closes ``sock`` within ``within`` seconds (its 503 read and dropped)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def lines_allowed(since: float) -> int:
    """The warnings one flood may log since ``since``: one, and one more a minute."""
    return 1 + int((time.monotonic() - since) // FLOOD_REPEAT)


def get_until_ok(worker: WorkerProcess, timeout: float = 60) -> None:
    def ok() -> bool:
        try:
            return send(worker, "GET", "/v1/stores")[0] == 200
        except OSError:
            return False

    wait_for(ok, timeout, 0.5)


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit(2) (Linux)")
def test_a_connection_flood_is_bounded_and_the_worker_serves_on(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    args = ("--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id, "--spool", str(spool))
    # 256 descriptors: the worker serves (256 - 64) // 2 = 96 connections at once.
    worker = spawn(emulator, tmp_path, *args, nofile=256)
    started = time.monotonic()
    flood = open_many(address(worker), 400)
    try:
        assert len(flood) > 200
        # Those over the limit are answered and closed at once, not held.
        assert closed_by_peer(flood[-1], 60)
        assert worker.alive()
        # The spool still reads its files meanwhile (descriptors were left for it).
        drop(spool, "during.csv", csv_manifest(genomes(s3_fasta, 2, "flood")))
        wait_for(lambda: (spool / "done" / "during.csv").exists(), 120, 0.2)
    finally:
        for sock in flood:
            sock.close()
    get_until_ok(worker)
    status, doc = send(
        worker, "POST", "/v1/imports", submission(genomes(s3_fasta, 1, "after")), JSON
    )
    assert status == 202, doc
    assert worker.alive()
    full = [line for line in worker.logs() if line.get("event") == "http.connections_full"]
    assert 1 <= len(full) <= lines_allowed(started), full  # not one per connection
    no_traceback(worker)


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit(2) (Linux)")
def test_running_out_of_descriptors_does_not_end_the_worker(
    emulator: EmulatorThread, store_id: str, tmp_path: Path
) -> None:
    worker = spawn(
        emulator, tmp_path, "--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id
    )
    # Lowered under the worker's feet, below the connections it allows: accept() fails.
    pid = worker.proc.pid
    hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (96, hard))
    started = time.monotonic()
    flood = open_many(address(worker), 300)
    try:
        wait_for(
            lambda: any(
                line.get("event") == "http.out_of_file_descriptors" for line in worker.logs()
            ),
            60,
            0.2,
        )
        time.sleep(2)  # several retries of accept() meanwhile
        assert worker.alive()
    finally:
        for sock in flood:
            sock.close()
    get_until_ok(worker)
    lines = [line for line in worker.logs() if line.get("event") == "http.out_of_file_descriptors"]
    assert 1 <= len(lines) <= lines_allowed(started), lines
    assert worker.alive()
    no_traceback(worker)


def test_slow_headers_and_idle_connections_are_closed(
    emulator: EmulatorThread, store_id: str, tmp_path: Path
) -> None:
    worker = spawn(
        emulator, tmp_path, "--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id
    )
    host, port = address(worker)
    idle = socket.create_connection((host, port), timeout=30)
    slow = socket.create_connection((host, port), timeout=30)
    started = time.monotonic()
    try:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed = False
        # A header line a second, for a minute at most: the worker must hang up long before.
        for i in range(60):
            try:
                slow.sendall(b"X-Slow-%d: 1\r\n" % i)
            except OSError:
                closed = True
                break
            slow.settimeout(1)
            try:
                if slow.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
        assert closed, "a connection sending a header line a second was kept open for a minute"
        assert closed_by_peer(idle, max(1.0, 60 - (time.monotonic() - started)))
    finally:
        idle.close()
        slow.close()
    assert send(worker, "GET", "/healthz")[0] == 200
    assert worker.alive()


# -- spool files that cannot be moved or named ---------------------------------------------------


def chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def report_total(path: Path) -> int:
    return int(json.loads(path.read_text())["summary"]["total"])


def test_a_spool_file_that_cannot_be_moved_is_left_and_the_intakes_go_on(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    for sub in ("incoming", "processing"):
        (spool / sub).mkdir(parents=True)
    stuck = drop(spool, "stuck.csv", csv_manifest(genomes(s3_fasta, 2, "stuck")))
    if not chattr("+i", stuck):
        pytest.skip("cannot make a file immutable here (chattr +i)")
    try:
        args = ("--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id)
        worker = spawn(emulator, tmp_path, *args, "--spool", str(spool))
        drop(spool, "good.csv", csv_manifest(genomes(s3_fasta, 2, "good")))
        wait_for(lambda: (spool / "done" / "good.csv").exists(), 120, 0.2)
        # HTTP is up all along.
        body = submission(genomes(s3_fasta, 1, "http"))
        assert send(worker, "POST", "/v1/imports", body, JSON)[0] == 202
        assert stuck.exists() and worker.alive()
        said = [line for line in worker.logs() if line.get("event") == "spool.cannot_pick_up"]
        assert len(said) == 1 and said[0]["file"] == "stuck.csv", said
        # Once it can be moved, it is taken on a later scan.
        assert chattr("-i", stuck)
        wait_for(lambda: (spool / "done" / "stuck.csv").exists(), 120, 0.2)
        assert report_total(spool / "done" / "stuck.csv.report.json") == 2

        # processing/ cannot be written: files wait in incoming/, the rest goes on.
        assert chattr("+i", spool / "processing")
        waiting = drop(spool, "waiting.csv", csv_manifest(genomes(s3_fasta, 1, "waiting")))
        wait_for(
            lambda: any(
                line.get("event") == "spool.cannot_pick_up" and line.get("file") == "waiting.csv"
                for line in worker.logs()
            ),
            60,
            0.2,
        )
        assert send(worker, "GET", "/readyz")[0] == 200 and waiting.exists()
        assert chattr("-i", spool / "processing")
        wait_for(lambda: (spool / "done" / "waiting.csv").exists(), 120, 0.2)
        assert worker.alive()
        no_traceback(worker)
    finally:
        chattr("-i", stuck)
        chattr("-i", spool / "processing")


def test_spool_files_with_long_or_non_utf8_names_are_carried_through(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    long_name = "g" * 247 + ".csv"  # 251 characters: .NAME.ids.json.tmp would not fit
    (spool / "incoming").mkdir(parents=True)
    (spool / "incoming" / ".long.tmp").write_text(csv_manifest(genomes(s3_fasta, 3, "long")))
    os.replace(spool / "incoming" / ".long.tmp", spool / "incoming" / long_name)
    incoming = os.fsencode(spool / "incoming")
    raw_name = b"caf\xe9-\xff.csv"  # Latin-1, not UTF-8
    tmp = os.path.join(incoming, b".raw.tmp")
    with open(tmp, "w") as fh:
        fh.write(csv_manifest(genomes(s3_fasta, 2, "raw")))
    os.replace(tmp, os.path.join(incoming, raw_name))
    args = ("--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id)
    worker = spawn(emulator, tmp_path, *args, "--spool", str(spool))

    done = os.fsencode(spool / "done")

    def reports() -> list[bytes]:
        return [n for n in os.listdir(done) if n.endswith(b".report.json")]

    wait_for(lambda: len(reports()) == 2, 120, 0.2)
    totals = {}
    for name in reports():
        with open(os.path.join(done, name)) as fh:
            doc = json.load(fh)
        manifest = name.removesuffix(b".report.json")
        assert os.path.exists(os.path.join(done, manifest)), name  # filed beside its report
        totals[manifest] = (doc["summary"]["total"], doc["summary"].get("imported", 0))
    assert totals.pop(raw_name) == (2, 2)
    ((shortened, counts),) = totals.items()
    assert counts == (3, 3) and shortened.startswith(b"g" * 100) and shortened.endswith(b".csv")
    assert os.listdir(os.fsencode(spool / "processing")) == []  # nothing left behind
    assert rows_journaled(worker) == 5
    assert worker.alive()
    no_traceback(worker)


# -- start-up flags and what is echoed ------------------------------------------------------------


def test_a_port_that_is_no_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [*WORKER, "--http-port", "99999", "--journal", str(tmp_path / "j.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "99999" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr


def test_a_password_in_the_endpoint_url_is_not_echoed(
    emulator: EmulatorThread, s3_fasta: Callable[..., str], store_id: str, tmp_path: Path
) -> None:
    secret_url = emulator.omics_endpoint_url.replace("http://", "http://admin:hunter2@")
    args = ("--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id)
    worker = spawn(emulator, tmp_path, *args, "--endpoint-url", secret_url, "-vv")
    body = submission(genomes(s3_fasta, 2, "secret"))
    assert send(worker, "POST", "/v1/imports", body, JSON)[0] == 202
    status, doc = send(worker, "GET", "/v1/stores")
    assert status == 200 and doc["stores"], doc
    text = json.dumps(doc)
    assert "hunter2" not in text and "admin" not in text, doc
    assert doc["stores"][0]["endpoint_url"].endswith(emulator.omics_endpoint_url.split("//")[1]), (
        doc
    )
    time.sleep(2)  # the lane's first calls and their log lines
    assert "hunter2" not in worker.log_path.read_text()


# -- the pure parts -------------------------------------------------------------------------------


def test_side_file_and_filed_names_fit_the_file_system() -> None:
    assert ids_name("a.csv") == ".a.csv.ids.json" and filed_name("a.csv") == "a.csv"
    for name in ("g" * 251, "g" * 247 + ".csv", "é" * 120 + ".tsv", "x." + "y" * 250):
        assert len(os.fsencode(f".{ids_name(name)}.tmp")) <= NAME_MAX
        filed = filed_name(name)
        assert len(os.fsencode(f".{filed}.9999.report.json.tmp")) <= NAME_MAX, name
        assert filed != filed_name(name[:-1] + "z")  # the hash tells long names apart
    assert filed_name("g" * 247 + ".csv").endswith(".csv")
    raw = os.fsdecode(b"caf\xe9.csv")
    assert shown_name(raw) == "caf\\xe9.csv" and shown_name("café.csv") == "café.csv"


def test_connection_limit_leaves_descriptors_to_the_rest() -> None:
    assert connection_limit(256) == 96
    assert connection_limit(20_000) == MAX_CONNECTIONS
    assert connection_limit(16) == 4


def test_port_numbers() -> None:
    assert port_number("0") == 0 and port_number("65535") == 65535
    for bad in ("99999", "-1", "http", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            port_number(bad)
