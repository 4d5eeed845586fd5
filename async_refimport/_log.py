"""The library's loggers: structlog's API over the standard library's ``logging``.

A library is a guest in its host's process. Every module logs through ``get_logger(__name__)``:
a structlog logger wrapped around the stdlib logger of the same name (all under
``async_refimport``), with the library's own processors. The global ``structlog.configure()``
is never called, so a host's own structlog set-up is left alone, and:

* with logging unconfigured, nothing is printed: the package logger has a ``NullHandler``, as
  boto3's has (without it, Python's last-resort handler would print warnings to stderr);
* the host's levels and handlers decide: ``logging.basicConfig(level=logging.WARNING)`` shows
  warnings and errors only, and a disabled level costs one ``isEnabledFor`` check;
* a record's message is the event with its key-value pairs
  (``import_job.started store_id=1234567890 job_id=5012345678 rows=100``), readable through any
  plain ``Formatter``; the structured event stays on the record as :data:`EVENT_ATTR` for
  formatters that render it themselves (``refimport`` and its worker do, as console or JSON lines).

Context bound with ``structlog.contextvars`` (store id, job id, spool file) is merged into every
event.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, cast

import structlog

ROOT = "async_refimport"
#: Attribute of a ``logging.LogRecord`` holding the structured event (a dict) it came from.
EVENT_ATTR = "refimport_event"

logging.getLogger(ROOT).addHandler(logging.NullHandler())


def _quote(value: Any) -> str:
    text = str(value)
    if text and not any(c.isspace() or c in "\"='" for c in text):
        return text
    return repr(text)


def _to_stdlib(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[str], dict[str, Any]]:
    """Last processor: the (args, kwargs) of the stdlib logging call."""
    exc_info = event_dict.pop("exc_info", None)
    event = dict(event_dict)
    name = str(event_dict.pop("event", ""))
    message = " ".join([name, *(f"{k}={_quote(v)}" for k, v in event_dict.items())])
    kwargs: dict[str, Any] = {"extra": {EVENT_ATTR: event}}
    if exc_info:
        kwargs["exc_info"] = exc_info
    return (message,), kwargs


_PROCESSORS: list[Any] = [
    # First, so that a disabled level costs nothing more.
    structlog.stdlib.filter_by_level,
    structlog.contextvars.merge_contextvars,
    _to_stdlib,
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing to the stdlib logger ``name`` (a module's ``__name__``)."""
    return cast(
        structlog.stdlib.BoundLogger,
        structlog.wrap_logger(
            logging.getLogger(name),
            processors=_PROCESSORS,
            wrapper_class=structlog.stdlib.BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=True,
        ),
    )
