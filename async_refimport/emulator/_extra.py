"""The ``emulator`` extra: what it brings, and the one line that says it is missing.

The emulator's own code needs only the library's dependencies; its embedded S3 (and
EventBridge, SQS) is moto's server, which comes with ``pip install 'async-refimport[emulator]'``.
Without it, ``refimport demo``, ``refimport emulator`` and the pytest fixtures say so in one
line instead of a traceback.
"""

from __future__ import annotations

import importlib

#: The one line shown wherever the extra is missing.
HINT = "the emulator needs the 'emulator' extra: pip install 'async-refimport[emulator]'"

#: Top-level modules the extra brings (moto's server pulls in flask and werkzeug).
EXTRA_MODULES = frozenset({"moto", "boto3", "flask", "werkzeug"})


class MissingExtraError(ImportError):
    """The ``emulator`` extra is not installed; ``str()`` is the one-line hint."""


def require_extra() -> None:
    """Import what the embedded servers need.

    Raises:
        MissingExtraError: a module of the extra cannot be imported.
    """
    for module in ("moto.server", "boto3"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtraError(missing_extra_hint(exc) or HINT, name=exc.name) from exc


def missing_extra_hint(error: BaseException) -> str | None:
    """The one-line hint when ``error`` (or an error it was raised from) is the missing extra."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MissingExtraError):
            return str(current)
        if isinstance(current, ImportError):
            top = (current.name or "").partition(".")[0]
            if top in EXTRA_MODULES:
                return f"{HINT} (no module {top!r})"
        current = current.__cause__ or current.__context__
    return None
