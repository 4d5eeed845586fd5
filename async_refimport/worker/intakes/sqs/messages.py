"""Reading a request message: its body, and the manifest object it may name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from async_refimport._errors import FieldError, ManifestError, RequestValidationError
from async_refimport._models import ImportRequest
from async_refimport.aws.sqs import ObjectUnavailable, SqsClient
from async_refimport.manifest.reader import (
    FORMATS,
    ManifestDefaults,
    ManifestFormat,
    RemoteLimits,
    check_objects,
    parse_manifest,
)

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
    """Check a message body.

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
        doc = json.loads(body)
    except ValueError:
        raise _rejected("body", "not a JSON document") from None
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
    parsed = check_objects(items, defaults, source=INLINE_SOURCE, remote=remote or RemoteLimits())
    if parsed.errors:
        raise RequestValidationError(parsed.errors)
    return MessageBody(requests=tuple(parsed.requests))


async def read_manifest_object(
    sqs: SqsClient,
    uri: str,
    defaults: ManifestDefaults,
    *,
    format: ManifestFormat | None = None,
    max_bytes: int,
    remote: RemoteLimits | None = None,
) -> list[ImportRequest]:
    """Read and validate a manifest stored in S3, as ``refimport import`` reads one.

    The object is fetched here rather than by the manifest reader's own S3 fetch because the two
    kinds of failure must stay apart: a missing object or a denied read rejects the message, but
    S3 out of reach leaves it on the queue for a later delivery. Parsing (format from the key's
    extension, else sniffed) is the manifest reader's.

    Args:
        sqs: The SQS/S3 client.
        uri: The manifest's ``s3://`` URI.
        defaults: Field values for rows that leave them out.
        format: The manifest's format (None: from the key's extension, else sniffed).
        max_bytes: The largest object read.
        remote: What a remote client may set (default: any store, never an endpoint or a profile).

    Returns:
        The manifest's rows.

    Raises:
        ManifestError: every bad row (each naming the URI and line), or the object is missing.
        TransientServiceError: S3 could not be reached.
    """
    try:
        data = await sqs.read_object(uri, max_bytes=max_bytes)
    except ObjectUnavailable as exc:
        raise ManifestError([FieldError("manifest", str(exc), source=uri)]) from exc
    manifest = await anyio.to_thread.run_sync(
        lambda: parse_manifest(data, uri, defaults, format=format, remote=remote or RemoteLimits())
    )
    manifest.raise_for_errors()
    if not manifest.rows:
        raise ManifestError([FieldError("manifest", "no rows", source=uri)])
    return manifest.requests
