"""The one place that makes AWS clients: sessions, configuration, Regions and bounded clean-up.

Every caller of AWS in the library (the HealthOmics gateway, the DynamoDB journal, SQS, S3 source
checks, the event rule, manifests read from S3) asks a :class:`ClientPool` for its clients instead
of building its own ``aioboto3.Session``; a test (``tests/unit/test_aws_clients.py``) fails if
another module does.

* **One session per profile**, all of them (in every pool of the process) sharing one botocore
  data loader, so service models and endpoint data are parsed once per process, not once per
  account (a session's own loader keeps its own copy of every model it reads: about 10 MiB an
  account for omics and S3). A session resolves its profile's credentials once and refreshes
  them itself (assume-role, SSO, ``credential_process``); a profile that assumes a role gets its
  source profile's credentials through botocore's own chain. What botocore does alike for each
  session is done once per process (:mod:`async_refimport.aws._sdk`): its and boto3's event
  handlers registered on one emitter every session starts from, the config and credentials
  files parsed once per version, one TLS context per CA bundle, ISO 8601 timestamps read by the
  standard library.
* **One client per (service, profile, Region, endpoint, configuration)**, made on first use and
  kept until the pool closes or :meth:`ClientPool.release` lets it go: clients are made lazily,
  so a store whose sources are not checked never gets an S3 client.
* **Configuration is the SDK's own**: endpoints come from ``endpoint_url`` when given, else from
  botocore's configuration chain (``AWS_ENDPOINT_URL_<SERVICE>`` as botocore spells the service
  id, ``AWS_ENDPOINT_URL``, the profile's ``endpoint_url``), which botocore applies itself; the
  Region from ``region``, else ``AWS_REGION`` (what the AWS CLI and other SDKs read), else
  botocore's chain (``AWS_DEFAULT_REGION``, the profile): :func:`default_region`.
* **Retries belong to tenacity**: a client has botocore's retries off (one attempt) unless its
  caller passes a configuration of its own.
* **Clean-up is bounded**: closing waits at most ``close_timeout`` seconds, shielded, so a
  shutdown never hangs on a stuck connection.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
from botocore.config import Config
from botocore.hooks import EventAliaser
from botocore.useragent import UserAgentString

from async_refimport._log import get_logger
from async_refimport.aws._sdk import (
    ALIAS_NAMES,
    CachedUserAgent,
    CopyOnWriteEmitter,
    SharedAliases,
    parse_timestamp,
    share_client_parts,
    share_file_parses,
    tls_context,
    with_shared_tls,
)

if TYPE_CHECKING:
    from botocore.loaders import Loader

__all__ = [
    "CLOSE_TIMEOUT",
    "ClientPool",
    "configured_endpoint",
    "configured_region",
    "default_region",
    "endpoint_configured",
    "no_retries",
    "sdk_retries",
    "shared_loader",
    "sync_client",
    "tls_context",
    "with_shared_tls",
]

log = get_logger(__name__)

CLOSE_TIMEOUT = 10.0
"""Seconds a pool's clean-up may take before it gives up on its connections."""

# The endpoint variable botocore reads for a service is named after its service id, which is not
# always the client's name (``events`` is EventBridge).
_ENDPOINT_VARIABLES = {"events": "AWS_ENDPOINT_URL_EVENTBRIDGE"}

# One loader per data path (AWS_DATA_PATH), shared by every session of the process.
_LOADERS: dict[str | None, Loader] = {}
_LOADERS_LOCK = threading.Lock()
# The parsed config and credentials files, per version of both (see _shared_config_session).
_CONFIGS: dict[tuple[tuple[str, int, int], ...], Any] = {}


def no_retries(**options: Any) -> Config:
    """A botocore configuration with botocore's own retries off (tenacity owns retries).

    Args:
        **options: Other ``Config`` options as given (timeouts, pool size, host prefix).

    Returns:
        The configuration.
    """
    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, **options)


def sdk_retries() -> Config:
    """A botocore configuration that keeps botocore's own retries (its configuration chain's).

    For one-shot calls with no retry loop of their own (a manifest read from S3, the event
    rule's set-up).

    Returns:
        The configuration.
    """
    return Config()


def configured_region(region: str | None = None) -> str | None:
    """The Region a client is made for, as far as botocore does not choose it itself.

    Args:
        region: A Region given by the caller.

    Returns:
        ``region`` if given, else ``AWS_REGION``; ``None`` leaves it to botocore's chain
        (``AWS_DEFAULT_REGION``, the profile).
    """
    return region or os.environ.get("AWS_REGION") or None


def default_region(profile: str | None = None) -> str | None:
    """The Region the AWS SDK would use: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the
    profile's (``profile``, else ``AWS_PROFILE``, else the default profile).

    Reads configuration files: call it from a thread in async code.

    Args:
        profile: The AWS profile whose ``region`` is read last.

    Returns:
        The Region, or ``None`` when nothing configures one, or the profile does not exist (each
        store's first call then says so, as a ``SetupError``).
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import botocore.exceptions
    import botocore.session

    try:
        configured = botocore.session.Session(profile=profile).get_config_variable("region")
    except botocore.exceptions.BotoCoreError:  # no such profile, an unreadable config file
        return None
    return str(configured) if configured else None


def configured_endpoint(service: str, explicit: str | None = None) -> str | None:
    """The endpoint ``service`` is reached at, if it is not AWS's own.

    Args:
        service: The botocore service name (``omics``, ``s3``, ``events`` ...).
        explicit: An endpoint given by the caller (a row's, a flag's): it wins.

    Returns:
        ``explicit``, else ``AWS_ENDPOINT_URL_<SERVICE>`` (as botocore spells the service id),
        else ``AWS_ENDPOINT_URL``; ``None`` for AWS's own endpoint.
    """
    variable = _ENDPOINT_VARIABLES.get(service, f"AWS_ENDPOINT_URL_{service.upper()}")
    return explicit or os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL") or None


def endpoint_configured(service: str, explicit: str | None = None) -> bool:
    """Whether ``service`` is reached at another endpoint than AWS's own.

    Args:
        service: The botocore service name.
        explicit: An endpoint given by the caller.

    Returns:
        True when :func:`configured_endpoint` names one.
    """
    return configured_endpoint(service, explicit) is not None


def shared_loader(data_path: str | None = None) -> Loader:
    """The botocore data loader every session of the process shares (one per data path).

    A loader caches every model it reads; sharing it parses each service model, endpoint rule
    set and the partitions once per process instead of once per session.

    Args:
        data_path: ``AWS_DATA_PATH`` as botocore reads it (extra model directories).

    Returns:
        The loader, boto3's own data directory included (as each boto3 session adds it).
    """
    with _LOADERS_LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            import boto3
            from botocore.loaders import create_loader

            loader = create_loader(data_path)
            loader.search_paths.append(os.path.join(os.path.dirname(boto3.__file__), "data"))
            _LOADERS[data_path] = loader
        return loader


def new_session(profile: str | None = None) -> Any:
    """A new ``aioboto3.Session`` for ``profile`` on the process's shared loader.

    Prefer :meth:`ClientPool.session`, which makes one per profile and keeps it.

    Args:
        profile: The AWS profile (``None``: ``AWS_PROFILE`` or the default chain).

    Returns:
        The session.
    """
    import botocore.exceptions

    core = _new_core_session(profile)
    try:
        data_path = core.get_config_variable("data_path")
    except botocore.exceptions.BotoCoreError:  # no such profile: the first call says so
        data_path = os.environ.get("AWS_DATA_PATH")
    loader = shared_loader(data_path)
    core.register_component("data_loader", loader)
    session = _session_class()(botocore_session=core, profile_name=profile)
    # boto3 adds its data directory to the session's loader each time: keep the list short.
    _dedupe(loader.search_paths)
    return session


def _new_core_session(profile: str | None) -> Any:
    """A :func:`_shared_config_session` for ``profile`` on the sessions' shared event emitter.

    botocore registers its ~120 built-in handlers on each new session, checking each one's
    signature, and boto3 adds its own: with a session per account that was the largest CPU
    cost of an account, and a copy of the emitter's handler tree (about 700 objects, which every
    garbage collection walks) per session. The handlers are the same for every session, and a
    client copies its session's emitter when it is made, so every session of the process uses
    one emitter with them registered once (:func:`_session_emitter`), until a handler is
    registered on the session itself (:class:`CopyOnWriteEmitter`).
    """
    cls = _shared_config_session()
    emitter = _session_emitter()
    if emitter is None:  # a botocore whose session registers them otherwise: its own way
        core = cls(profile=profile)
    else:
        hooks = CopyOnWriteEmitter(emitter)
        core = cls(profile=profile, event_hooks=hooks, include_builtin_handlers=False)
        core._refimport_shared_events = True
    events: Any = core._events
    if type(events) is EventAliaser:  # the same object: the session's components hold it
        events.__class__ = SharedAliases
        vars(events)["_alias_name_cache"] = ALIAS_NAMES  # botocore's own table: the class
    # Read by every response parser of the session's clients (each API call's timestamps).
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    agent = core.get_component("user_agent_creator")
    if type(agent) is UserAgentString:  # the session's; each client copies it
        agent.__class__ = CachedUserAgent
    return core


@functools.cache
def _session_class() -> type[Any]:
    """``aioboto3.Session``, not registering boto3's handlers again on the shared emitter."""
    import aioboto3  # imported lazily: slow to import, and not needed by readers

    base: Any = aioboto3.Session

    class PoolSession(base):  # type: ignore[misc]
        """An ``aioboto3.Session`` whose boto3 handlers are on its emitter already."""

        def _register_default_handlers(self) -> None:
            if not getattr(self._session, "_refimport_shared_events", False):
                super()._register_default_handlers()

    return PoolSession


@functools.cache
def _session_emitter() -> Any:
    """The event emitter of every session: botocore's and boto3's handlers, registered once.

    botocore's by the session class's own method, boto3's by a session of its own made on it;
    ``None`` if that method does not work that way any more.
    """
    import aioboto3
    from aiobotocore.hooks import AioHierarchicalEmitter

    emitter = AioHierarchicalEmitter()
    events = EventAliaser(emitter)
    # The method registers through the session's register() and its event aliaser only.
    registrar = type("_Registrar", (), {"register": events.register, "_events": events})()
    cls = _shared_config_session()
    try:
        cls._register_builtin_handlers(registrar, events)
    except (AttributeError, TypeError) as exc:  # pragma: no cover - a botocore of another shape
        log.debug("aws.builtin_handlers_not_shared", error=repr(exc))
        return None
    aioboto3.Session(botocore_session=cls(event_hooks=emitter, include_builtin_handlers=False))
    return emitter


def sync_client(service: str, **kwargs: Any) -> Any:
    """A blocking boto3 client (the demo's set-up of the emulator), on the shared loader.

    Args:
        service: The botocore service name.
        **kwargs: ``boto3.Session.client`` arguments (``endpoint_url``, ``region_name`` ...).

    Returns:
        The client; the caller closes it (``client.close()``) or lets it go.
    """
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("data_loader", shared_loader(os.environ.get("AWS_DATA_PATH")))
    session: Any = boto3.Session(botocore_session=core)
    _dedupe(core.get_component("data_loader").search_paths)
    return session.client(service, **kwargs)


def _dedupe(paths: list[str]) -> None:
    paths[:] = list(dict.fromkeys(paths))


def _files_key(*paths: str) -> tuple[tuple[str, int, int], ...]:
    """Which version of each file: its path, modification time and size (-1: none)."""
    key = []
    for path in paths:
        try:
            stat = os.stat(os.path.expanduser(path))
        except (OSError, TypeError, ValueError):
            key.append((str(path), -1, -1))
        else:
            key.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(key)


@functools.cache
def _shared_config_session() -> type[Any]:
    """aiobotocore's session, the parsed config and credentials files shared by all (made once).

    Each botocore session parses both files in full: with a profile per account that is
    quadratic in the accounts. Sessions of the same file versions share one parse (botocore only
    reads it); a file changed on disk is parsed again.
    """
    from aiobotocore.session import AioSession

    base: Any = AioSession

    class SharedConfigSession(base):  # type: ignore[misc]
        """An ``AioSession`` whose ``full_config`` is shared per version of the files."""

        @property
        def full_config(self) -> Any:
            """The parsed config file, with the credentials file's profiles (shared)."""
            if getattr(self, "_config", None) is None:
                key = _files_key(
                    self.get_config_variable("config_file"),
                    self.get_config_variable("credentials_file"),
                )
                with _LOADERS_LOCK:
                    shared = _CONFIGS.get(key)
                if shared is None:
                    shared = super().full_config
                    with _LOADERS_LOCK:
                        if len(_CONFIGS) >= 8:  # old versions of the files: not needed again
                            _CONFIGS.clear()
                        _CONFIGS[key] = shared
                self._config = shared
            return self._config

        def _create_credential_resolver(self) -> Any:
            """botocore's chain, its file providers reading :func:`_parsed_file`'s parses."""
            resolver = super()._create_credential_resolver()
            for provider in getattr(resolver, "providers", ()):
                share_file_parses(provider)
            return resolver

    return SharedConfigSession


class ClientPool:
    """AWS clients made on first use and closed together (an async context manager).

    A pool is used from one event loop; its clients must not outlive it.

    Args:
        close_timeout: Seconds :meth:`aclose` and :meth:`release` may take (shielded) before
            they give up on the connections.
    """

    def __init__(self, *, close_timeout: float = CLOSE_TIMEOUT) -> None:
        self._close_timeout = close_timeout
        self._sessions: dict[str | None, Any] = {}
        # key -> (client, the context manager that closes it), in the order they were made.
        self._clients: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        # One lock per client being made: an account whose credentials take a while (an
        # assume-role call) does not hold up the clients of the others.
        self._making: dict[tuple[Any, ...], anyio.Lock] = {}
        self._default_config = no_retries()
        # Configurations seen, by identity: a caller passes the same one for every call.
        self._config_keys: dict[int, tuple[Config, tuple[Any, ...], Config]] = {}

    async def __aenter__(self) -> ClientPool:
        """Enter the pool (nothing to open: clients are made on first use).

        Returns:
            The pool.
        """
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close every client (:meth:`aclose`)."""
        await self.aclose()

    def session(self, profile: str | None = None) -> Any:
        """The ``aioboto3.Session`` of ``profile``, made once (on the shared loader).

        Its credentials are resolved once and refreshed by the session itself.

        Args:
            profile: The AWS profile (``None``: ``AWS_PROFILE`` or the default chain).

        Returns:
            The session.
        """
        session = self._sessions.get(profile)
        if session is None:
            session = self._sessions[profile] = new_session(profile)
        return session

    def clients(
        self,
        *,
        profiles: Iterable[str | None] | None = None,
        services: Iterable[str] | None = None,
    ) -> int:
        """How many clients are open (of ``profiles``, of ``services``, when given).

        Args:
            profiles: Count only the clients of these profiles (``None`` in it: the default
                chain's).
            services: Count only the clients of these services.

        Returns:
            The number of clients made and not yet closed.
        """
        return len(self._keys(profiles, None, services))

    def _keys(
        self,
        profiles: Iterable[str | None] | None,
        region: str | None,
        services: Iterable[str] | None,
    ) -> list[tuple[Any, ...]]:
        """The keys of the clients of ``profiles``, ``region`` and ``services`` (None: any)."""
        of = None if profiles is None else set(profiles)
        wanted = None if services is None else set(services)
        return [
            k
            for k in self._clients
            if (of is None or k[1] in of)
            and (region is None or k[2] == region)
            and (wanted is None or k[0] in wanted)
        ]

    async def client(
        self,
        service: str,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        config: Config | None = None,
    ) -> Any:
        """The client of ``service`` for this profile, Region and endpoint, made on first use.

        Args:
            service: The botocore service name (``omics``, ``s3``, ``dynamodb``, ``sqs``,
                ``events``).
            region: The Region (default: :func:`configured_region`, then botocore's chain).
            profile: The AWS profile (default: the standard credentials chain).
            endpoint_url: An endpoint (an emulator); ``None``: botocore's configuration chain.
            config: The client's configuration (default: :func:`no_retries`); a pool keeps one
                client per distinct configuration.

        Returns:
            The aiobotocore client (open until the pool closes or releases it).

        Raises:
            botocore.exceptions.ProfileNotFound: no such profile.
            botocore.exceptions.BotoCoreError: another configuration error (no Region ...).
        """
        region = configured_region(region)
        options, client_config = self._known(config or self._default_config)
        key = (service, profile, region, endpoint_url, options)
        made = self._clients.get(key)
        if made is not None:
            return made[0]
        lock = self._making.setdefault(key, anyio.Lock())
        async with lock:
            made = self._clients.get(key)
            if made is None:
                session = self.session(profile)
                context = session.client(
                    service, region_name=region, endpoint_url=endpoint_url, config=client_config
                )
                client = await context.__aenter__()
                share_client_parts(client, same_handlers=_shared_handlers(session))
                made = self._clients[key] = (client, context)
        if self._making.get(key) is lock and not lock.statistics().tasks_waiting:
            del self._making[key]
        return made[0]

    def _known(self, config: Config) -> tuple[tuple[Any, ...], Config]:
        # A configuration's key and its aiobotocore form, computed once per configuration.
        known = self._config_keys.get(id(config))
        if known is None or known[0] is not config:
            known = (config, _config_key(config), with_shared_tls(config))
            self._config_keys[id(config)] = known
        return known[1], known[2]

    async def release(
        self,
        *,
        profile: str | None,
        region: str | None = None,
        services: Iterable[str] | None = None,
        linger: float = 0.0,
    ) -> int:
        """Close the clients of ``profile`` (in ``region``, of ``services`` only, if given): an
        account done.

        The clients are taken out of the pool at once (:meth:`clients` no longer counts them,
        and a later :meth:`client` call makes a new one), then closed after ``linger`` seconds,
        so that a request still in flight on one of them ends as it would have; a request in
        flight at the close fails. The profile's session is kept (its credentials stay cached).
        The close is bounded like :meth:`aclose`, and done even if the caller is cancelled
        while lingering.

        Args:
            profile: The profile whose clients are closed (``None``: the default chain's).
            region: Only the clients of this Region (after :func:`configured_region`).
            services: Only the clients of these services (``omics``, ``s3`` ...).
            linger: Seconds between taking the clients out and closing them.

        Returns:
            How many clients were released.
        """
        region = configured_region(region) if region is not None else None
        keys = self._keys([profile], region, services)
        # Taken out before anything is awaited: whoever asks from now on gets a new client.
        made = [self._clients.pop(k) for k in keys]
        if made:
            log.debug("aws.clients_released", profile=profile, clients=len(made))
        try:
            if made and linger > 0:
                await anyio.sleep(linger)
        finally:
            await self._close(made)
        return len(made)

    async def aclose(self) -> None:
        """Close every client (bounded by ``close_timeout``, shielded).

        The pool may be used again afterwards: it makes new clients.
        """
        made = list(self._clients.values())
        self._clients.clear()
        await self._close(made)

    async def _close(self, made: Iterable[tuple[Any, Any]]) -> None:
        # Newest first, as an exit stack would; one failing close does not keep the others open.
        with anyio.move_on_after(self._close_timeout, shield=True) as scope:
            for _client, context in reversed(list(made)):
                try:
                    await context.__aexit__(None, None, None)
                except Exception as exc:  # a broken connection while closing: nothing to do
                    log.debug("aws.close_failed", error=repr(exc))
        if scope.cancelled_caught:
            log.warning("aws.close_timed_out", timeout=self._close_timeout)


def _shared_handlers(session: Any) -> bool:
    """Whether ``session`` emits with the process's shared event handlers only."""
    events = getattr(getattr(session, "_session", None), "_events", None)
    emitter = getattr(events, "_emitter", None)
    return isinstance(emitter, CopyOnWriteEmitter) and emitter.shared


def _config_key(config: Config) -> tuple[Any, ...]:
    # botocore's Config has no equality: its user-given options identify it.
    options = getattr(config, "_user_provided_options", {})
    return tuple(sorted((k, repr(v)) for k, v in options.items()))
