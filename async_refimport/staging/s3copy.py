"""S3 → S3 across Regions, server-side: no byte of the object passes through this host.

Up to ``StagingLimits.copy_threshold`` (5 GiB, CopyObject's own limit) one CopyObject; above it a
multipart upload whose parts are UploadPartCopy ranges of the source, ``copy_parts_in_flight`` at
a time, journaled and resumed like any multipart upload
(:mod:`async_refimport.staging.multipart`). Every copy asks S3 for a SHA-256 checksum of the
destination and names the source's ETag (``CopySourceIfMatch``): a source replaced meanwhile
fails the copy (CHANGED) instead of staging other bytes under its key.
"""

from __future__ import annotations

import anyio
import botocore.exceptions

from async_refimport.staging.errors import StagingError
from async_refimport.staging.ledger import StagingLedger
from async_refimport.staging.limits import StagingLimits
from async_refimport.staging.multipart import (
    CHECKSUM,
    Destination,
    Multipart,
    changed,
    first_error,
    resume_or_create,
)
from async_refimport.staging.regions import s3_error

__all__ = ["copy_s3"]

_S3_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def _failed(exc: Exception, dest: Destination, what: str) -> StagingError:
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code in ("PreconditionFailed", "412"):
            return changed(dest.source, "the source object changed while it was copied")
    return s3_error(exc, dest.source, what)


async def copy_s3(
    dest: Destination,
    ledger: StagingLedger,
    limits: StagingLimits,
    *,
    bucket: str,
    key: str,
    etag: str,
    size: int,
) -> None:
    """Copy ``s3://bucket/key`` to ``dest`` server-side.

    Args:
        dest: Where it goes (its client is of the staging bucket's Region).
        ledger: The ledger (for a multipart copy).
        limits: The copy threshold, part size and parallelism.
        bucket: The source bucket.
        key: The source key.
        etag: The source's ETag as its HEAD gave it.
        size: The source's size.

    Raises:
        StagingError: S3 refused or failed (CHANGED when the source's ETag no longer matches).
    """
    source = {"Bucket": bucket, "Key": key}
    existing = await ledger.active(dest.bucket, dest.key)
    if size <= limits.copy_threshold and existing is None:
        try:
            await dest.client.copy_object(
                Bucket=dest.bucket,
                Key=dest.key,
                CopySource=source,
                CopySourceIfMatch=etag,
                ChecksumAlgorithm=CHECKSUM,
                MetadataDirective="REPLACE",
                Metadata=dest.metadata,
            )
        except _S3_ERRORS as exc:
            raise _failed(exc, dest, f"CopyObject to {dest.uri}") from exc
        return
    upload, _ = await resume_or_create(dest, ledger, limits.copy_part_size)
    parts = max(1, -(-size // upload.part_size))
    slots = anyio.Semaphore(limits.copy_parts_in_flight)
    try:
        async with anyio.create_task_group() as group:
            for number in range(1, parts + 1):
                if number in upload.done:
                    continue
                await slots.acquire()
                group.start_soon(_copy_part, upload, slots, source, etag, number, size)
    except BaseExceptionGroup as group_error:
        raise first_error(group_error) from None
    await upload.complete()


async def _copy_part(
    upload: Multipart,
    slots: anyio.Semaphore,
    source: dict[str, str],
    etag: str,
    number: int,
    size: int,
) -> None:
    """UploadPartCopy of part ``number`` (its byte range of the source), then record it."""
    dest = upload.dest
    start = (number - 1) * upload.part_size
    end = min(size, start + upload.part_size) - 1
    try:
        answer = await dest.client.upload_part_copy(
            Bucket=dest.bucket,
            Key=dest.key,
            UploadId=upload.upload.upload_id,
            PartNumber=number,
            CopySource=source,
            CopySourceRange=f"bytes={start}-{end}",
            CopySourceIfMatch=etag,
        )
    except _S3_ERRORS as exc:
        raise _failed(exc, dest, f"UploadPartCopy {number} to {dest.uri}") from exc
    finally:
        slots.release()
    result = answer["CopyPartResult"]
    await upload.record(number, result["ETag"], result.get("ChecksumSHA256"), end - start + 1)
