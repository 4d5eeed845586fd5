"""Logging set-up of the entry points (``refimport``, its worker); the library never calls it.

The library logs through the standard library (see :mod:`._log`); this module gives the root
logger one handler writing to stderr, as coloured console lines or JSON lines, for every logger in
the process: the library's structured events and the plain records of botocore, aiohttp, moto...

Nothing leaves this handler unredacted. Redaction runs on the rendered event of every logger,
after any traceback was formatted, so no verbosity can print:

* a value under a credential-like key (``aws_secret_access_key``, ``password``, ``token``, ...);
* an ``Authorization`` header, an ``X-Amz-Security-Token`` header or query parameter, a SigV4
  signature, an access key id (kept as ``AKIA…***``);
* the credentials and worker token this process was given in its environment, wherever they
  appear;
* anything that looks like an AWS secret key or session token (a long base64 run);
* the user name and password of a URL (``http://***@host``).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

from async_refimport._log import EVENT_ATTR, ROOT
from async_refimport._models import printable, redact_url


class LogFormat(StrEnum):
    """How a log line is rendered (``--log-format``)."""

    #: Human lines, coloured on a terminal.
    CONSOLE = "console"
    #: One JSON object a line.
    JSON = "json"


class LogLevel(StrEnum):
    """The levels ``--log-level`` may name."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


#: The names of :class:`LogLevel`, as ``--log-level`` offers them.
LEVELS = tuple(level.value for level in LogLevel)

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"secret|password|passwd|authorization|credential|session_token|security_token|"
    r"access_token|refresh_token|api_key|apikey|private_key|signature|(^|_)token$",
    re.IGNORECASE,
)
# Keys that contain a secret-looking word but are not secrets: an idempotency token is an id.
_NOT_SECRET = frozenset({"client_token", "clientToken", "next_token", "nextToken"})
# Header or parameter names whose value is a secret, in any spelling botocore, urllib3 or aiohttp
# print them: 'Authorization': b'AWS4-HMAC-SHA256 ...', X-Amz-Security-Token=..., "token": "..."
_SECRET_FIELD = re.compile(
    r"""(?ix)
    (authorization|x-amz-security-token|x-amz-signature|x-amz-credential|
     aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken|security_token)
    (['"]?\s*[:=]\s*b?)
    (?:'[^']*'|"[^"]*"|[^\s,;&'"}\]>)]+)
    """
)
# AWS secret access keys are 40 base64 characters and session tokens hundreds; SigV4 signatures
# are 64 hex characters.
_SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40,}(?![A-Za-z0-9/+=])|Signature=[0-9a-f]{64}"
)
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
# Secrets this process was handed: masked verbatim wherever they show up.
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "REFIMPORT_WORKER_TOKEN",
)


def _known_secrets() -> list[str]:
    """The secrets of this process's environment worth masking, longest first."""
    # Short values are left alone: masking "x" everywhere would garble every line.
    values = {os.environ.get(name, "") for name in _SECRET_ENV}
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


def _mask_if_random(match: re.Match[str]) -> str:
    # Keys and tokens are random base64: upper and lower case letters and digits together. A URL
    # path or a name of that length rarely has all three, and stays readable.
    text = match.group(0)
    if text.startswith("Signature=") or (
        any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    ):
        return REDACTED
    return text


def _is_secret_key(key: str) -> bool:
    return key not in _NOT_SECRET and bool(_SECRET_KEY.search(key))


def redact_text(text: str, known: list[str] | None = None) -> str:
    """Mask every secret-looking value in ``text`` (see the module docstring).

    Args:
        text: Any text.
        known: Secrets to mask verbatim (default: those of this process's environment).

    Returns:
        The text, secrets replaced by ``***`` (access key ids kept as ``AKIA…***``).
    """
    for secret in _known_secrets() if known is None else known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = redact_url(text)  # http://user:password@host
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _SECRET_VALUE.sub(_mask_if_random, text)
    return _ACCESS_KEY_ID.sub(lambda m: m.group(0)[:4] + "…" + REDACTED, text)


def _redact_value(value: Any, known: list[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, known)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"), known)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _is_secret_key(k) else _redact_value(v, known)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, known) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value), known)


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask credential-like keys and secret-looking values anywhere.

    Keys such as ``aws_secret_access_key``, ``password``, ``token`` or ``Authorization`` are
    masked whole (not ``client_token``, an id); every other value is masked where it looks secret.

    Args:
        _logger: Unused (the processor signature).
        _name: Unused (the processor signature).
        event: The event, changed in place.

    Returns:
        ``event``, redacted.
    """
    known = _known_secrets()
    for key in list(event):
        if _is_secret_key(key):
            event[key] = REDACTED
        else:
            event[key] = _redact_value(event[key], known)
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now, so a live progress display that redirects stderr
    prints log lines above its bars instead of through them."""

    def write(self, text: str) -> int:
        """Write to the current ``sys.stderr``; returns the characters written."""
        return sys.stderr.write(text)

    def flush(self) -> None:
        """Flush the current ``sys.stderr``."""
        sys.stderr.flush()


class EventFormatter(logging.Formatter):
    """Renders any record as one console or JSON line, redacted.

    Records of the library carry their structured event (:data:`._log.EVENT_ATTR`); other
    libraries' records become ``{"event": message, "logger": name}``.

    Args:
        format: A :class:`LogFormat` (or its name).
        colors: Colour console lines.
    """

    def __init__(
        self, format: LogFormat | str = LogFormat.CONSOLE, *, colors: bool = False
    ) -> None:
        super().__init__()
        self.renderer: Any = (
            structlog.processors.JSONRenderer(default=str)
            if format == LogFormat.JSON
            else structlog.dev.ConsoleRenderer(colors=colors)
        )

    def format(self, record: logging.LogRecord) -> str:
        """Render one record, with its level, time and traceback, redacted.

        Args:
            record: Any logger's record.

        Returns:
            One line (a traceback may span more).
        """
        event = getattr(record, EVENT_ATTR, None)
        if isinstance(event, Mapping):
            data: dict[str, Any] = dict(event)
        else:
            # Another library's message may quote data (a response body at -vvv): one line,
            # no terminal control (the library's own values are quoted by the renderer).
            data = {"event": printable(record.getMessage()), "logger": record.name}
        data["level"] = record.levelname.lower()
        data["timestamp"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z")
        )
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        redact(None, data["level"], data)
        return str(self.renderer(None, data["level"], data))


class _LevelFilter(logging.Filter):
    """The library's records from ``library`` up, everyone else's from ``others`` up."""

    def __init__(self, library: int, others: int) -> None:
        super().__init__()
        self.library = library
        self.others = others

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is at or above its logger's threshold."""
        own = record.name == ROOT or record.name.startswith(ROOT + ".")
        return record.levelno >= (self.library if own else self.others)


_HANDLER_NAME = "refimport"


def level_from_flags(verbosity: int, log_level: str | None = None) -> int:
    """The library's level from the command line.

    Args:
        verbosity: ``-v``/``-q`` counts: -1 errors, 0 warnings, 1 info, 2 or more debug.
        log_level: A :class:`LogLevel` name from ``--log-level``; it wins over ``verbosity``.

    Returns:
        A ``logging`` level.
    """
    if log_level:
        return int(logging.getLevelName(log_level.upper()))
    if verbosity < 0:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


def configure_logging(
    format: LogFormat | str = LogFormat.CONSOLE,
    verbosity: int = 0,
    *,
    log_level: str | None = None,
) -> None:
    """Send every logger's records to stderr, rendered and redacted.

    Args:
        format: A :class:`LogFormat` (or its name): ``console`` (human lines, coloured on a
            terminal) or ``json`` (one object a line).
        verbosity: -1 errors only, 0 warnings and errors, 1 (``-v``) info, 2 (``-vv``) debug,
            3 (``-vvv``) also the debug lines of the AWS SDK, aiohttp and the emulator's moto.
        log_level: The library's level by name (``debug`` ... ``error``); overrides ``verbosity``
            for the library's own loggers.
    """
    library = level_from_flags(verbosity, log_level)
    # Other libraries (botocore, aiohttp, werkzeug under the demo's moto) speak only when asked.
    others = logging.DEBUG if verbosity >= 3 else max(library, logging.WARNING)
    handler = logging.StreamHandler(_CurrentStderr())
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(EventFormatter(format, colors=format == LogFormat.CONSOLE and _tty()))
    handler.addFilter(_LevelFilter(library, others))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(library, others))
    logging.getLogger(ROOT).setLevel(library)
    # Records are filtered by the handler; these loggers set levels of their own otherwise.
    for name in ("werkzeug", "moto", "botocore", "aiobotocore", "urllib3", "aiohttp"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def _tty() -> bool:
    stream = sys.stderr
    return stream is not None and stream.isatty()


class ClosedStream(io.TextIOBase):
    """What ``sys.stdout`` is when the process was started with it closed (``>&-``): writing
    to it is refused with ``EBADF``, as a write to the closed descriptor would be, which the
    commands report in one line instead of a traceback of ``None.write``.

    Args:
        name: The stream's name in the error (``standard output``).
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    def write(self, text: str) -> int:
        """Refuse ``text``.

        Raises:
            OSError: always (``EBADF``).
        """
        raise OSError(errno.EBADF, f"{self._name} is closed: nothing can be written to it")

    def isatty(self) -> bool:
        """Never a terminal."""
        return False


def guard_standard_streams() -> frozenset[int]:
    """Make a process started with standard streams closed (``2>&-``, ``>&-``, ``<&-``) safe.

    A closed descriptor 0, 1 or 2 is taken by ``/dev/null``: otherwise the next file opened
    (the journal's database) would get that number, and whatever writes to "stderr" would
    write into it. A closed stderr then swallows messages (the run goes on: nothing needs
    them); a closed stdout refuses writes with ``EBADF`` (:class:`ClosedStream`), so a
    command whose output is lost says so; a closed stdin stays ``None``, which the manifest
    reader reports as closed.

    Returns:
        The descriptors that were closed.
    """
    closed: set[int] = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # the process's stderr: never closed
    if sys.stdout is None:
        sys.stdout = ClosedStream("standard output")
    return frozenset(closed)
