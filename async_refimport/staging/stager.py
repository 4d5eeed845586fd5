"""The Stager: stage any source into a staging area of a store's Region, once.

See the package's docstring (:mod:`async_refimport.staging`) for what it guarantees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType

from async_refimport.aws.clients import ClientPool
from async_refimport.staging.areas import StagingArea
from async_refimport.staging.ledger import StagingLedger
from async_refimport.staging.limits import StagingLimits

__all__ = ["StagedObject", "Stager"]


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
        raise NotImplementedError

    async def __aenter__(self) -> Stager:
        """Open the ledger and the HTTP session.

        Returns:
            The Stager.
        """
        raise NotImplementedError

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
        raise NotImplementedError

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
        raise NotImplementedError

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
        raise NotImplementedError

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
        raise NotImplementedError

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
        raise NotImplementedError

    async def abort_orphans(
        self, area: StagingArea, *, profile: str | None = None, endpoint_url: str | None = None
    ) -> int:
        """Abort the multipart uploads under ``area``'s prefix that nothing will complete.

        Those are uploads S3 lists that the ledger does not hold as UPLOADING or COMPLETING
        (a crash between CreateMultipartUpload and its record; another ledger's) and uploads the
        ledger holds that a newer upload of the same key superseded. Call it when no stage()
        of this area is running (at the end of a run).

        Args:
            area: The staging area.
            profile: The AWS profile.
            endpoint_url: The S3 endpoint.

        Returns:
            How many uploads were aborted.
        """
        raise NotImplementedError
