"""A streamed upload of an HTTP(S) or local source: one PutObject, or parts in bounded memory.

A source smaller than one part goes up in one PutObject. A larger one is a multipart upload
(:mod:`async_refimport.staging.multipart`): parts are read one after the other and sent
``parts_in_flight`` at a time; a part's buffer is held from the moment it is read until S3 has
it, and every buffer takes a slot of the Stager's ``parts_in_memory`` semaphore first, so memory
is bounded per file and in all. Each part carries its SHA-256 checksum; the manifest's MD5 is
computed over the bytes as they pass and compared before CompleteMultipartUpload: a mismatch
completes nothing.

A resumed upload re-reads the source from its first missing part when that is safe (an HTTP
Range request with ``If-Range``, a seek in a file) and from the start when the MD5 is to be
checked (it covers every byte); parts re-read whose checksum matches the ledger's are not sent
again.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import botocore.exceptions

from async_refimport.staging.errors import StagingCode, StagingError
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
from async_refimport.staging.sources import Reader

__all__ = ["StreamedUpload", "sha256_b64"]


def sha256_b64(data: bytes) -> str:
    """The SHA-256 of ``data`` in base64, as S3's checksums are written.

    Args:
        data: The bytes.

    Returns:
        The checksum.
    """
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@dataclass(slots=True)
class StreamedUpload:
    """Stage one streamed source (call :meth:`run` once per attempt).

    Attributes:
        dest: Where the object goes.
        ledger: The ledger.
        limits: Part size and parallelism.
        memory: The Stager's semaphore of part buffers (``parts_in_memory`` slots).
        open_reader: Opens the source at an offset (a multiple of the part size); the reader's
            ``offset`` says where it really starts (0 when a server ignores the Range).
        md5: The expected MD5 (hex), checked over every byte.
        sha256_hex: The expected SHA-256 of the content (a file's key), checked when every byte
            was read.
    """

    dest: Destination
    ledger: StagingLedger
    limits: StagingLimits
    memory: anyio.Semaphore
    open_reader: Callable[[int], Awaitable[Reader]]
    md5: str | None = None
    sha256_hex: str | None = None

    async def run(self) -> None:
        """Upload the source, resuming the ledger's upload of the key if there is one.

        Raises:
            StagingError: the source failed (nothing completed; a multipart upload is left for
                the caller to abort or resume).
        """
        existing = await self.ledger.active(self.dest.bucket, self.dest.key)
        if existing is not None:
            upload, _ = await resume_or_create(self.dest, self.ledger, existing.part_size)
            await self._multipart(upload, None, None)
            return
        reader = await self.open_reader(0)
        try:
            async with self.memory:
                first = await reader.read(self.limits.part_size)
                if len(first) < self.limits.part_size:
                    await self._put(first)
                    return
            upload, _ = await resume_or_create(self.dest, self.ledger, self.limits.part_size)
            await self._multipart(upload, reader, first)
        finally:
            await reader.aclose()

    async def _put(self, data: bytes) -> None:
        if self.md5 is not None:
            digest = await anyio.to_thread.run_sync(hashlib.md5, data)
            self._check_md5(digest.hexdigest())
        checksum = await anyio.to_thread.run_sync(sha256_b64, data)
        if self.sha256_hex and hashlib.sha256(data).hexdigest() != self.sha256_hex:
            raise changed(self.dest.source, "the file changed while it was staged")
        try:
            await self.dest.client.put_object(
                Bucket=self.dest.bucket,
                Key=self.dest.key,
                Body=data,
                ChecksumAlgorithm=CHECKSUM,
                ChecksumSHA256=checksum,
                Metadata=self.dest.metadata,
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise s3_error(exc, self.dest.source, f"PutObject {self.dest.uri}") from exc

    def _check_md5(self, found: str) -> None:
        if self.md5 is not None and found != self.md5:
            raise StagingError(
                StagingCode.MD5_MISMATCH,
                self.dest.source,
                f"md5 {found} of the bytes read is not the manifest's {self.md5}",
            )

    async def _multipart(
        self, upload: Multipart, reader: Reader | None, first: bytes | None
    ) -> None:
        offset = 0
        if self.md5 is None and reader is None:
            missing = next(n for n in range(1, len(upload.done) + 2) if n not in upload.done)
            offset = (missing - 1) * upload.part_size
        opened = reader is None
        if reader is None:
            reader = await self.open_reader(offset)
        try:
            hasher = hashlib.md5() if self.md5 and reader.offset == 0 else None
            whole = hashlib.sha256() if reader.offset == 0 and self.sha256_hex else None
            last = await self._stream(upload, reader, first, hasher, whole)
        finally:
            if opened:
                await reader.aclose()
        if hasher is not None:
            self._check_md5(hasher.hexdigest())
        if whole is not None and whole.hexdigest() != self.sha256_hex:
            await upload.abort()
            raise changed(self.dest.source, "the file changed while it was staged")
        for number in [n for n in upload.done if n > last]:  # the source got shorter
            await self.ledger.forget_part(upload.upload.upload_id, number)
            del upload.done[number]
        if sorted(upload.done) != list(range(1, last + 1)):
            raise StagingError(
                StagingCode.S3_ERROR, self.dest.source, "parts missing after the upload"
            )
        await upload.complete()

    async def _stream(
        self, upload: Multipart, reader: Reader, first: bytes | None, md5: Any, whole: Any
    ) -> int:
        """Read and send the parts from the reader's offset; the last part's number."""
        number = reader.offset // upload.part_size + 1
        total = reader.offset
        per_file = anyio.Semaphore(self.limits.parts_in_flight)
        try:
            async with anyio.create_task_group() as group:
                while True:
                    await per_file.acquire()
                    await self.memory.acquire()
                    try:
                        data = first if first is not None else await reader.read(upload.part_size)
                        first = None
                        total += len(data)
                        self._check_size(total)
                        await self._hash(data, md5, whole)
                        sent = await self._part(group, upload, number, data, per_file)
                    except BaseException:
                        per_file.release()
                        self.memory.release()
                        raise
                    if not sent:
                        per_file.release()
                        self.memory.release()
                    if len(data) < upload.part_size:
                        last = number if data or number == 1 else number - 1
                        break
                    number += 1
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        return last

    def _check_size(self, total: int) -> None:
        if total > self.limits.max_bytes:
            raise StagingError(
                StagingCode.TOO_LARGE,
                self.dest.source,
                f"more than {self.limits.max_bytes} bytes, the limit",
                retryable=False,
            )

    @staticmethod
    async def _hash(data: bytes, md5: Any, whole: Any) -> None:
        for hasher in (md5, whole):
            if hasher is not None and data:
                await anyio.to_thread.run_sync(hasher.update, data)

    async def _part(
        self,
        group: anyio.abc.TaskGroup,
        upload: Multipart,
        number: int,
        data: bytes,
        per_file: anyio.Semaphore,
    ) -> bool:
        """Start sending part ``number`` unless S3 has it already; whether it was started."""
        if not data and number > 1:
            return False
        checksum = await anyio.to_thread.run_sync(sha256_b64, data)
        known = upload.done.get(number)
        if known is not None and known.size == len(data) and known.checksum == checksum:
            return False

        async def send() -> None:
            try:
                await upload.send_part(number, data, checksum)
            finally:
                per_file.release()
                self.memory.release()

        group.start_soon(send)
        return True
