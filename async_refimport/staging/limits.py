"""The knobs of staging: part sizes, what is in flight, thresholds, retries."""

from __future__ import annotations

from dataclasses import dataclass

from async_refimport.aws.preflight import MAX_SOURCE_BYTES

__all__ = ["MIB", "StagingLimits"]

MIB = 1024 * 1024
_GIB = 1024 * MIB


@dataclass(frozen=True, slots=True)
class StagingLimits:
    """How staging uses memory, connections and S3's multipart rules.

    **Memory is bounded**: a streamed upload (HTTP(S), a local file) holds at most
    ``parts_in_flight`` part buffers of ``part_size`` bytes per file, and at most
    ``parts_in_memory`` across every file of the :class:`~async_refimport.staging.Stager`
    (a semaphore taken before a part is read, given back once S3 has it). With the defaults:
    8 MiB parts, 4 per file = 32 MiB per file, 16 in all = 128 MiB in all, whatever the files'
    sizes and however many are staged at once. A source smaller than one part is sent in one
    PutObject. A server-side copy holds no bytes here.

    Attributes:
        part_size: Bytes per part of a streamed upload (S3: at least 5 MiB but for the last).
        parts_in_flight: Parts of one file read or being sent at once.
        parts_in_memory: Part buffers of all files at once (the global bound).
        copy_threshold: A server-side copy of more bytes than this is a multipart copy
            (UploadPartCopy); CopyObject itself takes up to 5 GiB.
        copy_part_size: Bytes per part of a multipart copy.
        copy_parts_in_flight: UploadPartCopy calls in flight per object.
        max_bytes: The largest source (the service's limit on one file): larger is TOO_LARGE.
        max_redirects: HTTP redirects followed per request.
        connect_timeout: Seconds to connect to an HTTP server.
        read_timeout: Seconds an HTTP read may wait for the next bytes.
        attempts: Attempts per source before a retryable failure is raised (each resumes from
            the ledger).
        retry_delay: Seconds before the first retry (doubled each time).
        orphan_age: Seconds after which a multipart upload under the staging prefix that the
            ledger does not know (another run's, another ledger's) counts as abandoned and
            :meth:`~async_refimport.staging.Stager.abort_orphans` aborts it; a younger one may
            be another run's, still in flight, and is left alone (as the lifecycle rule
            ``AbortIncompleteMultipartUpload`` does, after a day by default).
    """

    part_size: int = 8 * MIB
    parts_in_flight: int = 4
    parts_in_memory: int = 16
    copy_threshold: int = 5 * _GIB
    copy_part_size: int = 512 * MIB
    copy_parts_in_flight: int = 8
    max_bytes: int = MAX_SOURCE_BYTES
    max_redirects: int = 5
    connect_timeout: float = 30.0
    read_timeout: float = 120.0
    attempts: int = 3
    retry_delay: float = 1.0
    orphan_age: float = 24 * 3600.0

    def __post_init__(self) -> None:
        """Refuse limits S3 or the bounds cannot work with.

        Raises:
            ValueError: a part count below 1, or ``parts_in_memory`` below ``parts_in_flight``.
        """
        if self.parts_in_flight < 1 or self.copy_parts_in_flight < 1 or self.attempts < 1:
            raise ValueError("parts_in_flight, copy_parts_in_flight and attempts must be >= 1")
        if self.parts_in_memory < self.parts_in_flight:
            raise ValueError("parts_in_memory must be at least parts_in_flight")
        if self.part_size < 1 or self.copy_part_size < 1:
            raise ValueError("part sizes must be positive")
