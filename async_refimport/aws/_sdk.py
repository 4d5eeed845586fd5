"""What every botocore session and client of the process shares, made once (issue 23).

botocore does some work per session and per client that is the same for all of them: with a
session per account, one process driving hundreds of accounts paid it hundreds of times.
:mod:`async_refimport.aws.clients` makes its sessions and clients with these:

* :class:`SharedAliases`: one cache of botocore's aliased event names, not one per client;
* :class:`CopyOnWriteEmitter`: a session's event emitter, the process's shared one until a
  handler is registered on that session;
* :func:`parse_timestamp`: the ISO 8601 timestamps of every response read by the standard
  library instead of dateutil's generic parser;
* :func:`share_file_parses`: the config and credentials files parsed once per version of
  each, not once per credential provider of each session;
* :func:`tls_context` and :func:`with_shared_tls`: one TLS context per CA bundle.
"""

from __future__ import annotations

import copy
import functools
import os
import ssl
import threading
from datetime import datetime
from typing import Any

from botocore.config import Config
from botocore.hooks import EventAliaser

from async_refimport._log import get_logger

__all__ = [
    "ALIAS_NAMES",
    "CopyOnWriteEmitter",
    "SharedAliases",
    "parse_timestamp",
    "share_file_parses",
    "tls_context",
    "with_shared_tls",
]

log = get_logger(__name__)

_LOCK = threading.Lock()
ALIAS_NAMES: dict[str, str] = {}
"""Event names as botocore aliases them, for every session and client (:class:`SharedAliases`)."""
# Each file a credential provider parses, per version (see _parsed_file).
_PARSED_FILES: dict[tuple[str, str, int, int], Any] = {}
# One TLS context per CA bundle, shared by every client's connections.
_TLS_CONTEXTS: dict[str | None, ssl.SSLContext] = {}


class SharedAliases(EventAliaser):
    """botocore's event aliaser, its cache of aliased names shared by the whole process.

    botocore keeps that cache per aliaser, and every client copies its session's into a new,
    empty one: each client worked out the aliases of each event name it emits again (about 60 a
    client, a few milliseconds of CPU each time). The names depend only on the aliases (botocore's
    own table, a constant), so one cache serves every aliaser that has that table. Copies are
    of this class too (botocore copies with ``self.__class__``).
    """

    def __init__(self, event_emitter: Any, event_aliases: Any = None) -> None:
        super().__init__(event_emitter, event_aliases)
        from botocore.hooks import EVENT_ALIASES

        if vars(self).get("_event_aliases") == EVENT_ALIASES:
            vars(self)["_alias_name_cache"] = ALIAS_NAMES


class CopyOnWriteEmitter:
    """A session's event emitter: the process's shared one, copied once something registers.

    Events are emitted by the shared emitter (the same handlers); registering or unregistering a
    handler on the session first gives it a copy of its own, so it stays the session's alone.
    A client copies it as botocore copies any session's emitter.

    Args:
        shared: The emitter every session starts with (:func:`_session_emitter`).
    """

    def __init__(self, shared: Any) -> None:
        self._shared = shared
        self._own: Any = None

    def _reading(self) -> Any:
        return self._shared if self._own is None else self._own

    def _writing(self) -> Any:
        if self._own is None:
            self._own = copy.copy(self._shared)
        return self._own

    def emit(self, event_name: str, **kwargs: Any) -> Any:
        """Emit ``event_name`` (botocore's ``emit``; aiobotocore's returns an awaitable).

        Args:
            event_name: The event.
            **kwargs: Its arguments.

        Returns:
            The handlers' responses.
        """
        return self._reading().emit(event_name, **kwargs)

    def emit_until_response(self, event_name: str, **kwargs: Any) -> Any:
        """Emit ``event_name`` until a handler responds (botocore's ``emit_until_response``).

        Args:
            event_name: The event.
            **kwargs: Its arguments.

        Returns:
            The first handler and response that is not ``None``.
        """
        return self._reading().emit_until_response(event_name, **kwargs)

    def register(self, *args: Any, **kwargs: Any) -> Any:
        """Register a handler on this session only (botocore's ``register``).

        Args:
            *args: botocore's arguments.
            **kwargs: botocore's arguments.

        Returns:
            botocore's answer.
        """
        return self._writing().register(*args, **kwargs)

    def register_first(self, *args: Any, **kwargs: Any) -> Any:
        """Register a handler first, on this session only (botocore's ``register_first``).

        Args:
            *args: botocore's arguments.
            **kwargs: botocore's arguments.

        Returns:
            botocore's answer.
        """
        return self._writing().register_first(*args, **kwargs)

    def register_last(self, *args: Any, **kwargs: Any) -> Any:
        """Register a handler last, on this session only (botocore's ``register_last``).

        Args:
            *args: botocore's arguments.
            **kwargs: botocore's arguments.

        Returns:
            botocore's answer.
        """
        return self._writing().register_last(*args, **kwargs)

    def unregister(self, *args: Any, **kwargs: Any) -> Any:
        """Unregister a handler from this session only (botocore's ``unregister``).

        Args:
            *args: botocore's arguments.
            **kwargs: botocore's arguments.

        Returns:
            botocore's answer.
        """
        return self._writing().unregister(*args, **kwargs)

    def __copy__(self) -> Any:
        """A copy of the emitter in use (a client's own).

        Returns:
            An independent emitter with the same handlers.
        """
        return copy.copy(self._reading())


def parse_timestamp(value: Any) -> Any:
    """botocore's timestamp parser, with the form AWS sends read by the standard library.

    ``2024-01-01T00:00:00.123Z`` (UTC, ``Z`` or ``+00:00``) becomes the same datetime botocore
    would make (UTC, microseconds), without dateutil's generic parser (about a millisecond of CPU a
    timestamp); any other form (epoch seconds, other offsets) is botocore's to read.

    Args:
        value: A timestamp as a response carries it.

    Returns:
        A timezone-aware datetime.
    """
    if isinstance(value, str) and len(value) >= 20 and value[10] == "T":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.utcoffset() is not None and not parsed.utcoffset():
            from dateutil.tz import tzutc  # type: ignore[import-untyped]

            return parsed.replace(tzinfo=tzutc())
    from botocore.utils import parse_timestamp as botocore_parse

    return botocore_parse(value)


def share_file_parses(provider: Any) -> None:
    """Let ``provider`` (and the providers it builds for source profiles) share file parses.

    botocore's shared-credentials and config providers parse their whole file at each load, a
    provider per session: with a profile per account that is quadratic in the accounts. A
    parser given by a caller is kept.
    """
    import botocore.configloader

    for attribute, default in (
        ("_ini_parser", botocore.configloader.raw_config_parse),
        ("_config_parser", botocore.configloader.load_config),
    ):
        if getattr(provider, attribute, None) is default:
            setattr(provider, attribute, functools.partial(_parsed_file, default))
    # An assume-role provider builds its source profile's providers when it loads.
    builder: Any = getattr(provider, "_profile_provider_builder", None)
    build = getattr(builder, "providers", None)
    if build is not None and not isinstance(build, functools.partial):

        def providers(build: Any, *args: Any, **kwargs: Any) -> list[Any]:
            built: list[Any] = build(*args, **kwargs)
            for each in built:
                share_file_parses(each)
            return built

        builder.providers = functools.partial(providers, build)


def _parsed_file(parse: Any, path: str, *args: Any) -> Any:
    """``parse(path)``, made once per version of the file (its modification time and size).

    The providers only read what they are given. A file that cannot be read is parsed afresh
    each time, so its error is botocore's.
    """
    expanded = os.path.expanduser(os.path.expandvars(path)) if path else path
    try:
        stat = os.stat(expanded)
    except (OSError, TypeError, ValueError):
        return parse(path, *args)
    key = (parse.__name__, str(expanded), stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        parsed = _PARSED_FILES.get(key)
    if parsed is None or args:
        parsed = parse(path, *args)
        if not args:
            with _LOCK:
                if len(_PARSED_FILES) >= 16:  # old versions of the files: not needed again
                    _PARSED_FILES.clear()
                _PARSED_FILES[key] = parsed
    return parsed


def tls_context(ca_certs: str | None) -> ssl.SSLContext:
    """The TLS context of every client of the process that verifies with ``ca_certs``.

    aiobotocore builds one per client, reading the whole CA bundle each time (about 40 ms of
    CPU): two clients an account made that the largest CPU cost of a store.

    Args:
        ca_certs: The CA bundle's path (``None``: the system's).

    Returns:
        The context, made once per bundle.
    """
    with _LOCK:
        context = _TLS_CONTEXTS.get(ca_certs)
        if context is None:
            from botocore.httpsession import create_urllib3_context

            context = create_urllib3_context()
            if ca_certs:
                context.load_verify_locations(ca_certs, None, None)
            _TLS_CONTEXTS[ca_certs] = context
        return context


@functools.cache
def _shared_tls_session() -> type[Any]:
    """aiobotocore's HTTP session, its connectors on :func:`tls_context` (made once)."""
    import aiohttp
    from aiobotocore.httpsession import AIOHTTPSession
    from botocore.httpsession import get_cert_path

    needed = ("_verify", "_cert_file", "_max_pool_connections", "_connector_args")

    # Its private attributes are aiobotocore's: checked for at each use, else its own way.
    base: Any = AIOHTTPSession

    class SharedTlsSession(base):  # type: ignore[misc]
        """An ``AIOHTTPSession`` whose connectors share the process's TLS context."""

        def _create_connector(self, proxy_url: str | None) -> Any:
            plain = all(hasattr(self, name) for name in needed) and not self._cert_file
            if proxy_url or not plain or not self._verify:
                # A proxy, a client certificate, no verification: aiobotocore's own way.
                return super()._create_connector(proxy_url)
            return aiohttp.TCPConnector(
                limit=self._max_pool_connections,
                ssl=tls_context(get_cert_path(self._verify)),
                **self._connector_args,
            )

    return SharedTlsSession


def with_shared_tls(config: Config) -> Config:
    """``config`` for aiobotocore, its HTTP session sharing the process's TLS contexts.

    Args:
        config: A botocore configuration (an ``AioConfig`` is returned as it is: its caller
            chose its HTTP session).

    Returns:
        An ``AioConfig`` with the same options.
    """
    from aiobotocore.config import AioConfig

    if isinstance(config, AioConfig):
        return config
    options = getattr(config, "_user_provided_options", {})
    shared: Config = AioConfig(http_session_cls=_shared_tls_session(), **options)
    return shared
