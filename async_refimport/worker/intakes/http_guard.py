"""What keeps a connection flood from taking the HTTP intake (and the worker) down.

Every connection holds a file descriptor before any token is checked, so a client opening
thousands of them would exhaust the process's descriptors (``Too many open files``) and with them
the journal, the spool and the AWS connections. Here:

* at most :func:`connection_limit` connections are served at once, well under the process's
  ``RLIMIT_NOFILE``; one more is answered 503 and closed at once;
* a process out of descriptors all the same keeps its accept loop (asyncio pauses it a second and
  goes on): that is said in one warning line a minute, not a traceback per attempt.

Slow headers and idle keep-alives are closed by aiohttp's keep-alive timer, which runs from the
moment a connection is made until a whole request head has arrived (see :data:`HEAD_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from async_refimport._log import get_logger

log = get_logger(__name__)

#: Seconds a connection has to send a whole request head, from connecting or from its previous
#: answer: a client sending its headers a line a second, or idling between requests, is closed.
HEAD_TIMEOUT = 5.0
#: Connections served at once, at most (fewer when the process may open few files).
MAX_CONNECTIONS = 1000
#: File descriptors left to the rest of the worker: journal, AWS connections, spool, threads.
RESERVED_FDS = 64
#: Seconds between the log lines of one flood.
FLOOD_REPEAT = 60.0
#: asyncio's message when ``accept()`` fails for want of descriptors (or memory).
_ACCEPT_EXHAUSTED = "socket.accept() out of system resource"

_FULL_BODY = json.dumps({"error": "too many connections: try again shortly"}).encode()
_FULL_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_FULL_BODY), _FULL_BODY)
)


def open_files_limit() -> int:
    """The number of files this process may have open (its soft ``RLIMIT_NOFILE``).

    Returns:
        The limit; a large number where there is none or it cannot be read.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return 1 << 16
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


def connection_limit(max_files: int | None = None) -> int:
    """How many connections the HTTP intake serves at once.

    Args:
        max_files: The files the process may open (default: its ``RLIMIT_NOFILE``).

    Returns:
        At most half of what is left after :data:`RESERVED_FDS`, at most
        :data:`MAX_CONNECTIONS`, and at least 4.
    """
    files = open_files_limit() if max_files is None else max_files
    return max(4, min(MAX_CONNECTIONS, (files - RESERVED_FDS) // 2))


class _Said:
    """A warning said at most once every :data:`FLOOD_REPEAT` seconds, with how often it
    happened since."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.last = -math.inf
        self.count = 0

    def __call__(self, **fields: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= FLOOD_REPEAT:
            log.warning(self.event, times=self.count, **fields)
            self.last, self.count = now, 0


class ConnectionGate:
    """Admits connections to an aiohttp server up to a limit; refuses the rest at once.

    Args:
        server: aiohttp's low-level server (``AppRunner.server``), the protocol factory of the
            connections admitted.
        limit: Connections served at once (default: :func:`connection_limit`).
    """

    def __init__(self, server: web.Server, limit: int | None = None) -> None:
        self.server = server
        self.limit = connection_limit() if limit is None else limit
        #: Connections served now.
        self.open = 0
        self._full = _Said("http.connections_full")
        self._exhausted = _Said("http.out_of_file_descriptors")

    def protocol(self) -> asyncio.Protocol:
        """A protocol for one new connection (``loop.create_server``'s factory).

        Returns:
            One that serves the connection if there is room, else answers 503 and closes it.
        """
        return _GatedConnection(self)

    def admit(self) -> bool:
        """Take a place for one connection.

        Returns:
            False when every place is taken (said in the log, at most once a minute).
        """
        if self.open >= self.limit:
            self._full(limit=self.limit, hint="connections over the limit are closed at once")
            return False
        self.open += 1
        return True

    def release(self) -> None:
        """Give a connection's place back."""
        self.open -= 1

    def exception_handler(
        self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None
    ) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
        """An event-loop exception handler saying a failed ``accept()`` in one line.

        Args:
            previous: The loop's handler until now (None: the default), given everything else.

        Returns:
            The handler to install (``loop.set_exception_handler``).
        """

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if str(context.get("message", "")).startswith(_ACCEPT_EXHAUSTED):
                # asyncio pauses accepting for a second and goes on: nothing to do but say it.
                error = context.get("exception")
                self._exhausted(open=self.open, limit=self.limit, error=str(error))
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        return handle


class _GatedConnection(asyncio.Protocol):
    """One connection: served by aiohttp if the gate admits it, else refused at once."""

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection, or answer 503 and close it.

        Args:
            transport: The connection.
        """
        if not self._gate.admit():
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_FULL_ANSWER)
            transport.close()
            return
        self._inner = self._gate.server()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Pass bytes to aiohttp (those of a refused connection are dropped).

        Args:
            data: What arrived.
        """
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Pass the end of the client's stream to aiohttp.

        Returns:
            Whether to keep the transport half open (aiohttp's answer).
        """
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        """Tell aiohttp the client reads slowly."""
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Tell aiohttp the client reads again."""
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        """Give the connection's place back and tell aiohttp.

        Args:
            exc: Why it was lost (None: closed).
        """
        if self._inner is not None:
            self._gate.release()
            self._inner.connection_lost(exc)
