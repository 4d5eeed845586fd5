"""Staging: sources from anywhere copied into an S3 bucket of the store's own Region, once.

HealthOmics imports only from S3 in the store's own Region. A source elsewhere (an ``s3://``
object in another Region, an ``https://``/``http://`` URL, a local file) is first staged into a
*staging area* (``REGION=s3://bucket/prefix/``) and imported from there:

* **S3 → S3**: a server-side copy (CopyObject up to ``StagingLimits.copy_threshold``, 5 GiB;
  UploadPartCopy above it, up to the service's 15 GiB limit): no bytes through this host.
* **HTTP(S) and local files**: a streamed upload (one PutObject for a small file, else a
  multipart upload) in bounded memory: at most ``parts_in_flight`` x ``part_size`` per file
  (4 x 8 MiB = 32 MiB) and ``parts_in_memory`` x ``part_size`` in all (16 x 8 MiB = 128 MiB).
  Bytes are passed through unchanged (gzip/bgzip stay compressed); redirects are followed up to
  ``max_redirects``; fewer bytes than the Content-Length fail (TRUNCATED); a manifest's ``md5``
  is checked while streaming and a mismatch fails before the object is completed.
* **Integrity**: every staged object carries S3's SHA-256 additional checksum (per part and on
  the object).
* **Content-addressed keys** (:mod:`async_refimport.staging.keys`): a re-run, another store of
  the same Region or another manifest finds the object with a HEAD and copies nothing.
* **Resumable** (:class:`StagingLedger`): multipart upload ids and finished parts are recorded
  before they are relied on; a crash resumes, an object is never completed twice, abandoned
  uploads are aborted (:meth:`Stager.abort_orphans`).

Entry points: :class:`Stager` (``async with Stager(ledger_path, pool=pool) as s:``
``await s.stage(source, area, md5=...)``), :func:`parse_staging`, :func:`source_kind`.
"""

from async_refimport.staging.areas import (
    SourceKind,
    StagingArea,
    basename_of,
    local_path,
    parse_area_uri,
    parse_s3_uri,
    parse_staging,
    source_kind,
)
from async_refimport.staging.errors import StagingCode, StagingError
from async_refimport.staging.ledger import LedgerPart, LedgerUpload, StagingLedger, UploadState
from async_refimport.staging.limits import MIB, StagingLimits
from async_refimport.staging.stager import StagedObject, Stager

__all__ = [
    "MIB",
    "LedgerPart",
    "LedgerUpload",
    "SourceKind",
    "StagedObject",
    "Stager",
    "StagingArea",
    "StagingCode",
    "StagingError",
    "StagingLedger",
    "StagingLimits",
    "UploadState",
    "basename_of",
    "local_path",
    "parse_area_uri",
    "parse_s3_uri",
    "parse_staging",
    "source_kind",
]
