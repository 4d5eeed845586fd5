"""The one place that makes AWS clients: sessions, configuration, Regions and bounded clean-up.

Every caller of AWS in the library (the HealthOmics gateway, the DynamoDB journal, SQS, S3 source
checks, the event rule) asks a :class:`ClientPool` for its clients instead of building its own
``aioboto3.Session``; a test fails if another module does.

* **One session per profile**, all of them sharing one botocore data loader, so service models and
  endpoint data are parsed once per process, not once per account (a session's own loader keeps
  its own copy of every model it reads: about 10 MiB an account for omics and S3).
* **One client per (service, profile, Region, endpoint, configuration)**, made on first use and
  kept until the pool closes: clients are made lazily, so a store whose sources are not checked
  never gets an S3 client.
* **Configuration is the SDK's own**: endpoints come from ``endpoint_url`` when given, else from
  botocore's configuration chain (``AWS_ENDPOINT_URL_<SERVICE>`` as botocore spells the service
  id, ``AWS_ENDPOINT_URL``, the profile's ``endpoint_url``), which botocore applies itself; the
  Region from ``region``, else ``AWS_REGION`` (what the AWS CLI and other SDKs read), else
  botocore's chain (``AWS_DEFAULT_REGION``, the profile).
* **Retries belong to tenacity**: every client has botocore's retries off (one attempt).
* **Clean-up is bounded**: closing waits at most ``close_timeout`` seconds, shielded, so a
  shutdown never hangs on a stuck connection.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

import anyio
from botocore.config import Config

CLOSE_TIMEOUT = 10.0
"""Seconds a pool's clean-up may take before it gives up on its connections."""


def no_retries(**options: Any) -> Config:
    """A botocore ``Config`` with botocore's own retries off (tenacity owns retries), and
    ``options`` (timeouts, pool size, host prefix) as given."""
    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, **options)


def configured_region(region: str | None = None) -> str | None:
    """``region`` if given, else ``AWS_REGION``; ``None`` leaves it to botocore's chain."""
    return region or os.environ.get("AWS_REGION") or None


class ClientPool:
    """AWS clients made on first use and closed together (an async context manager).

    Args:
        close_timeout: Seconds :meth:`aclose` may take (shielded) before it gives up.
    """

    def __init__(self, *, close_timeout: float = CLOSE_TIMEOUT) -> None:
        self._close_timeout = close_timeout
        self._stack = AsyncExitStack()
        self._sessions: dict[str | None, Any] = {}
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = anyio.Lock()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def session(self, profile: str | None = None) -> Any:
        """The ``aioboto3.Session`` of ``profile`` (``None``: the default credentials chain),
        made once; its credentials are resolved and refreshed by the session itself.

        Raises:
            botocore.exceptions.ProfileNotFound: no such profile.
        """
        session = self._sessions.get(profile)
        if session is None:
            import aioboto3  # imported lazily: slow to import, and not needed by readers

            session = aioboto3.Session(profile_name=profile)
            self._sessions[profile] = session
        return session

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

        Raises:
            botocore.exceptions.ProfileNotFound: no such profile.
        """
        region = configured_region(region)
        config = config or no_retries()
        key = (service, profile, region, endpoint_url, _config_key(config))
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = await self._stack.enter_async_context(
                    self.session(profile).client(
                        service, region_name=region, endpoint_url=endpoint_url, config=config
                    )
                )
                self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every client (bounded by ``close_timeout``, shielded); the pool may be used
        again afterwards, making new clients."""
        stack, self._stack = self._stack, AsyncExitStack()
        self._clients.clear()
        with anyio.move_on_after(self._close_timeout, shield=True):
            await stack.aclose()


def _config_key(config: Config) -> tuple[Any, ...]:
    # botocore's Config has no equality: its user-given options identify it.
    options = getattr(config, "_user_provided_options", {})
    return tuple(sorted((k, repr(v)) for k, v in options.items()))
