"""Logging set-up for the entry points (``refimport`` and its worker); the library never calls it.

structlog renders to stderr, as coloured console lines or JSON lines, after a redaction processor
that masks anything that looks like a credential, whatever the key it hides under.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["console", "json"]

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"secret|password|passwd|authorization|credential|session_token|security_token|"
    r"access_token|refresh_token|api_key|apikey|private_key|(^|_)token$",
    re.IGNORECASE,
)
# Keys that contain a secret-looking word but are not secrets: an idempotency token is an id.
_NOT_SECRET = frozenset({"client_token", "clientToken", "next_token", "nextToken"})
# AWS secret access keys are 40 base64 characters; SigV4 signatures are 64 hex characters.
_SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])|Signature=[0-9a-f]{64}"
)
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def _is_secret_key(key: str) -> bool:
    return key not in _NOT_SECRET and bool(_SECRET_KEY.search(key))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        if _SECRET_VALUE.search(value):
            value = _SECRET_VALUE.sub(REDACTED, value)
        if _ACCESS_KEY_ID.search(value):
            value = _ACCESS_KEY_ID.sub(lambda m: m.group(0)[:4] + "…" + REDACTED, value)
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _is_secret_key(k) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask credential-like keys (``aws_secret_access_key``, ``password``,
    ``token``, ``Authorization`` ...; not ``client_token``) and secret-looking values anywhere."""
    for key in list(event):
        if _is_secret_key(key):
            event[key] = REDACTED
        else:
            event[key] = _redact_value(event[key])
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now, so a live progress display that redirects stderr
    prints log lines above its bars instead of through them."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(format: LogFormat = "console", verbosity: int = 0) -> None:
    """Configure structlog (and stdlib logging) to write to stderr.

    Args:
        format: ``console`` (human lines, coloured on a terminal) or ``json`` (one object a line).
        verbosity: -1 errors only, 0 warnings and errors, 1 (``-v``) info, 2 (``-vv``) debug,
            3 also the AWS SDK's and the emulator's own loggers.
    """
    level = (
        logging.ERROR
        if verbosity < 0
        else {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # PrintLoggerFactory wants a TextIO; it only ever calls write() and flush().
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # botocore and friends log through stdlib logging: keep them quiet unless asked.
    stdlib_level = logging.DEBUG if verbosity >= 3 else logging.WARNING
    logging.basicConfig(level=stdlib_level, stream=sys.stderr)
    for noisy in ("botocore", "aiobotocore", "aiohttp.access", "werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(stdlib_level)
