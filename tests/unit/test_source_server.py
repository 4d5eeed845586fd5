"""The tests' local HTTP file server (tests.helpers.sources): what staging tests rely on."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.helpers.sources import SourceServer, parse_range

DATA = bytes(range(256)) * 4096  # 1 MiB: several chunks


@pytest.fixture
def server(source_server: SourceServer) -> SourceServer:
    return source_server


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_serves_bytes_with_length_etag_and_last_modified(server: SourceServer) -> None:
    status, headers, body = _get(server.add("/a/x.fa.gz", DATA))
    assert status == 200 and body == DATA
    assert headers["Content-Length"] == str(len(DATA))
    assert headers["ETag"].startswith('"') and headers["Last-Modified"].endswith("GMT")
    assert headers["Accept-Ranges"] == "bytes"


def test_serves_a_file_by_path(server: SourceServer, tmp_path: Path) -> None:
    file = tmp_path / "big.fa"
    file.write_bytes(DATA * 3)
    status, headers, body = _get(server.add("big.fa", file))
    assert status == 200 and body == DATA * 3
    assert headers["Content-Length"] == str(3 * len(DATA))


def test_a_range_request_gets_206_and_those_bytes(server: SourceServer) -> None:
    url = server.add("/r.fa", DATA)
    status, headers, body = _get(url, {"Range": "bytes=1000-299999"})
    assert status == 206 and body == DATA[1000:300000]
    assert headers["Content-Range"] == f"bytes 1000-299999/{len(DATA)}"
    status, _, body = _get(url, {"Range": "bytes=-10"})
    assert status == 206 and body == DATA[-10:]
    status, headers, _ = _get(url, {"Range": f"bytes={len(DATA)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(DATA)}"
    etag = _get(url)[1]["ETag"]
    assert _get(url, {"Range": "bytes=5-9", "If-Range": etag})[0] == 206
    assert _get(url, {"Range": "bytes=5-9", "If-Range": '"other"'})[0] == 200


def test_head_answers_headers_without_a_body(server: SourceServer) -> None:
    url = server.add("/h.fa", DATA)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=60)
    conn.request("HEAD", parts.path)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == str(len(DATA))
    assert resp.read() == b""
    conn.close()
    assert server.hits("/h.fa")[0].method == "HEAD"


async def test_a_truncated_source_fails_the_reader(server: SourceServer) -> None:
    url = server.add("/short.fa", DATA, truncate_at=300_000)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 200 and resp.content_length == len(DATA)
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    # A range of it is cut short the same way.
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Range": "bytes=100-"}) as resp:
            assert resp.status == 206
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    assert [h.sent for h in server.hits("/short.fa")] == [300_000, 300_000]


def test_statuses_and_flaky_paths(server: SourceServer) -> None:
    assert _get(server.status("/gone.fa", 404))[0] == 404
    assert _get(server.status("/err.fa", 500))[0] == 500
    assert _get(server.url("/never-added.fa"))[0] == 404
    flaky = server.add("/flaky.fa", DATA, fail_first=2)
    assert [_get(flaky)[0] for _ in range(3)] == [500, 500, 200]
    server.remove("/flaky.fa")
    assert _get(flaky)[0] == 404


def test_a_redirect_chain_of_n_hops(server: SourceServer) -> None:
    server.add("/real.fa", DATA)
    url = server.redirect("/moved.fa", "/real.fa", hops=3)
    status, _, body = _get(url)  # urllib follows up to 10
    assert status == 200 and body == DATA
    redirects = [h for h in server.hits() if h.status == 302]
    assert len(redirects) == 3
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=60)
    conn.request("GET", parts.path)
    resp = conn.getresponse()
    assert resp.status == 302 and resp.getheader("Location", "").startswith("/_hop/")
    conn.close()
    loop = server.redirect("/loop.fa", "/real.fa", hops=12)
    assert _get(loop)[0] == 302  # more hops than urllib follows


async def test_slow_and_chunked_sources_still_arrive_whole(server: SourceServer) -> None:
    slow = server.add("/slow.fa", DATA, delay=0.05, chunk_delay=0.01)
    chunked = server.add("/chunked.fa", DATA, chunked=True, headers={"X-Extra": "1"})
    async with aiohttp.ClientSession() as session:
        async with session.get(slow) as resp:
            assert await resp.read() == DATA
        async with session.get(chunked) as resp:
            assert resp.content_length is None and resp.headers["X-Extra"] == "1"
            assert await resp.read() == DATA


def test_replacing_a_path_changes_its_etag(server: SourceServer) -> None:
    url = server.add("/v.fa", b">a\nACGT\n")
    first = _get(url)[1]["ETag"]
    server.add("/v.fa", b">a\nACGTT\n")
    assert _get(url)[1]["ETag"] != first


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=95-200", (95, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=x-", None),
    ],
)
def test_parse_range(header: str | None, expected: object) -> None:
    assert parse_range(header, 100) == expected
