"""The Stager: stage any source into a staging area of a store's Region, once.

See the package's docstring (:mod:`async_refimport.staging`) for what it guarantees, and
:mod:`async_refimport.staging.keys` for the keys.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import botocore.exceptions

from async_refimport._log import get_logger
from async_refimport._models import without_userinfo
from async_refimport.aws.clients import ClientPool, no_retries
from async_refimport.staging.areas import (
    SourceKind,
    StagingArea,
    basename_of,
    parse_s3_uri,
    source_kind,
)
from async_refimport.staging.errors import StagingCode, StagingError
from async_refimport.staging.keys import file_key, http_key, is_md5, md5_key, plain_md5_etag, s3_key
from async_refimport.staging.ledger import ACTIVE, LedgerUpload, StagingLedger, UploadState
from async_refimport.staging.limits import StagingLimits
from async_refimport.staging.multipart import Destination, abort_upload
from async_refimport.staging.regions import BucketRegions, s3_error
from async_refimport.staging.s3copy import copy_s3
from async_refimport.staging.sources import (
    FileReader,
    HttpReader,
    Reader,
    file_sha256,
    http_session,
)
from async_refimport.staging.upload import StreamedUpload

__all__ = ["StagedObject", "Stager"]

log = get_logger(__name__)

_S3_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
_CLOCK_SKEW = 300.0
_ENCRYPTED = frozenset({"aws:kms", "aws:kms:dsse"})


@dataclass(frozen=True, slots=True)
class StagedObject:
    """An object complete in a staging area, ready to import.

    Attributes:
        uri: ``s3://bucket/key`` of the staged object (what the row imports from).
        bucket: The staging bucket.
        key: The object's key (content-addressed: :mod:`async_refimport.staging.keys`).
        size: Its bytes.
        sha256: S3's SHA-256 checksum of the object, as S3 reports it (base64; a multipart
            object's is the checksum of its parts' checksums, suffixed ``-N``).
        reused: True when the object was there already (found by a HEAD; nothing copied).
        md5: The source's MD5 (hex) when it was checked against the manifest's ``md5``.
    """

    uri: str
    bucket: str
    key: str
    size: int
    sha256: str | None
    reused: bool
    md5: str | None = None


class Stager:
    """Stages sources into staging areas (an async context manager; close with :meth:`aclose`).

    Every S3 client comes from ``pool`` (a :class:`ClientPool`; one of its own when not given,
    closed with the Stager). HTTP(S) sources are read with one aiohttp session of its own
    (bytes passed through as sent: no decompression).

    Args:
        ledger: The ledger (a :class:`StagingLedger`, or the path of its SQLite file: the
            journal's own file, or one beside it). One ledger per staging prefix: uploads under
            a prefix that the ledger does not know are aborted as orphans.
        pool: The client pool (default: one of its own).
        limits: Part sizes, parallelism, memory bounds, thresholds, retries.
    """

    def __init__(
        self,
        ledger: StagingLedger | str | os.PathLike[str],
        *,
        pool: ClientPool | None = None,
        limits: StagingLimits | None = None,
    ) -> None:
        if isinstance(ledger, StagingLedger):
            self._ledger, self._own_ledger = ledger, False
        else:
            self._ledger, self._own_ledger = StagingLedger(ledger), True
        self._pool, self._own_pool = (pool, False) if pool is not None else (ClientPool(), True)
        self.limits = limits or StagingLimits()
        self._regions = BucketRegions(self._pool)
        self._memory = anyio.Semaphore(self.limits.parts_in_memory)
        self._http: aiohttp.ClientSession | None = None
        self._locks: dict[tuple[str, str], anyio.Lock] = {}
        # One configuration object for every staging client (the pool keys clients by it):
        # connections for every part in flight, and reads long enough for a 5 GiB CopyObject.
        self._config = no_retries(
            max_pool_connections=self.limits.parts_in_memory + self.limits.copy_parts_in_flight,
            read_timeout=max(300.0, self.limits.read_timeout),
        )

    async def __aenter__(self) -> Stager:
        """Open the ledger and the HTTP session.

        Returns:
            The Stager.
        """
        await self._ledger.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close everything (:meth:`aclose`)."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session, the ledger (if opened here) and the pool (if made here)."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        if self._own_ledger:
            await self._ledger.aclose()
        if self._own_pool:
            await self._pool.aclose()

    async def bucket_region(
        self, bucket: str, *, profile: str | None = None, endpoint_url: str | None = None
    ) -> str:
        """The Region of ``bucket`` (HeadBucket's ``x-amz-bucket-region``, else
        GetBucketLocation), cached per bucket and endpoint.

        Args:
            bucket: The bucket.
            profile: The AWS profile asking.
            endpoint_url: The S3 endpoint (an emulator's), or ``None`` for AWS's.

        Returns:
            The Region name.

        Raises:
            StagingError: NOT_FOUND (no such bucket), ACCESS_DENIED (no Region in the answer
                and GetBucketLocation refused), S3_ERROR otherwise.
        """
        return await self._regions.region(bucket, profile=profile, endpoint_url=endpoint_url)

    async def needs_staging(
        self,
        source: str,
        region: str,
        *,
        profile: str | None = None,
        endpoint_url: str | None = None,
    ) -> bool:
        """Whether a store in ``region`` must have ``source`` staged before importing it.

        Args:
            source: The manifest's source.
            region: The store's Region.
            profile: The AWS profile (for an s3:// source's bucket Region).
            endpoint_url: The S3 endpoint.

        Returns:
            False for an ``s3://`` object in a bucket of ``region``; True for any other source.

        Raises:
            ValueError: a source of no kind staging knows (:func:`source_kind`).
            StagingError: the s3:// source's bucket Region cannot be found (:meth:`bucket_region`).
        """
        if source_kind(source) is not SourceKind.S3:
            return True
        try:
            bucket, _ = parse_s3_uri(source)
        except ValueError:
            return True  # not an object URI: stage() says what is wrong with it
        found = await self.bucket_region(bucket, profile=profile, endpoint_url=endpoint_url)
        return found != region

    async def check_area(
        self, area: StagingArea, *, profile: str | None = None, endpoint_url: str | None = None
    ) -> None:
        """Check a staging area before staging into it: its bucket exists, in its Region.

        Args:
            area: The staging area.
            profile: The AWS profile.
            endpoint_url: The S3 endpoint.

        Raises:
            StagingError: WRONG_REGION (the bucket is in another Region: the message names it),
                NOT_FOUND, ACCESS_DENIED, S3_ERROR.
        """
        found = await self.bucket_region(area.bucket, profile=profile, endpoint_url=endpoint_url)
        if found != area.region:
            raise StagingError(
                StagingCode.WRONG_REGION,
                area.uri(),
                f"bucket {area.bucket} is in {found}, not in {area.region} (staging {area})",
                retryable=False,
            )

    async def stage(
        self,
        source: str,
        area: StagingArea,
        *,
        md5: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
    ) -> StagedObject:
        """Stage ``source`` into ``area``: reuse what is there, resume what was begun, or copy.

        Returns only once the object exists complete, with its SHA-256 checksum. A source that
        fails leaves nothing importable (an upload begun for it is aborted). Safe to call again
        after a crash at any moment: the ledger resumes the upload; a completed object is found
        by a HEAD and never completed twice. Calls for the same key are serialized.

        Args:
            source: ``s3://bucket/key`` (any Region), ``https://``/``http://`` URL, ``file://``
                URL or a local path.
            area: Where to stage it (its bucket must be in ``area.region``).
            md5: The source's MD5 (32 hex digits) as its publisher gives it: checked while
                streaming; a mismatch fails before the object is completed (MD5_MISMATCH).
                For an s3:// source it is checked against the source's ETag when that is a
                plain MD5 (a single-part object), else it names the key only.
            profile: The AWS profile for S3 (the source's bucket and the staging bucket).
            endpoint_url: The S3 endpoint (an emulator's), or ``None`` for AWS's.

        Returns:
            The staged object.

        Raises:
            StagingError: why it could not be staged (its ``code``), after ``limits.attempts``
                attempts for retryable failures.
            ValueError: a source of no kind staging knows, or an ``md5`` that is not 32 hex
                digits.
        """
        kind = source_kind(source)
        if md5 is not None:
            md5 = md5.strip().lower()
            if not is_md5(md5):
                raise ValueError(f"md5 {md5!r}: expected 32 hex digits")
        job = _Job(kind, source, area, md5, profile, endpoint_url)
        delay = self.limits.retry_delay
        for attempt in range(1, self.limits.attempts + 1):
            try:
                return await self._attempt(job)
            except StagingError as exc:
                if attempt == self.limits.attempts or not (
                    exc.retryable or exc.code is StagingCode.TRUNCATED
                ):
                    await self._give_up(job, exc)
                    raise
                log.warning(
                    "staging.retrying", code=exc.code.value, attempt=attempt, error=str(exc)
                )
            await anyio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def abort_orphans(
        self, area: StagingArea, *, profile: str | None = None, endpoint_url: str | None = None
    ) -> int:
        """Abort the multipart uploads under ``area``'s prefix that nothing will complete.

        Only uploads that are this ledger's, or abandoned: an upload the ledger knows but would
        not resume (superseded by a newer one of its key or source, or given up), an upload of a
        key whose intent the ledger holds (a crash between CreateMultipartUpload and its record),
        and an upload the ledger does not know that S3 says was initiated longer ago than
        ``limits.orphan_age`` (default a day). A younger unknown upload may be another run's
        in flight (a shared staging prefix) and is left alone. Call it when no stage() of this
        area is running (at the end of a run).

        Args:
            area: The staging area.
            profile: The AWS profile.
            endpoint_url: The S3 endpoint.

        Returns:
            How many uploads were aborted.
        """
        client = await self._client(area.region, profile, endpoint_url)
        every = await self._ledger.uploads(area.bucket, prefix=area.prefix)
        active = [u for u in every if u.state in ACTIVE]
        keep = _resumable(every) | {u.upload_id for u in active if self._locked(area.bucket, u.key)}
        known = {u.upload_id for u in every}
        intents = {
            key: at
            for key, at in (await self._ledger.intents(area.bucket, prefix=area.prefix)).items()
            if not self._locked(area.bucket, key)
        }
        cutoff = time.time() - self.limits.orphan_age
        aborted = 0
        for key, upload_id, initiated in await _listed_uploads(client, area):
            if upload_id in keep:
                continue
            # S3's clock against ours: an upload of an intent's key begun well before the
            # intent is not the one it announced.
            ours = upload_id in known or initiated >= intents.get(key, math.inf) - _CLOCK_SKEW
            if ours or initiated < cutoff:
                aborted += await abort_upload(client, self._ledger, area.bucket, key, upload_id)
        for key in intents:
            await self._ledger.forget_intent(area.bucket, key)
        for upload in active:  # superseded ones S3 no longer lists: the ledger catches up
            if upload.upload_id not in keep:
                await self._ledger.mark(upload.upload_id, UploadState.ABORTED)
        if aborted:
            log.info("staging.orphans_aborted", area=str(area), aborted=aborted)
        return aborted

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, job: _Job) -> StagedObject:
        client = await self._client(job.area.region, job.profile, job.endpoint_url)
        if job.kind is SourceKind.S3:
            return await self._stage_s3(job, client)
        return await self._stage_stream(job, client)

    async def _client(self, region: str, profile: str | None, endpoint_url: str | None) -> Any:
        try:
            return await self._pool.client(
                "s3", region=region, profile=profile, endpoint_url=endpoint_url, config=self._config
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise StagingError(StagingCode.ACCESS_DENIED, f"s3 ({region})", str(exc)) from exc

    def _locked(self, bucket: str, key: str) -> bool:
        lock = self._locks.get((bucket, key))
        return lock is not None and lock.locked()

    @asynccontextmanager
    async def _key_lock(self, bucket: str, key: str) -> AsyncIterator[None]:
        """One stage() at a time per destination key (two stores of a Region share objects)."""
        lock = self._locks.setdefault((bucket, key), anyio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop((bucket, key), None)

    async def _give_up(self, job: _Job, error: StagingError) -> None:
        """A source failed for good: abort its upload, so nothing half-staged is left."""
        dest = job.dest
        if dest is None:
            return
        with anyio.CancelScope(shield=True):
            async with self._key_lock(dest.bucket, dest.key):
                await self._abort_key(dest)
        log.info("staging.failed", code=error.code.value, error=str(error))

    async def _abort_key(self, dest: Destination) -> None:
        for upload in await self._ledger.uploads(dest.bucket, key=dest.key, states=ACTIVE):
            try:
                await abort_upload(
                    dest.client, self._ledger, dest.bucket, dest.key, upload.upload_id
                )
            except StagingError as exc:  # abort_orphans() catches it later
                log.warning("staging.abort_failed", key=dest.key, error=str(exc))

    async def _stage_s3(self, job: _Job, client: Any) -> StagedObject:
        try:
            bucket, key = parse_s3_uri(job.source)
        except ValueError as exc:
            raise StagingError(
                StagingCode.UNSUPPORTED, job.source, str(exc), retryable=False
            ) from exc
        try:
            region = await self.bucket_region(
                bucket, profile=job.profile, endpoint_url=job.endpoint_url
            )
        except StagingError as exc:  # the same failure, named after the source
            raise StagingError(exc.code, job.source, exc.detail, retryable=exc.retryable) from exc
        source_client = await self._client(region, job.profile, job.endpoint_url)
        try:
            head = await source_client.head_object(Bucket=bucket, Key=key)
        except _S3_ERRORS as exc:
            raise s3_error(exc, job.source, f"HEAD {job.source}") from exc
        size, etag = int(head["ContentLength"]), str(head["ETag"])
        if size > self.limits.max_bytes:
            raise StagingError(
                StagingCode.TOO_LARGE,
                job.source,
                f"{size} bytes, over the limit of {self.limits.max_bytes}",
            )
        encrypted = head.get("ServerSideEncryption") in _ENCRYPTED or "SSECustomerAlgorithm" in head
        plain = plain_md5_etag(etag, encrypted)
        if job.md5 is not None and plain is None:
            # Its ETag is no MD5, and checking would read the whole object here: say so.
            log.warning(
                "staging.md5_not_checked",
                source=without_userinfo(job.source),
                reason="SSE-KMS/SSE-C encrypted" if encrypted else "uploaded in parts",
            )
        if job.md5 is not None and plain is not None and plain != job.md5:
            raise StagingError(
                StagingCode.MD5_MISMATCH,
                job.source,
                f"md5 {plain} (its ETag) is not the manifest's {job.md5}",
            )
        name, prefix = basename_of(job.source), job.area.prefix
        dest_key = md5_key(prefix, plain, name) if plain else s3_key(prefix, etag, size, name)
        job.dest = dest = Destination(
            client, job.area.bucket, dest_key, job.source, _metadata(job.source, plain)
        )
        async with self._key_lock(dest.bucket, dest.key):
            found = await self._find(dest, size, plain)
            if found is not None:
                return found
            await copy_s3(
                dest, self._ledger, self.limits, bucket=bucket, key=key, etag=etag, size=size
            )
            return await self._staged(dest, size, plain)

    async def _stage_stream(self, job: _Job, client: Any) -> StagedObject:
        name, prefix = basename_of(job.source), job.area.prefix
        first: list[Reader] = []
        size: int | None = None
        sha256_hex: str | None = None
        try:
            if job.md5 is not None:
                key = md5_key(prefix, job.md5, name)
            elif job.kind is SourceKind.FILE:
                sha256_hex, size = await file_sha256(job.source, self.limits.max_bytes)
                key = file_key(prefix, sha256_hex, name)
            else:
                first.append(await HttpReader.open(self._session(), job.source, self.limits))
                info = first[0].info
                size = info.size
                key = http_key(
                    prefix,
                    job.source,
                    name,
                    etag=info.etag,
                    last_modified=info.last_modified,
                    length=size,
                )
            job.dest = dest = Destination(
                client, job.area.bucket, key, job.source, _metadata(job.source, job.md5)
            )
            async with self._key_lock(dest.bucket, dest.key):
                found = await self._find(dest, size, job.md5)
                if found is not None:
                    return found
                await StreamedUpload(
                    dest,
                    self._ledger,
                    self.limits,
                    self._memory,
                    self._opener(job, first),
                    job.md5,
                    sha256_hex,
                ).run()
                return await self._staged(dest, size, job.md5)
        finally:
            for reader in first:  # opened for its headers, never handed over
                await reader.aclose()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = http_session(self.limits)
        return self._http

    def _opener(self, job: _Job, first: list[Reader]) -> Callable[[int], Awaitable[Reader]]:
        """Opens the source at an offset; the HTTP GET made for the key is handed over once."""
        validator: list[str | None] = []

        async def open_reader(offset: int) -> Reader:
            if job.kind is SourceKind.FILE:
                return await FileReader.open(job.source, self.limits, offset=offset)
            if first:
                reader = first.pop()
                validator.append(_validator(reader))
                if offset == 0:
                    return reader
                await reader.aclose()
            check = validator[0] if validator else None
            # A Range without a validator could splice two versions of the file: read it all.
            return await HttpReader.open(
                self._session(),
                job.source,
                self.limits,
                offset=offset if check else 0,
                if_range=check,
            )

        return open_reader

    async def _find(
        self, dest: Destination, size: int | None, md5: str | None
    ) -> StagedObject | None:
        """The object already at ``dest`` when it is a complete staging of this source."""
        try:
            head = await dest.client.head_object(
                Bucket=dest.bucket, Key=dest.key, ChecksumMode="ENABLED"
            )
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise s3_error(exc, dest.source, f"HEAD {dest.uri}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise s3_error(exc, dest.source, f"HEAD {dest.uri}") from exc
        found = int(head["ContentLength"])
        checksum = head.get("ChecksumSHA256")
        if (size is not None and found != size) or not checksum:
            log.warning("staging.key_mismatch", key=dest.key, size=found, expected=size)
            return None
        await self._settle_key(dest)
        return StagedObject(dest.uri, dest.bucket, dest.key, found, checksum, True, md5)

    async def _staged(self, dest: Destination, size: int | None, md5: str | None) -> StagedObject:
        """The object just staged, as a HEAD sees it (complete, with its checksum)."""
        head = await self._find(dest, size, md5)
        if head is None:
            raise StagingError(
                StagingCode.S3_ERROR, dest.source, f"{dest.uri} is not complete after staging"
            )
        log.info("staging.staged", key=dest.key, size=head.size)
        return StagedObject(head.uri, head.bucket, head.key, head.size, head.sha256, False, md5)

    async def _settle_key(self, dest: Destination) -> None:
        """The key's object is complete: no upload of it may be completed again (abort them)."""
        for upload in await self._ledger.uploads(dest.bucket, key=dest.key, states=ACTIVE):
            if upload.state is UploadState.COMPLETING:
                await self._ledger.mark(upload.upload_id, UploadState.COMPLETED)
            else:
                await abort_upload(
                    dest.client, self._ledger, dest.bucket, dest.key, upload.upload_id
                )
        area = StagingArea("", dest.bucket, dest.key)
        for key, upload_id, _ in await _listed_uploads(dest.client, area):
            if key == dest.key:  # begun by a run that died before recording it
                await abort_upload(dest.client, self._ledger, dest.bucket, key, upload_id)


@dataclass(slots=True)
class _Job:
    """One stage() call: what it stages, and where once its key is known."""

    kind: SourceKind
    source: str
    area: StagingArea
    md5: str | None
    profile: str | None
    endpoint_url: str | None
    dest: Destination | None = None


def _resumable(uploads: list[LedgerUpload]) -> set[str]:
    """The active uploads a later stage() would resume (``uploads`` oldest first).

    That is the newest upload of its key, when no newer upload of the same source exists: a
    source whose bytes changed (a new ETag) is staged under another key, and an upload of its
    old key would never be completed.
    """
    newest_of_key = {u.key: u.upload_id for u in uploads if u.state in ACTIVE}
    newest_of_source = {u.source: u.upload_id for u in uploads}
    return {
        u.upload_id
        for u in uploads
        if u.state in ACTIVE
        and newest_of_key[u.key] == u.upload_id
        and newest_of_source[u.source] == u.upload_id
    }


def _metadata(source: str, md5: str | None) -> dict[str, str]:
    # S3 user metadata is ASCII and at most 2 KB in all.
    found = {"refimport-source": quote(without_userinfo(source), safe=":/?&=%@+,;~")[:1024]}
    if md5:
        found["refimport-md5"] = md5
    return found


def _validator(reader: Reader) -> str | None:
    """What an HTTP Range resume must match: a strong ETag, else Last-Modified."""
    etag = reader.info.etag
    if etag and not etag.startswith("W/"):
        return etag
    return reader.info.last_modified


def _epoch(initiated: object) -> float:
    """S3's ``Initiated`` as seconds since the epoch (now when missing: never old enough)."""
    if isinstance(initiated, datetime):
        return initiated.timestamp()
    return time.time()


async def _listed_uploads(client: Any, area: StagingArea) -> list[tuple[str, str, float]]:
    """The multipart uploads S3 lists under the area's prefix: (key, upload id, initiated)."""
    found: list[tuple[str, str, float]] = []
    request: dict[str, Any] = {"Bucket": area.bucket, "Prefix": area.prefix}
    while True:
        try:
            page = await client.list_multipart_uploads(**request)
        except _S3_ERRORS as exc:
            raise s3_error(exc, area.uri(), "ListMultipartUploads") from exc
        found += [
            (u["Key"], u["UploadId"], _epoch(u.get("Initiated"))) for u in page.get("Uploads", [])
        ]
        if not page.get("IsTruncated"):
            return found
        request["KeyMarker"] = page.get("NextKeyMarker")
        request["UploadIdMarker"] = page.get("NextUploadIdMarker")
