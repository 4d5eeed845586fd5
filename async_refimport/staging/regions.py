"""Which Region a bucket is in: asked once per bucket and endpoint, then remembered."""

from __future__ import annotations

from typing import Any

import anyio
import botocore.exceptions

from async_refimport.aws.clients import ClientPool
from async_refimport.staging.errors import StagingCode, StagingError

__all__ = ["BucketRegions", "s3_error"]

# HeadBucket can be asked of any Region's endpoint: S3 answers (even a 301 or a 403) with the
# bucket's Region in this header.
_REGION_HEADER = "x-amz-bucket-region"
_ASKING_REGION = "us-east-1"
_MISSING = frozenset({"404", "NoSuchBucket", "NoSuchKey", "NotFound", "NoSuchUpload"})
_DENIED = frozenset({"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId"})


def s3_error(exc: Exception, source: str, what: str) -> StagingError:
    """A :class:`StagingError` for an S3 call that failed.

    Args:
        exc: What botocore raised.
        source: The source being staged (named in the message).
        what: What was being done (``HEAD s3://b/k``).

    Returns:
        NOT_FOUND for 404s, ACCESS_DENIED for 403s and missing credentials, S3_ERROR otherwise.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or code
        if code in _MISSING:
            return StagingError(StagingCode.NOT_FOUND, source, f"{what}: not found ({message})")
        if code in _DENIED:
            return StagingError(
                StagingCode.ACCESS_DENIED, source, f"{what}: access denied ({message})"
            )
        return StagingError(StagingCode.S3_ERROR, source, f"{what}: {code} {message}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return StagingError(StagingCode.ACCESS_DENIED, source, f"{what}: no AWS credentials")
    return StagingError(StagingCode.S3_ERROR, source, f"{what}: {type(exc).__name__}: {exc}")


class BucketRegions:
    """Bucket Regions, looked up with HeadBucket (else GetBucketLocation) and cached.

    Args:
        pool: Where the S3 clients come from.
    """

    def __init__(self, pool: ClientPool) -> None:
        self._pool = pool
        self._known: dict[tuple[str, str | None], str] = {}
        self._locks: dict[tuple[str, str | None], anyio.Lock] = {}

    def remember(self, bucket: str, region: str, endpoint_url: str | None = None) -> None:
        """Record a bucket's Region known otherwise (a test, a bucket just made).

        Args:
            bucket: The bucket.
            region: Its Region.
            endpoint_url: The S3 endpoint it is reached at.
        """
        self._known[(bucket, endpoint_url)] = region

    async def region(
        self, bucket: str, *, profile: str | None = None, endpoint_url: str | None = None
    ) -> str:
        """The Region of ``bucket``.

        Args:
            bucket: The bucket.
            profile: The AWS profile asking.
            endpoint_url: The S3 endpoint, ``None`` for AWS's.

        Returns:
            The Region name.

        Raises:
            StagingError: NOT_FOUND, ACCESS_DENIED or S3_ERROR.
        """
        cache_key = (bucket, endpoint_url)
        found = self._known.get(cache_key)
        if found is not None:
            return found
        async with self._locks.setdefault(cache_key, anyio.Lock()):
            found = self._known.get(cache_key)
            if found is None:
                found = await self._ask(bucket, profile, endpoint_url)
                self._known[cache_key] = found
        return found

    async def _ask(self, bucket: str, profile: str | None, endpoint_url: str | None) -> str:
        client: Any = await self._pool.client(
            "s3", region=_ASKING_REGION, profile=profile, endpoint_url=endpoint_url
        )
        uri = f"s3://{bucket}"
        try:
            answer = await client.head_bucket(Bucket=bucket)
            headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except botocore.exceptions.ClientError as exc:
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if not headers.get(_REGION_HEADER):
                raise s3_error(exc, uri, f"HeadBucket {bucket}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise s3_error(exc, uri, f"HeadBucket {bucket}") from exc
        region = headers.get(_REGION_HEADER)
        if region:
            return str(region)
        try:
            location = await client.get_bucket_location(Bucket=bucket)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise s3_error(exc, uri, f"GetBucketLocation {bucket}") from exc
        # A bucket of us-east-1 has no location constraint (and "EU" is eu-west-1's old name).
        constraint = location.get("LocationConstraint") or _ASKING_REGION
        return "eu-west-1" if constraint == "EU" else str(constraint)
