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
* :func:`tls_context` and :func:`with_shared_tls`: one TLS context per CA bundle;
* :class:`CachedUserAgent`: a client's User-Agent header built once per set of features, not
  once per request;
* :func:`share_client_parts`: the clients of one service share one generated class and one
  parsed endpoint rule set, not one each.
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
from botocore.useragent import UserAgentString

from async_refimport._log import get_logger

__all__ = [
    "ALIAS_NAMES",
    "CachedUserAgent",
    "CopyOnWriteEmitter",
    "SharedAliases",
    "parse_timestamp",
    "share_client_parts",
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
# Per service model (its parsed description, kept to guard the id): the first client class
# generated for it, by the shape of the class; and the first parsed endpoint rule set.
_CLIENT_CLASSES: dict[tuple[Any, ...], tuple[Any, type[Any]]] = {}
_ENDPOINT_PROVIDERS: dict[int, tuple[Any, Any]] = {}


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

    @property
    def shared(self) -> bool:
        """Whether the session still uses the process's emitter (nothing registered on it).

        Returns:
            True until a handler is registered or unregistered on the session.
        """
        return self._own is None

    def __copy__(self) -> Any:
        """A copy of the emitter in use (a client's own).

        Returns:
            An independent emitter with the same handlers.
        """
        return copy.copy(self._reading())


# What botocore's User-Agent builder reads besides the request's context (the rest is fixed).
_AGENT_INPUTS = frozenset(
    {
        "_session_user_agent_name",
        "_session_user_agent_version",
        "_session_user_agent_extra",
        "_client_config",
        "_client_features",
    }
)


class CachedUserAgent(UserAgentString):
    """botocore's User-Agent builder, each string it builds kept for the next request.

    botocore builds a client's User-Agent header anew for every request, twice (once when the
    request is made, once more just before it is signed), sanitising each of its ~15 parts: a
    fifth of a small call's CPU. The string depends only on what the builder was given (the
    session's name, version and extra, the client's configuration and features) and on the
    features the request's context registered, so each string is kept by all of those; a copy
    (botocore copies the session's builder for each client) starts with none kept.
    """

    def to_string(self) -> str:
        """The User-Agent header (botocore's ``to_string``), built once per distinct input.

        Returns:
            The header's value.
        """
        from botocore.context import get_context

        state = vars(self)
        if not _AGENT_INPUTS <= state.keys():  # a botocore of another shape: no keeping
            return str(super().to_string())
        ctx = get_context()
        config = state["_client_config"]
        features = state["_client_features"]
        key = (
            state["_session_user_agent_name"],
            state["_session_user_agent_version"],
            state["_session_user_agent_extra"],
            id(config),
            frozenset(features) if features else None,
            frozenset(ctx.features) if ctx is not None and ctx.features else None,
        )
        kept: dict[Any, tuple[Any, str]] = state.setdefault("_refimport_kept", {})
        entry = kept.get(key)
        # The configuration itself is kept with its string: an id is only unique while alive.
        if entry is None or entry[0] is not config:
            entry = kept[key] = (config, str(super().to_string()))
        return entry[1]

    def __copy__(self) -> CachedUserAgent:
        """A copy with the same inputs and nothing kept (its inputs are about to change).

        Returns:
            The copy.
        """
        cls = type(self)
        copied = cls.__new__(cls)
        vars(copied).update(vars(self))
        vars(copied).pop("_refimport_kept", None)
        return copied


def share_client_parts(client: Any, *, same_handlers: bool) -> None:
    """Let ``client`` use the class and endpoint rule set of the first client of its service.

    botocore generates a new class for every client (a method, an operation model and a
    docstring per operation: about 600 objects for omics) and parses the service's endpoint
    rule set into a new tree of rules for each: hundreds of clients of one service kept
    hundreds of identical copies alive, which every full garbage collection walks. Both depend
    only on the service model (read from the shared loader, so one object per service and
    version) and, for the class, on the handlers of ``creating-client-class`` (the process's
    shared ones, unless the session registered its own): the client's own are swapped for the
    first ones and left to the collector. A client of any other shape is left as it is.

    Args:
        client: A client just made.
        same_handlers: Whether its session emits with the process's shared handlers only
            (:attr:`CopyOnWriteEmitter.shared`): the class is shared only then.
    """
    model = getattr(getattr(client, "meta", None), "service_model", None)
    description = getattr(model, "_service_description", None)
    if description is None:
        return
    cls = type(client)
    key = (id(description), cls.__name__, cls.__bases__, frozenset(vars(cls)))
    resolver: Any = getattr(client, "_ruleset_resolver", None)
    provider = getattr(resolver, "_provider", None)
    with _LOCK:
        if same_handlers:
            known = _CLIENT_CLASSES.get(key)
            if known is None or known[0] is not description:
                _CLIENT_CLASSES[key] = (description, cls)
            elif known[1] is not cls:
                client.__class__ = known[1]
        if provider is not None and hasattr(provider, "resolve_endpoint"):
            kept = _ENDPOINT_PROVIDERS.get(id(description))
            if kept is None or kept[0] is not description:
                _ENDPOINT_PROVIDERS[id(description)] = (description, provider)
            elif kept[1] is not provider and vars(resolver).get("_provider") is provider:
                # Resolving is a pure function of the request's parameters (cached by them).
                resolver._provider = kept[1]
                resolver._param_definitions = kept[1].ruleset.parameters


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
