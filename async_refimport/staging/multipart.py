"""One multipart upload into a staging bucket, journaled in the ledger and resumable.

:class:`Multipart` is created or resumed by :func:`resume_or_create`: a resumed upload's parts
are those the ledger recorded that S3 also lists with the same ETag (ListParts reconciles; a part
S3 lists but the ledger does not know is sent again, and one the ledger knows but S3 does not is
forgotten). Each finished part is recorded before anything relies on it; the upload is marked
COMPLETING before CompleteMultipartUpload is sent and COMPLETED after, and the caller HEADs the
key before resuming a COMPLETING upload, so no object is completed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from async_refimport._log import get_logger
from async_refimport.staging.errors import StagingCode, StagingError
from async_refimport.staging.ledger import LedgerPart, LedgerUpload, StagingLedger, UploadState
from async_refimport.staging.regions import s3_error

__all__ = [
    "CHECKSUM",
    "Destination",
    "Multipart",
    "abort_upload",
    "changed",
    "first_error",
    "resume_or_create",
]

log = get_logger(__name__)

CHECKSUM = "SHA256"
"""The S3 additional checksum every staged object and part carries."""

_S3_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an object is staged, and by which client.

    Attributes:
        client: The S3 client of the staging bucket's Region.
        bucket: The staging bucket.
        key: The object's key.
        source: The source staged (for messages and the ledger).
        metadata: The object's user metadata.
    """

    client: Any
    bucket: str
    key: str
    source: str
    metadata: dict[str, str]

    @property
    def uri(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


@dataclass(slots=True)
class Multipart:
    """A multipart upload in progress.

    Attributes:
        dest: Where it goes.
        ledger: Where it is recorded.
        upload: Its ledger record.
        done: The parts S3 has (and the ledger recorded), by number.
    """

    dest: Destination
    ledger: StagingLedger
    upload: LedgerUpload
    done: dict[int, LedgerPart] = field(default_factory=dict)

    @property
    def part_size(self) -> int:
        """Bytes per part (all but the last)."""
        return self.upload.part_size

    async def record(self, number: int, etag: str, checksum: str | None, size: int) -> LedgerPart:
        """Record a part S3 acknowledged: in the ledger first, then here.

        Args:
            number: The part number.
            etag: Its ETag.
            checksum: Its SHA-256 checksum (base64), if S3 gave one.
            size: Its bytes.

        Returns:
            The part.
        """
        part = LedgerPart(number, etag, checksum, size)
        await self.ledger.record_part(self.upload.upload_id, part)
        self.done[number] = part
        return part

    async def send_part(self, number: int, data: bytes, checksum: str) -> LedgerPart:
        """UploadPart with its SHA-256 checksum, then record it.

        Args:
            number: The part number.
            data: The part's bytes.
            checksum: Their SHA-256 (base64): S3 refuses the part if they differ.

        Returns:
            The part.

        Raises:
            StagingError: S3 refused or failed the part.
        """
        try:
            answer = await self.dest.client.upload_part(
                Bucket=self.dest.bucket,
                Key=self.dest.key,
                UploadId=self.upload.upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm=CHECKSUM,
                ChecksumSHA256=checksum,
            )
        except _S3_ERRORS as exc:
            raise s3_error(
                exc, self.dest.source, f"UploadPart {number} of {self.dest.uri}"
            ) from exc
        return await self.record(
            number, answer["ETag"], answer.get("ChecksumSHA256", checksum), len(data)
        )

    async def complete(self) -> None:
        """CompleteMultipartUpload with every part, marked COMPLETING first and COMPLETED after.

        Raises:
            StagingError: S3 refused (the upload is left COMPLETING: the caller HEADs the key).
        """
        await self.ledger.mark(self.upload.upload_id, UploadState.COMPLETING)
        parts = []
        for number in sorted(self.done):
            part = self.done[number]
            entry: dict[str, Any] = {"PartNumber": number, "ETag": part.etag}
            if part.checksum:
                entry["ChecksumSHA256"] = part.checksum
            parts.append(entry)
        try:
            await self.dest.client.complete_multipart_upload(
                Bucket=self.dest.bucket,
                Key=self.dest.key,
                UploadId=self.upload.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except _S3_ERRORS as exc:
            raise s3_error(
                exc, self.dest.source, f"CompleteMultipartUpload {self.dest.uri}"
            ) from exc
        await self.ledger.mark(self.upload.upload_id, UploadState.COMPLETED)
        log.info("staging.completed", key=self.dest.key, parts=len(parts))

    async def abort(self) -> None:
        """Abort the upload at S3 and mark it ABORTED (an upload S3 forgot counts as aborted)."""
        await abort_upload(
            self.dest.client, self.ledger, self.dest.bucket, self.dest.key, self.upload.upload_id
        )


async def abort_upload(
    client: Any, ledger: StagingLedger, bucket: str, key: str, upload_id: str
) -> bool:
    """Abort one multipart upload and mark it ABORTED in the ledger.

    Args:
        client: The S3 client of the bucket's Region.
        ledger: The ledger.
        bucket: The bucket.
        key: The key.
        upload_id: The upload.

    Returns:
        True when S3 aborted it (False: S3 did not know it any more).

    Raises:
        StagingError: S3 refused for another reason (the ledger is left as it was).
    """
    try:
        await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        aborted = True
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
            raise s3_error(exc, f"s3://{bucket}/{key}", "AbortMultipartUpload") from exc
        aborted = False
    await ledger.mark(upload_id, UploadState.ABORTED)
    log.info("staging.aborted", key=key, upload_id=upload_id[:12])
    return aborted


async def resume_or_create(
    dest: Destination, ledger: StagingLedger, part_size: int
) -> tuple[Multipart, bool]:
    """The ledger's UPLOADING upload of the key, reconciled with S3, else a new one.

    A COMPLETING upload must have been looked after by the caller (a HEAD of the key); here it
    is treated as UPLOADING (its parts reconciled; the caller completes it).

    Args:
        dest: Where the object goes.
        ledger: The ledger.
        part_size: Bytes per part of a new upload (a resumed one keeps its own).

    Returns:
        ``(upload, resumed)``.

    Raises:
        StagingError: S3 failed.
    """
    found = await ledger.active(dest.bucket, dest.key)
    if found is not None:
        resumed = await _reconcile(dest, ledger, found)
        if resumed is not None:
            return resumed, True
    await ledger.intend(dest.bucket, dest.key)  # write-ahead: a crash next leaves an orphan ours
    try:
        answer = await dest.client.create_multipart_upload(
            Bucket=dest.bucket, Key=dest.key, ChecksumAlgorithm=CHECKSUM, Metadata=dest.metadata
        )
    except _S3_ERRORS as exc:
        await ledger.forget_intent(dest.bucket, dest.key)
        raise s3_error(exc, dest.source, f"CreateMultipartUpload {dest.uri}") from exc
    upload = await ledger.begin(
        dest.bucket, dest.key, answer["UploadId"], source=dest.source, part_size=part_size
    )
    return Multipart(dest, ledger, upload), False


async def _reconcile(
    dest: Destination, ledger: StagingLedger, upload: LedgerUpload
) -> Multipart | None:
    """The upload with the parts both the ledger and S3 have; ``None`` if S3 forgot it."""
    listed: dict[int, str] = {}
    marker: int | None = 0
    try:
        while marker is not None:
            page = await dest.client.list_parts(
                Bucket=dest.bucket, Key=dest.key, UploadId=upload.upload_id, PartNumberMarker=marker
            )
            listed.update({p["PartNumber"]: p["ETag"] for p in page.get("Parts", [])})
            marker = page.get("NextPartNumberMarker") if page.get("IsTruncated") else None
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
            await ledger.mark(upload.upload_id, UploadState.ABORTED)
            return None
        raise s3_error(exc, dest.source, f"ListParts {dest.uri}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise s3_error(exc, dest.source, f"ListParts {dest.uri}") from exc
    recorded = await ledger.parts(upload.upload_id)
    kept = {}
    for number, part in recorded.items():
        if listed.get(number) == part.etag:
            kept[number] = part
        else:
            await ledger.forget_part(upload.upload_id, number)
    log.info("staging.resumed", key=dest.key, parts=len(kept), listed=len(listed))
    return Multipart(dest, ledger, upload, kept)


def changed(source: str, detail: str) -> StagingError:
    """The error of a source that changed while it was staged.

    Args:
        source: The source.
        detail: What differed.

    Returns:
        A CHANGED error (retryable: the next attempt starts afresh).
    """
    return StagingError(StagingCode.CHANGED, source, detail)


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first StagingError in a task group's exceptions, else the first exception.

    Args:
        group: What the task group raised.

    Returns:
        The exception to raise in its place.
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    staging = [e for e in leaves if isinstance(e, StagingError)]
    return (staging or leaves)[0]
