"""Reading a request message: its body, and the manifest object it may name.

Nothing a producer (or anyone who may send to the queue) puts in a body raises out of
:func:`parse_body` but :class:`~async_refimport.RequestValidationError`: a body too long or nested
too deeply is refused before it is parsed, a key given twice in one object is refused as the
manifest reader refuses it, and any other failure to read it is a verdict on the body too. So an
invalid message is always answered and deleted, never handed back to come again.

A manifest object is never held in memory: :func:`journal_manifest` downloads it into a
temporary file a chunk at a time, checks it whole, and journals it a chunk at a time read again,
as ``refimport import`` journals a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import IO, Any

import anyio.to_thread

from async_refimport._application import SUBMIT_CHUNK
from async_refimport._errors import FieldError, ManifestError, RequestValidationError
from async_refimport._models import ImportRequest
from async_refimport.aws.sqs import ObjectUnavailable, SqsClient, body_problem
from async_refimport.engine.importer import Importer
from async_refimport.manifest.formats import detect_format, s3_key, sniff_format
from async_refimport.manifest.reader import (
    FORMATS,
    CheckedManifest,
    ManifestDefaults,
    ManifestFormat,
    RemoteLimits,
    check_objects,
)
from async_refimport.manifest.rows import RowBuilder, decode_json

#: Rows one message may list (a body is at most 256 KiB anyway).
MAX_REQUESTS_PER_MESSAGE = 10_000
#: The ``source`` of a problem with the message itself (its body, its manifest URI).
MESSAGE_SOURCE = "message"
#: The ``source`` of a problem with a row given inline (``line`` is its 1-based index).
INLINE_SOURCE = "requests"


@dataclass(frozen=True, slots=True)
class MessageBody:
    """A parsed message: rows given inline, or a manifest to read.

    Attributes:
        requests: The rows given inline (empty when the message names a manifest).
        manifest: The ``s3://`` URI of the manifest to read (None: rows given inline).
        format: The manifest's format when the message names it (None: from the key, or sniffed).
    """

    requests: tuple[ImportRequest, ...] = ()
    manifest: str | None = None
    format: ManifestFormat | None = None


def _rejected(field: str, reason: str) -> RequestValidationError:
    return RequestValidationError([FieldError(field, reason, source=MESSAGE_SOURCE)])


def _manifest_body(doc: dict[str, Any], manifest: Any) -> MessageBody:
    """A body naming a manifest: its URI and optional format checked."""
    fmt = doc.get("format")
    if not isinstance(manifest, str) or not manifest.startswith("s3://"):
        raise _rejected("manifest", "must be an s3://bucket/key URI")
    if fmt is not None and fmt not in FORMATS:
        raise _rejected("format", f"must be one of {', '.join(FORMATS)}")
    return MessageBody(manifest=manifest, format=fmt)


def parse_body(
    body: str, defaults: ManifestDefaults, remote: RemoteLimits | None = None
) -> MessageBody:
    """Check a message body; never raises anything but a verdict on it.

    Rows given inline are validated like a JSON Lines manifest.

    Args:
        body: The message's body.
        defaults: Field values for rows that leave them out.
        remote: What a remote client may set (default: any store, never an endpoint or a profile).

    Returns:
        The rows given inline, or the manifest to read.

    Raises:
        RequestValidationError: with every problem found (``line`` is the row's 1-based index).
    """
    try:
        return _parse_body(body, defaults, remote or RemoteLimits())
    except RequestValidationError:
        raise
    except Exception as exc:
        # Whatever else a body makes fail (RecursionError, MemoryError, a codec's error) fails
        # the same way at every delivery: a verdict on the body, not a reason to deliver again.
        raise _rejected("body", f"cannot be read ({type(exc).__name__})") from exc


def _parse_body(body: str, defaults: ManifestDefaults, remote: RemoteLimits) -> MessageBody:
    """:func:`parse_body`, which may raise anything."""
    problem = body_problem(body)
    if problem is not None:
        raise _rejected("body", problem)
    try:
        json.loads(body)
    except ValueError:
        raise _rejected("body", "not a JSON document") from None
    # Parsed again (a megabyte at most) by the manifest reader's decoder, which refuses what
    # JSON parsers disagree on: a key given twice in one object.
    doc, problem = decode_json(body)
    if problem is not None:
        raise _rejected("body", problem)
    if not isinstance(doc, dict):
        raise _rejected(
            "body", 'must be a JSON object: {"requests": [...]} or {"manifest": "s3://..."}'
        )
    items, manifest = doc.get("requests"), doc.get("manifest")
    if (items is None) == (manifest is None):
        raise _rejected("body", 'give exactly one of "requests" or "manifest"')
    if manifest is not None:
        return _manifest_body(doc, manifest)
    if not isinstance(items, list) or not items:
        raise _rejected("requests", "must be a non-empty list")
    if len(items) > MAX_REQUESTS_PER_MESSAGE:
        raise _rejected("requests", f"at most {MAX_REQUESTS_PER_MESSAGE} rows per message")
    # The manifest reader's row checks, so every intake accepts the same fields the same way.
    parsed = check_objects(items, defaults, source=INLINE_SOURCE, remote=remote)
    if parsed.errors:
        raise RequestValidationError(parsed.errors)
    return MessageBody(requests=tuple(parsed.requests))


async def journal_manifest(
    importer: Importer,
    sqs: SqsClient,
    body: MessageBody,
    defaults: ManifestDefaults,
    *,
    submission: str,
    max_bytes: int,
    remote: RemoteLimits | None = None,
) -> list[int]:
    """Read, check and journal a manifest stored in S3, as ``refimport import`` does a file.

    The object is fetched here rather than by the manifest reader's own S3 fetch because the two
    kinds of failure must stay apart: a missing object or a denied read rejects the message, but
    S3 out of reach leaves it on the queue for a later delivery. It is downloaded into a temporary
    file, checked whole, then journaled :data:`SUBMIT_CHUNK` rows at a time read again: memory is
    one chunk of requests, whatever the manifest's size. Nothing is journaled unless every row
    can be (each chunk's conflicts are asked first); a redelivery after a failure half-way finds
    the rows journaled already (one row per store and name).

    Args:
        importer: The open Importer.
        sqs: The SQS/S3 client.
        body: The message, naming the manifest (and maybe its format).
        defaults: Field values for rows that leave them out.
        submission: The submission id of its rows (the message's id).
        max_bytes: The largest object read.
        remote: What a remote client may set (default: any store, never an endpoint or a profile).

    Returns:
        The ids of the manifest's rows, in order.

    Raises:
        ManifestError: every bad row (each naming the URI and line), or the object is missing.
        RequestValidationError: a name is journaled for its store from another source.
        TransientServiceError: S3 could not be reached.
    """
    uri = body.manifest
    assert uri is not None
    with tempfile.TemporaryFile() as copy:
        try:
            await sqs.download_object(uri, copy, max_bytes=max_bytes)
        except ObjectUnavailable as exc:
            raise ManifestError([FieldError("manifest", str(exc), source=uri)]) from exc
        # One pass checks every row and asks each chunk's conflicts as it is checked; a second
        # journals them: nothing is journaled unless every row can be.
        checking = CopyCheck(copy, uri, defaults, body.format, remote or RemoteLimits())
        problems: list[FieldError] = []
        async for rows in _in_thread(checking.chunks()):
            problems += await importer.conflicts(rows)
        checked = checking.checked()
        checked.manifest.raise_for_errors()
        if not checked.valid_rows:
            raise ManifestError([FieldError("manifest", "no rows", source=uri)])
        if problems:
            raise RequestValidationError(problems)
        ids: list[int] = []
        async for rows in _in_thread(checked.chunks(SUBMIT_CHUNK)):
            ids += await importer.submit(rows, submission=submission)
    return ids


class CopyCheck:
    """The one pass that checks a downloaded manifest whole, handing out its valid rows a chunk
    at a time as they are checked (:meth:`chunks`, blocking: run in a thread), keeping none.

    Args:
        copy: The temporary file holding the object.
        uri: The object's URI, which names it in errors (its key's extension gives the format
            unless ``format`` does; failing both, it is sniffed).
        defaults: Field values for rows that leave them out.
        format: The manifest's format, if the message names it.
        remote: What a remote client may set.
    """

    def __init__(
        self,
        copy: IO[bytes],
        uri: str,
        defaults: ManifestDefaults,
        format: ManifestFormat | None,
        remote: RemoteLimits,
    ) -> None:
        self._copy = copy
        self._defaults = defaults
        head = os.pread(copy.fileno(), 65536, 0)
        fmt = format or detect_format(s3_key(uri)) or sniff_format(head) or "csv"
        self._builder = RowBuilder(uri, fmt, defaults, remote=remote)
        self._valid = 0
        self._stores: dict[tuple[str | None, ...], ImportRequest] = {}

    def _reopen(self) -> IO[bytes]:
        # A reader of its own from the start (closing it leaves the copy open).
        reader = os.fdopen(os.dup(self._copy.fileno()), "rb")
        reader.seek(0)
        return reader

    def chunks(self) -> Iterator[list[ImportRequest]]:
        """Check every row; the valid ones, :data:`SUBMIT_CHUNK` at a time, as they are read.

        Returns:
            An iterator of chunks of requests; every problem is in :meth:`checked` after it.
        """
        chunk: list[ImportRequest] = []
        with self._reopen() as stream:
            for _, request in self._builder.rows(stream):
                self._valid += 1
                key = (request.store_id, request.region, request.endpoint_url, request.profile)
                self._stores.setdefault(key, request)
                chunk.append(request)
                if len(chunk) >= SUBMIT_CHUNK:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    def checked(self) -> CheckedManifest:
        """The manifest as checked (once :meth:`chunks` is exhausted).

        Returns:
            Its problems, valid rows and stores; its ``chunks`` read the copy again.
        """
        return CheckedManifest(
            self._builder.manifest,
            self._valid,
            list(self._stores.values()),
            self._defaults,
            False,
            self._reopen,
            None,
        )


async def _in_thread(chunks: Iterator[list[ImportRequest]]) -> AsyncIterator[list[ImportRequest]]:
    """Each chunk read and parsed in a worker thread, not on the event loop the lanes share."""
    while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
        yield chunk
