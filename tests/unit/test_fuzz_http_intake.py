"""Fuzzing the worker's HTTP intake over a real socket: whatever the method, path, query and body
(deeply nested JSON, 30-digit ids, wrong types, invalid UTF-8, bytes that are not JSON at all),
the answer is a 2xx or a 4xx with a JSON error document, never a 500 or an unhandled exception.

The intake runs in this process (an Importer on the in-memory gateway, served on 127.0.0.1 by a
blocking portal's event loop); requests are written byte for byte, so nothing is cleaned up by a
client library on the way."""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from async_refimport import ImporterSettings, PollingPolicy, RetryPolicy
from async_refimport._metrics import WorkerMetrics
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults
from async_refimport.testing import MemoryGateway
from async_refimport.worker.intakes.http import HttpIntake
from tests.helpers.common import ROLE_ARN, STORE_ID

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis directory in the worktree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FAST = ImporterSettings(
    retry=RetryPolicy(attempts=2, initial=0.001, max_backoff=0.01),
    polling=PollingPolicy(first_poll=0.001, min_interval=0.001, max_interval=0.01),
    busy_wait=0.01,
    rescan_interval=0.05,
)
DEFAULTS = ManifestDefaults(store_id=STORE_ID, role_arn=ROLE_ARN, region="us-east-1")


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    journal = tmp_path_factory.mktemp("fuzz-http") / "j.sqlite"
    with anyio.from_thread.start_blocking_portal() as portal:
        importer = Importer(journal, gateway=MemoryGateway(), region="us-east-1", settings=FAST)
        # The portal enters and leaves the Importer in one task of its event loop.
        with portal.wrap_async_context_manager(importer) as imp:
            intake = HttpIntake(imp, WorkerMetrics(), DEFAULTS, lambda: True, port=0)
            served, _ = portal.start_task(intake.run)
            assert intake.url is not None
            host, port = intake.url.removeprefix("http://").rsplit(":", 1)
            yield host, int(port)
            served.cancel()


def exchange(address: tuple[str, int], method: bytes, target: bytes, body: bytes) -> tuple[
    int, str, bytes
]:  # fmt: skip
    """Send one request as raw bytes; returns (status, content type, body)."""
    host = b"%s:%d" % (address[0].encode(), address[1])  # a loopback worker answers its own name
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (method, target, host)
    head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(head + body)
        resp = http.client.HTTPResponse(sock, method=method.decode())
        resp.begin()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()


def _valid_target(target: bytes) -> bool:
    """Visible ASCII only: any other byte makes the request line invalid HTTP, which aiohttp
    refuses (400, plain text) before the intake sees it."""
    return all(0x21 <= c <= 0x7E for c in target)


def check(status: int, content_type: str, raw: bytes, method: bytes, target: bytes) -> None:
    assert status < 500, (status, raw[:300])
    if not _valid_target(target):
        assert status == 400
        return
    if status >= 400:
        assert content_type.startswith("application/json"), (status, content_type, raw[:300])
    if method == b"HEAD":
        assert raw == b""  # the headers of a GET, no body
    elif status >= 400:
        doc = json.loads(raw)
        assert doc.get("error") or doc.get("errors"), doc
    elif not target.startswith(b"/metrics"):
        json.loads(raw)


# -- what a hostile or broken client sends --------------------------------------------------------

_ROUTES = st.sampled_from(
    [b"/v1/imports", b"/v1/imports/", b"/v1/imports?ids=", b"/v1/stores", b"/healthz",
     b"/readyz", b"/metrics", b"/", b"/v1/", b"/v1/imports/1/x"]
)  # fmt: skip
_DIGITS = st.integers(min_value=1, max_value=60).map(lambda n: b"9" * n)
# Bytes a request target may carry (visible ASCII), percent-escapes of any byte (invalid UTF-8
# among them), and raw bytes beyond ASCII.
_TARGET_BYTES = st.one_of(
    st.binary(max_size=20).map(lambda b: "".join(f"%{c:02X}" for c in b).encode()),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20).map(str.encode),
    st.binary(max_size=8).map(lambda b: bytes(c | 0x80 for c in b)),
    _DIGITS,
    st.sampled_from([b"-1", b"0", b"1", b"1e9", b"0x10", b"%2C%2C", b",", b"1,2,abc", b"%00"]),
)
_TARGETS = st.builds(bytes.__add__, _ROUTES, _TARGET_BYTES) | _ROUTES
_METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS"])

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["s3://genomes/a.fa", "hg38", ROLE_ARN, STORE_ID, "us-east-1", "\x00"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
_FIELDS = st.sampled_from(
    ["name", "source_file", "sourceFile", "description", "tags", "store_id", "role_arn", "region",
     "endpoint_url", "profile", "colour"]
)  # fmt: skip
_ROWS = st.dictionaries(_FIELDS, _JSON, max_size=8)
_DOCUMENTS = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {"requests": st.lists(_ROWS | _JSON, max_size=5)}, optional={"submission": _JSON}
    ),
)


def _deep(depth: int, *, inside_tags: bool) -> bytes:
    nested = b"[" * depth + b"]" * depth
    if not inside_tags:
        return nested
    return b'{"requests": [{"name": "hg38", "source_file": "s3://genomes/a.fa", "tags": %s}]}' % (
        nested
    )


_BODIES = st.one_of(
    _DOCUMENTS.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
    st.builds(_deep, st.integers(1, 200_000), inside_tags=st.booleans()),
    # Valid JSON text that is not valid UTF-8 once a string is touched.
    st.binary(min_size=1, max_size=10).map(
        lambda b: b'{"requests": [{"name": "' + bytes(c | 0x80 for c in b) + b'"}]}'
    ),
)


@FUZZ
@given(method=_METHODS, target=_TARGETS, body=_BODIES)
def test_any_request_is_answered_with_json_and_never_a_500(
    address: tuple[str, int],
    caplog: pytest.LogCaptureFixture,
    method: bytes,
    target: bytes,
    body: bytes,
) -> None:
    caplog.clear()
    status, content_type, raw = exchange(address, method, target, body)
    check(status, content_type, raw, method, target)
    # Nothing a client sends puts an error or a traceback in the worker's log.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@FUZZ
@given(body=_DOCUMENTS)
def test_any_submission_is_accepted_or_refused_with_every_problem(
    address: tuple[str, int], body: Any
) -> None:
    status, content_type, raw = exchange(
        address, b"POST", b"/v1/imports", json.dumps(body).encode()
    )
    check(status, content_type, raw, b"POST", b"/v1/imports")
    assert status in (202, 400, 413), status
    doc = json.loads(raw)
    if status == 202:
        assert len(doc["ids"]) == len(body["requests"])
    else:
        for error in doc["errors"]:
            assert set(error) >= {"field", "reason"}, error


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/imports/" + b"9" * 30,
        b"/v1/imports/" + b"1" * 5000,  # beyond Python's int() digit limit
        b"/v1/imports?ids=" + b"9" * 30 + b",1",
        b"/v1/imports?ids=" + b"1" * 5000,
        b"/v1/imports/%FF%FE",
        b"/v1/imports?ids=%FF",
        b"/nowhere",
    ],
)
def test_ids_and_paths_no_row_can_have(address: tuple[str, int], target: bytes) -> None:
    status, content_type, raw = exchange(address, b"GET", target, b"")
    check(status, content_type, raw, b"GET", target)
    assert status in (200, 400, 404), status


def test_a_body_too_large_is_a_json_413(address: tuple[str, int], tmp_path: Path) -> None:
    body = b'{"requests": [' + b'{"name": "aaa"},' * 2_500_000 + b"{}]}"
    status, content_type, raw = exchange(address, b"POST", b"/v1/imports", body)
    check(status, content_type, raw, b"POST", b"/v1/imports")
    assert status == 413
