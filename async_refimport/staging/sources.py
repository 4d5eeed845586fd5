"""Reading a source's bytes: HTTP(S) through aiohttp, local files through worker threads.

A reader gives the source's bytes from an offset in pieces of at most the size asked (exactly
that much but at the end) and fails with a :class:`StagingError` naming the source: HTTP statuses
(404/410 NOT_FOUND, 401/403 ACCESS_DENIED, others HTTP_STATUS), redirects beyond the limit
(TOO_MANY_REDIRECTS), fewer bytes than announced (TRUNCATED), a source over the limit
(TOO_LARGE), a lost connection or a read error (UNREADABLE).

HTTP bytes are read as sent (``auto_decompress=False``): a gzip or bgzip file stays as it is, and a
``Content-Encoding: gzip`` response is stored encoded, as served.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import anyio

from async_refimport.staging.areas import local_path
from async_refimport.staging.errors import StagingCode, StagingError
from async_refimport.staging.limits import StagingLimits

__all__ = ["FileReader", "HttpReader", "Reader", "SourceInfo", "file_sha256", "http_session"]

_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source says about itself before its bytes are read.

    Attributes:
        size: Its bytes (Content-Length of the whole, a file's size), ``None`` when unknown.
        etag: The HTTP ETag, if any.
        last_modified: The HTTP Last-Modified, if any.
    """

    size: int | None
    etag: str | None = None
    last_modified: str | None = None


class Reader(Protocol):
    """The bytes of one source from ``offset`` on."""

    info: SourceInfo
    offset: int

    async def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (exactly that many unless the source ends); ``b""`` at its end."""
        ...

    async def aclose(self) -> None:
        """Let go of the connection or the file."""
        ...


def http_session(limits: StagingLimits) -> aiohttp.ClientSession:
    """The aiohttp session HTTP(S) sources are read with: no decompression, the limits' timeouts.

    Args:
        limits: The staging limits.

    Returns:
        The session (the caller closes it).
    """
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=limits.connect_timeout, sock_read=limits.read_timeout
    )
    return aiohttp.ClientSession(timeout=timeout, auto_decompress=False, trust_env=True)


def _status_error(source: str, status: int, reason: str | None) -> StagingError:
    said = f"HTTP {status} {reason or ''}".strip()
    if status in (404, 410):
        return StagingError(StagingCode.NOT_FOUND, source, f"not found ({said})")
    if status in (401, 403):
        return StagingError(StagingCode.ACCESS_DENIED, source, f"refused ({said})")
    retry = status >= 500 or status in (408, 429)
    return StagingError(StagingCode.HTTP_STATUS, source, said, retryable=retry)


class HttpReader:
    """An HTTP(S) source, read with one GET (a Range GET from ``offset`` when asked).

    Open it with :meth:`open`. When the server ignores the Range (a 200), or the resource
    changed (``If-Range`` not met), :attr:`offset` is 0: the caller reads from the start.

    Attributes:
        info: What the response said (for a 206: the whole resource's size from Content-Range).
        offset: Where the bytes read start.
    """

    def __init__(
        self, source: str, response: aiohttp.ClientResponse, info: SourceInfo, offset: int
    ) -> None:
        self._source = source
        self._response = response
        self.info = info
        self.offset = offset
        self._expected = None if info.size is None else info.size - offset
        self._received = 0

    @classmethod
    async def open(
        cls,
        session: aiohttp.ClientSession,
        source: str,
        limits: StagingLimits,
        *,
        offset: int = 0,
        if_range: str | None = None,
    ) -> HttpReader:
        """Send the GET and read its headers.

        Args:
            session: The HTTP session (:func:`http_session`).
            source: The URL.
            limits: The staging limits (redirects, the size limit).
            offset: Ask for the bytes from here on (a Range request).
            if_range: The validator (ETag or Last-Modified) the resumed bytes must match.

        Returns:
            The reader.

        Raises:
            StagingError: the answer is not the source's bytes, or too large.
        """
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if if_range:
                headers["If-Range"] = if_range
        try:
            response = await session.get(
                source, headers=headers, max_redirects=limits.max_redirects + 1
            )
        except aiohttp.TooManyRedirects as exc:
            raise StagingError(
                StagingCode.TOO_MANY_REDIRECTS,
                source,
                f"more than {limits.max_redirects} redirects",
            ) from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise StagingError(StagingCode.UNREADABLE, source, _why(exc)) from exc
        try:
            info, start = _read_headers(source, response, offset)
        except BaseException:
            response.release()
            raise
        if info.size is not None and info.size > limits.max_bytes:
            response.release()
            raise StagingError(
                StagingCode.TOO_LARGE,
                source,
                f"{info.size} bytes, over the limit of {limits.max_bytes}",
                retryable=False,
            )
        return cls(source, response, info, start)

    async def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end.

        Args:
            size: How many bytes.

        Returns:
            The bytes.

        Raises:
            StagingError: TRUNCATED (the body ended before its Content-Length), UNREADABLE.
        """
        buffer = bytearray()
        try:
            while len(buffer) < size:
                piece = await self._response.content.read(min(size - len(buffer), _READ_CHUNK))
                if not piece:
                    break
                buffer += piece
        except aiohttp.ClientPayloadError as exc:
            raise self._truncated(len(buffer)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StagingError(StagingCode.UNREADABLE, self._source, _why(exc)) from exc
        self._received += len(buffer)
        if len(buffer) < size and self._expected is not None and self._received < self._expected:
            raise self._truncated(0)
        return bytes(buffer)

    def _truncated(self, pending: int) -> StagingError:
        got = self.offset + self._received + pending
        if self.info.size is None:
            return StagingError(
                StagingCode.TRUNCATED, self._source, f"the body ended early after {got} bytes"
            )
        return StagingError(
            StagingCode.TRUNCATED,
            self._source,
            f"{got} bytes received of the {self.info.size} its Content-Length announced",
        )

    async def aclose(self) -> None:
        """Close the response (its connection is not reused when the body was not read)."""
        self._response.close()


def _read_headers(
    source: str, response: aiohttp.ClientResponse, offset: int
) -> tuple[SourceInfo, int]:
    """The source's info and where its bytes start, from a response's status and headers."""
    status = response.status
    if status not in (200, 206):
        raise _status_error(source, status, response.reason)
    etag = response.headers.get("ETag")
    modified = response.headers.get("Last-Modified")
    length = response.content_length
    if status == 206 and offset:
        # "bytes START-END/TOTAL": the whole resource's size is TOTAL.
        spec = response.headers.get("Content-Range", "")
        total = spec.rpartition("/")[2]
        start = spec.removeprefix("bytes ").partition("-")[0]
        if not start.isdigit() or int(start) != offset:
            raise StagingError(
                StagingCode.HTTP_STATUS, source, f"unexpected Content-Range {spec!r}"
            )
        size = int(total) if total.isdigit() else None
        return SourceInfo(size, etag, modified), offset
    return SourceInfo(length, etag, modified), 0


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class FileReader:
    """A local file, read in worker threads from ``offset``.

    Attributes:
        info: The file's size.
        offset: Where the bytes read start.
    """

    def __init__(self, source: str, handle: io.BufferedReader, size: int, offset: int) -> None:
        self._source = source
        self._handle = handle
        self.info = SourceInfo(size)
        self.offset = offset
        self._position = offset

    @classmethod
    async def open(cls, source: str, limits: StagingLimits, *, offset: int = 0) -> FileReader:
        """Open the file.

        Args:
            source: The path or ``file://`` URL.
            limits: The staging limits (the size limit).
            offset: Read from here on.

        Returns:
            The reader.

        Raises:
            StagingError: NOT_FOUND, ACCESS_DENIED, UNSUPPORTED (a directory), TOO_LARGE,
                UNREADABLE.
        """
        try:
            path = local_path(source)
            handle = await anyio.to_thread.run_sync(lambda: open(path, "rb"))
        except (OSError, ValueError) as exc:
            raise file_error(source, exc) from exc
        size = os.fstat(handle.fileno()).st_size
        if size > limits.max_bytes:
            handle.close()
            raise StagingError(
                StagingCode.TOO_LARGE, source, f"{size} bytes, over the limit of {limits.max_bytes}"
            )
        if offset:
            handle.seek(offset)
        return cls(source, handle, size, offset)

    async def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end.

        Args:
            size: How many bytes.

        Returns:
            The bytes.

        Raises:
            StagingError: TRUNCATED (the file shrank while read), UNREADABLE.
        """
        # The buffer is made here, on the event loop's thread, and filled in a worker thread: a
        # part made by a worker thread would come from that thread's malloc arena, and with
        # parts freed on this thread the arenas fragment (RSS grew with the file's size).
        buffer = bytearray(size)
        try:
            count = await anyio.to_thread.run_sync(self._handle.readinto, buffer)
        except OSError as exc:
            raise file_error(self._source, exc) from exc
        data = bytes(memoryview(buffer)[:count])
        del buffer
        self._position += len(data)
        expected = self.info.size or 0
        if len(data) < size and self._position < expected:
            raise StagingError(
                StagingCode.TRUNCATED,
                self._source,
                f"the file ended at {self._position} of its {expected} bytes while read",
            )
        return data

    async def aclose(self) -> None:
        """Close the file."""
        self._handle.close()


def file_error(source: str, exc: BaseException) -> StagingError:
    """A :class:`StagingError` for a local file that could not be read.

    Args:
        source: The source.
        exc: The error.

    Returns:
        NOT_FOUND, ACCESS_DENIED, UNSUPPORTED (a directory, another host's file:// URL) or
        UNREADABLE.
    """
    if isinstance(exc, FileNotFoundError):
        return StagingError(StagingCode.NOT_FOUND, source, "no such file")
    if isinstance(exc, PermissionError):
        return StagingError(StagingCode.ACCESS_DENIED, source, "permission denied")
    if isinstance(exc, IsADirectoryError | ValueError):
        return StagingError(StagingCode.UNSUPPORTED, source, f"not a file ({exc})", retryable=False)
    return StagingError(StagingCode.UNREADABLE, source, _why(exc))


async def file_sha256(source: str, max_bytes: int) -> tuple[str, int]:
    """The SHA-256 (hex) and size of a local file, read in a worker thread.

    Args:
        source: The path or ``file://`` URL.
        max_bytes: A larger file is refused before it is read.

    Returns:
        ``(sha256 hex, size)``.

    Raises:
        StagingError: the file cannot be read, or is over ``max_bytes`` (TOO_LARGE).
    """

    def digest() -> tuple[str, int]:
        with open(local_path(source), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                return "", size
            return hashlib.file_digest(handle, "sha256").hexdigest(), size

    try:
        found, size = await anyio.to_thread.run_sync(digest)
    except (OSError, ValueError) as exc:
        raise file_error(source, exc) from exc
    if size > max_bytes:
        raise StagingError(
            StagingCode.TOO_LARGE, source, f"{size} bytes, over the limit of {max_bytes}"
        )
    return found, size
