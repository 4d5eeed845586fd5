"""A local HTTP file server the tests start themselves: the HTTPS-like sources of staging tests.

Ensembl, NCBI and UCSC serve FASTA files over HTTP(S) with ``Content-Length``, ``ETag``,
``Last-Modified`` and byte ranges; a lab's file server may be slower, redirect, or cut a download
short. :class:`SourceServer` serves bytes or files by path on ``127.0.0.1`` (aiohttp, in a daemon
thread with its own event loop, so sync tests, async tests and subprocesses can all use it), and
plays per path the faults a staging client must survive::

    with SourceServer() as server:
        url = server.add("/GRCh38.fa.gz", data)                   # 200, Range → 206
        short = server.add("/short.fa", data, truncate_at=1000)    # fewer bytes than Content-Length
        gone = server.status("/gone.fa", 404)                      # or 500, or any status
        hops = server.redirect("/moved.fa", "/GRCh38.fa.gz", hops=3)  # 3 redirects, then the file
        slow = server.add("/slow.fa", data, delay=0.2, chunk_delay=0.01)
        flaky = server.add("/flaky.fa", data, fail_first=2)       # 500 twice, then the file
        server.hits("/GRCh38.fa.gz")                               # what was asked, and sent

The ``source_server`` fixture (tests/conftest.py) gives a started server per test.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web

#: Bytes per write of a body; a slow source sleeps ``chunk_delay`` between two of them.
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Hit:
    """One request the server answered.

    Attributes:
        method: ``GET`` or ``HEAD``.
        path: The request's path (without the query).
        range: The ``Range`` header as sent, or ``None``.
        status: The status answered.
        sent: Body bytes written, or being written when the hit was recorded (just before the
            last write, so a client that has read the answer finds it here); fewer than
            promised for a truncated source.
    """

    method: str
    path: str
    range: str | None
    status: int
    sent: int


@dataclass
class _Entry:
    """What one path serves, and how it misbehaves."""

    body: bytes | Path | None
    status: int = 200
    truncate_at: int | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    fail_first: int = 0
    chunked: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""
    last_modified: float = 0.0
    location: str | None = None
    served: int = 0

    def size(self) -> int:
        """The body's length in bytes (0 without a body)."""
        if self.body is None:
            return 0
        if isinstance(self.body, Path):
            return self.body.stat().st_size
        return len(self.body)

    def read(self, start: int, length: int) -> bytes:
        """``length`` bytes of the body from ``start``."""
        if isinstance(self.body, Path):
            with self.body.open("rb") as f:
                f.seek(start)
                return f.read(length)
        assert self.body is not None
        return self.body[start : start + length]


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The one byte range a ``Range`` header asks for, as ``(start, end)`` inclusive.

    Args:
        header: The header's value, or ``None``.
        size: The body's length.

    Returns:
        ``None`` for the whole body (no header, or one this server answers with 200: several
        ranges, another unit, a malformed value), ``"unsatisfiable"`` for a range that starts
        past the end (416), else ``(start, end)``.
    """
    if header is None or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].strip().partition("-")
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size - 1)
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0 or (last and end < start):
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, min(end, size - 1))


class SourceServer:
    """An HTTP file server on 127.0.0.1 in a thread of its own (see the module's docstring).

    Paths can be added, replaced and removed while it runs; replacing a path's bytes changes
    its ``ETag`` and ``Last-Modified`` (a source that changed between two runs).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        """Make a server; :meth:`start` (or ``with``) serves.

        Args:
            host: The address to bind (loopback by default).
        """
        self.host = host
        self.port = 0
        self._entries: dict[str, _Entry] = {}
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._redirects = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SourceServer:
        """Start serving; returns once the port is bound.

        Returns:
            The server itself.

        Raises:
            RuntimeError: The server could not start (the reason chained).
        """
        self._thread = threading.Thread(target=self._run, name="source-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(30.0) or self._error is not None:
            raise RuntimeError("the source server did not start") from self._error
        return self

    def close(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None

    def __enter__(self) -> SourceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    # -- what it serves ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return self.base_url + _normal(path)

    def add(
        self,
        path: str,
        body: bytes | Path,
        *,
        truncate_at: int | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        fail_first: int = 0,
        chunked: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Serve ``body`` (bytes, or a file read as it is sent) at ``path``.

        Args:
            path: The URL path, e.g. ``/refs/a.fa.gz``.
            body: The content; a :class:`~pathlib.Path` is read in chunks (multi-GB files).
            truncate_at: Send only this many body bytes, then close the connection, while the
                headers promise the whole length (``Content-Length`` or the range's length).
            delay: Seconds before the response's headers.
            chunk_delay: Seconds between two chunks of the body (:data:`CHUNK` bytes each).
            fail_first: Answer this many requests with 500 before serving the body.
            chunked: No ``Content-Length`` (chunked transfer encoding), as some servers do.
            headers: Extra response headers (e.g. ``Content-Encoding``).

        Returns:
            The path's URL.
        """
        stamp = time.time()
        if isinstance(body, Path):
            st = body.stat()
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            stamp = st.st_mtime
        else:
            etag = f'"{hashlib.md5(body).hexdigest()}"'
        entry = _Entry(
            body=body,
            truncate_at=truncate_at,
            delay=delay,
            chunk_delay=chunk_delay,
            fail_first=fail_first,
            chunked=chunked,
            headers=dict(headers or {}),
            etag=etag,
            last_modified=stamp,
        )
        return self._put(path, entry)

    def status(self, path: str, status: int, body: bytes = b"") -> str:
        """Answer every request of ``path`` with ``status`` (404, 500, 403...).

        Args:
            path: The URL path.
            status: The HTTP status.
            body: The response's body.

        Returns:
            The path's URL.
        """
        return self._put(path, _Entry(body=body, status=status))

    def redirect(self, path: str, target: str, *, hops: int = 1, status: int = 302) -> str:
        """Make ``path`` a chain of ``hops`` redirects ending at ``target``.

        Args:
            path: The URL path the chain starts at.
            target: A path of this server, or an absolute URL.
            hops: Redirects before ``target`` (each hop a path of its own).
            status: The redirect status (301, 302, 303, 307, 308).

        Returns:
            The URL of the chain's first hop.
        """
        with self._lock:
            self._redirects += 1
            chain = self._redirects
        following = target if "://" in target else _normal(target)
        for hop in range(hops - 1, 0, -1):
            hop_path = f"/_hop/{chain}/{hop}"
            self._put(hop_path, _Entry(body=None, status=status, location=following))
            following = hop_path
        return self._put(path, _Entry(body=None, status=status, location=following))

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (it answers 404 from now on)."""
        with self._lock:
            self._entries.pop(_normal(path), None)

    def hits(self, path: str | None = None) -> list[Hit]:
        """The requests answered so far, oldest first.

        Args:
            path: Only this path's requests; ``None`` for all.

        Returns:
            The requests, as :class:`Hit` records.
        """
        with self._lock:
            if path is None:
                return list(self._hits)
            wanted = _normal(path)
            return [h for h in self._hits if h.path == wanted]

    def _put(self, path: str, entry: _Entry) -> str:
        with self._lock:
            self._entries[_normal(path)] = entry
        return self.url(path)

    # -- answering ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            entry = self._entries.get(request.path)
            failing = entry is not None and entry.served < entry.fail_first
            if entry is not None:
                entry.served += 1
        if entry is None or failing or entry.status != 200:
            return self._plain(request, entry, failing)
        if entry.delay:
            await asyncio.sleep(entry.delay)
        size = entry.size()
        wanted = parse_range(request.headers.get("Range"), size)
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range != entry.etag:
            wanted = None  # the client's copy is of another version: the whole body
        if wanted == "unsatisfiable":
            self._record(request, 416, 0)
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
        status = 206 if isinstance(wanted, tuple) else 200
        resp = web.StreamResponse(status=status, headers=self._headers(entry))
        if status == 206:
            resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if entry.chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = end - start + 1
        if request.method == "HEAD":
            # Recorded before the answer goes out: a client never sees an answer whose hit is
            # not in hits() yet.
            self._record(request, status, 0)
            await resp.prepare(request)
            return resp
        return await self._send_body(request, resp, entry, start, end, status)

    async def _send_body(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        entry: _Entry,
        start: int,
        end: int,
        status: int,
    ) -> web.StreamResponse:
        stop = end + 1
        if entry.truncate_at is not None:
            stop = min(stop, start + entry.truncate_at)
        if stop <= start:
            self._record(request, status, 0)
        await resp.prepare(request)
        sent, pos = 0, start
        while pos < stop:
            chunk = entry.read(pos, min(CHUNK, stop - pos))
            if not chunk or pos + len(chunk) >= stop:
                # The last write: recorded first, so that a client that has read the whole
                # answer always finds its hit (the file shrank: what it has is all it gets).
                self._record(request, status, sent + len(chunk))
            await resp.write(chunk)
            if not chunk:
                break
            sent += len(chunk)
            pos += len(chunk)
            if entry.chunk_delay and pos < stop:
                await asyncio.sleep(entry.chunk_delay)
        if stop <= end:
            # Fewer bytes than promised: close the connection (after flushing what was
            # written), so the client sees a body shorter than its Content-Length.
            transport = request.transport
            if transport is not None:
                transport.close()
            raise asyncio.CancelledError
        await resp.write_eof()
        return resp

    def _plain(self, request: web.Request, entry: _Entry | None, failing: bool) -> web.Response:
        headers: dict[str, str] = {}
        if entry is None:
            status, body = 404, b"not found"
        elif failing:
            status, body = 500, b"internal error"
        else:
            status, body = entry.status, entry.body if isinstance(entry.body, bytes) else b""
            if entry.location:
                headers["Location"] = entry.location
        self._record(request, status, 0 if request.method == "HEAD" else len(body))
        return web.Response(status=status, body=body, headers=headers)

    @staticmethod
    def _headers(entry: _Entry) -> dict[str, str]:
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": entry.etag,
            "Last-Modified": email.utils.formatdate(entry.last_modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        headers.update(entry.headers)
        return headers

    def _record(self, request: web.Request, status: int, sent: int) -> None:
        hit = Hit(request.method, request.path, request.headers.get("Range"), status, sent)
        with self._lock:
            self._hits.append(hit)


def _normal(path: str) -> str:
    return path if path.startswith("/") else "/" + path
