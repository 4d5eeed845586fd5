"""Pre-flight of sources: a HEAD of each S3 object before its row costs a slot in a job.

A row whose object does not exist (no such key or bucket) or is over the service's size limit
would fail inside its job, after minutes of the store's time; a HEAD finds out in milliseconds, and
the row fails at once with S3's answer as the reason. The sizes found also feed the duration model
(duration ≈ a + b·bytes), so packs of bacteria and packs of wheat are predicted apart.

The caller often may not read the bucket (only the service's role can): a 403, missing
credentials, or S3 out of reach never fails a row. The first such answer turns the check off for
the rest of the run, with one warning, and rows are imported as without it.

Sources are checked where the service reads them: in AWS's S3 when the store is AWS HealthOmics
itself. A store behind another HealthOmics endpoint (an emulator, a test double) reads an S3 that
only ``PreflightPolicy.s3_endpoint_url`` can name; without it, its sources are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import anyio
import botocore.exceptions

from async_refimport._log import get_logger
from async_refimport._models import StoreRef
from async_refimport.aws.clients import ClientPool, endpoint_configured, no_retries

log = get_logger(__name__)

#: The service's limit on one source file (its documentation says 15 GB).
MAX_SOURCE_BYTES = 15 * 1024**3

_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9\-.]{1,61}[a-z0-9])/(.{1,1024})")
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


@dataclass(frozen=True, slots=True)
class PreflightPolicy:
    """Whether and how sources are checked before they are sent.

    Attributes:
        enabled: HEAD every source before its row is packed into a job (the CLI's
            ``--check-sources``, on by default; a dry run always checks).
        concurrency: HEAD requests in flight at once.
        timeout: Seconds one HEAD may take; S3 slower than that counts as out of reach.
        max_bytes: Sources larger than this fail before they are sent (the service's limit).
        s3_endpoint_url: The S3 a store behind a custom HealthOmics endpoint (an emulator)
            reads its sources from; without it such stores' sources are not checked.
    """

    enabled: bool = True
    concurrency: int = 16
    timeout: float = 5.0
    max_bytes: int = MAX_SOURCE_BYTES
    s3_endpoint_url: str | None = None


class SourceMissing(Exception):
    """The object does not exist (or the URI cannot name one): the row fails with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceUncheckable(Exception):
    """The caller cannot check the object (403, no credentials, S3 out of reach)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceChecker(Protocol):
    """Where the sizes come from (S3 HEAD by default; tests may pass a fake)."""

    async def size(self, uri: str, profile: str | None = None) -> int:
        """The object's size in bytes.

        Args:
            uri: The ``s3://`` URI.
            profile: The AWS profile to ask with.

        Returns:
            The size.

        Raises:
            SourceMissing: it does not exist.
            SourceUncheckable: the caller cannot tell.
        """
        ...

    async def aclose(self) -> None:
        """Close what the checker holds (bounded)."""
        ...


@dataclass(frozen=True, slots=True)
class Checked:
    """What the pre-flight found for one source: its size, or why its row must fail."""

    size: int | None = None
    failure: str | None = None


class Preflight:
    """Checks sources once each (results are kept), ``concurrency`` at a time.

    Args:
        checker: Where the sizes come from.
        policy: Concurrency, time limit, size limit.
    """

    def __init__(self, checker: SourceChecker, policy: PreflightPolicy = PreflightPolicy()) -> None:
        self._checker = checker
        self._policy = policy
        self._limiter = anyio.CapacityLimiter(max(1, policy.concurrency))
        self._results: dict[str, Checked] = {}
        self._pending: dict[str, anyio.Event] = {}
        #: Why checking was turned off (None while it works).
        self.off_reason: str | None = None
        self.heads = 0

    async def aclose(self) -> None:
        """Close the checker's connections."""
        await self._checker.aclose()

    def applies(self, store: StoreRef) -> bool:
        """Whether ``store``'s sources can be checked.

        Args:
            store: The store the sources go to.

        Returns:
            True when it is AWS HealthOmics itself (its S3 is AWS's), or the policy names the S3
            its custom endpoint reads.
        """
        if self._policy.s3_endpoint_url is not None:
            return True
        return not endpoint_configured("omics", store.endpoint_url)

    def size(self, uri: str) -> int | None:
        """The size found for ``uri``.

        Args:
            uri: The source's URI.

        Returns:
            Its size, or ``None`` if it was not checked (or could not be).
        """
        checked = self._results.get(uri)
        return checked.size if checked is not None else None

    async def check(self, sources: Iterable[tuple[str, str | None]]) -> dict[str, Checked]:
        """Check ``(uri, profile)`` pairs (each URI once per run), ``concurrency`` at a time.

        URIs that could not be checked are left out: their rows go on as without a check.

        Args:
            sources: The sources' URIs, each with the profile to ask with.

        Returns:
            What was found, by URI.
        """
        wanted = dict(sources)
        async with anyio.create_task_group() as tg:
            for uri, profile in wanted.items():
                if uri not in self._results:
                    tg.start_soon(self._check_one, uri, profile)
        return {uri: self._results[uri] for uri in wanted if uri in self._results}

    async def _check_one(self, uri: str, profile: str | None) -> None:
        pending = self._pending.get(uri)
        if pending is not None:
            await pending.wait()  # another check of the same object is under way
            return
        done = self._pending[uri] = anyio.Event()
        try:
            async with self._limiter:
                if self.off_reason is not None or uri in self._results:
                    return
                self.heads += 1
                with anyio.move_on_after(self._policy.timeout) as scope:
                    size = await self._checker.size(uri, profile)
                if scope.cancelled_caught:
                    raise SourceUncheckable(f"S3 did not answer within {self._policy.timeout} s")
            if size > self._policy.max_bytes:
                self._results[uri] = Checked(
                    size,
                    f"{uri} is {size} bytes, over the service's limit of "
                    f"{self._policy.max_bytes} bytes",
                )
            else:
                self._results[uri] = Checked(size)
        except SourceMissing as exc:
            self._results[uri] = Checked(failure=exc.reason)
        except SourceUncheckable as exc:
            if self.off_reason is None:
                self.off_reason = exc.reason
                log.warning("preflight.off", reason=exc.reason, source_file=uri)
        finally:
            done.set()
            self._pending.pop(uri, None)


class S3SourceChecker:
    """:class:`SourceChecker` over S3 HEAD requests, with the caller's credentials.

    The endpoint is S3's (or ``AWS_ENDPOINT_URL_S3``, for moto or LocalStack); botocore follows a
    bucket to its own Region. A profile's S3 client is made at its first check only.

    Args:
        region: The Region of the clients (default: the AWS configuration).
        timeout: Seconds to connect, and to wait for an answer.
        endpoint_url: The S3 endpoint (default: botocore's configuration chain).
        pool: The clients' pool, shared with other AWS callers (default: a pool of its own,
            closed with the checker; a given pool is its owner's to close).
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        timeout: float = 5.0,
        endpoint_url: str | None = None,
        pool: ClientPool | None = None,
    ) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        self._own_pool = pool is None
        self._pool = pool or ClientPool()
        self._config = no_retries(
            connect_timeout=timeout,
            read_timeout=timeout,
            # Local S3 endpoints (moto, LocalStack) serve buckets by path.
            s3={"addressing_style": "path"},
        )

    async def aclose(self) -> None:
        """Close the connections, bounded; a pool given by the caller is left open."""
        if self._own_pool:
            await self._pool.aclose()

    async def _client(self, profile: str | None) -> Any:
        return await self._pool.client(
            "s3",
            region=self._region,
            profile=profile,
            endpoint_url=self._endpoint_url,
            config=self._config,
        )

    async def size(self, uri: str, profile: str | None = None) -> int:
        """The object's size in bytes (one HEAD).

        Args:
            uri: The ``s3://`` URI.
            profile: The AWS profile to ask with.

        Returns:
            The size.

        Raises:
            SourceMissing: it does not exist (404), or the URI names no object.
            SourceUncheckable: S3 refused to tell (403 ...) or could not be reached.
        """
        match = _S3_URI.fullmatch(uri)
        if match is None:
            raise SourceMissing(f"{uri} is not an s3://bucket/key URI")
        bucket, key = match.groups()
        try:
            client = await self._client(profile)
            response = await client.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _MISSING_CODES or status == 404:
                # HEAD has no body: a missing bucket and a missing key both answer 404.
                raise SourceMissing(f"{uri}: not found in S3 (404)") from None
            raise SourceUncheckable(f"{uri}: S3 answered {status} {code}".strip()) from None
        except (
            TimeoutError,
            botocore.exceptions.BotoCoreError,
            aiohttp.ClientError,
            OSError,
        ) as exc:
            raise SourceUncheckable(f"S3 cannot be reached: {exc}") from None
        return int(response.get("ContentLength", 0))
