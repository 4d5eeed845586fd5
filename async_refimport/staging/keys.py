"""Content-addressed staging keys: the same bytes get the same key, whoever stages them.

A key is ``PREFIX`` + one of (``NAME`` is the source's file name, FASTA extension kept):

========================================  ==================================================
``md5/<md5>/NAME``                        the source's MD5 is known: the manifest's ``md5``
                                          (checked while streaming), or an S3 source's ETag
                                          when it is a plain MD5 (a single-part object
                                          without SSE-KMS or SSE-C)
``sha256/<sha256>/NAME``                  a local file without ``md5``: its SHA-256 (hex),
                                          computed by reading it first
``s3/<h>/NAME``                           an S3 source whose ETag is not an MD5 (multipart,
                                          encrypted): ``h`` = SHA-256 of ETag and size
``url/<h>/NAME``                          an HTTP(S) source without ``md5``: ``h`` = SHA-256 of
                                          the URL (without user name and password), its ETag,
                                          Last-Modified and Content-Length
========================================  ==================================================

(``h``: the first 40 hex digits.) A key found by a HEAD is reused only when the object's size
matches the source's (when known) and it carries a SHA-256 checksum (every staged object does);
nothing else is ever written under these keys, so a key that exists holds what its name says.
A server that sends neither ETag nor Last-Modified is addressed by URL and length alone: a file
replaced at the same URL with one of the same length would be taken for the old one.
"""

from __future__ import annotations

import hashlib
import re

from async_refimport._models import without_userinfo

__all__ = ["file_key", "http_key", "is_md5", "md5_key", "plain_md5_etag", "s3_key"]

_MD5 = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH_DIGITS = 40
_QUOTE = '"'


def is_md5(value: str) -> bool:
    """Whether ``value`` is an MD5 in hex (32 digits, lower case).

    Args:
        value: The text.

    Returns:
        True for 32 lower-case hex digits.
    """
    return _MD5.fullmatch(value) is not None


def _digest(*parts: object) -> str:
    joined = "\n".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:_HASH_DIGITS]


def md5_key(prefix: str, md5: str, name: str) -> str:
    """The key of an object whose MD5 is known.

    Args:
        prefix: The staging area's prefix.
        md5: The MD5 (hex; lower-cased here).
        name: The source's file name.

    Returns:
        ``PREFIX md5/<md5>/NAME``.

    Raises:
        ValueError: not 32 hex digits.
    """
    md5 = md5.lower()
    if not is_md5(md5):
        raise ValueError(f"md5 {md5!r}: expected 32 hex digits")
    return f"{prefix}md5/{md5}/{name}"


def file_key(prefix: str, sha256_hex: str, name: str) -> str:
    """The key of a local file by its content's SHA-256.

    Args:
        prefix: The staging area's prefix.
        sha256_hex: The file's SHA-256 (64 hex digits).
        name: The file's name.

    Returns:
        ``PREFIX sha256/<sha256>/NAME``.

    Raises:
        ValueError: not 64 hex digits.
    """
    if not _SHA256.fullmatch(sha256_hex):
        raise ValueError(f"sha256 {sha256_hex!r}: expected 64 hex digits")
    return f"{prefix}sha256/{sha256_hex}/{name}"


def s3_key(prefix: str, etag: str, size: int, name: str) -> str:
    """The key of an S3 source whose ETag is not an MD5.

    Args:
        prefix: The staging area's prefix.
        etag: The source's ETag (quotes or not).
        size: The source's size.
        name: The source's file name.

    Returns:
        ``PREFIX s3/<h>/NAME``.
    """
    return f"{prefix}s3/{_digest(etag.strip(_QUOTE), size)}/{name}"


def http_key(
    prefix: str,
    url: str,
    name: str,
    *,
    etag: str | None,
    last_modified: str | None,
    length: int | None,
) -> str:
    """The key of an HTTP(S) source without an MD5.

    Args:
        prefix: The staging area's prefix.
        url: The URL as the manifest gives it (its user name and password are left out).
        name: The file name.
        etag: The response's ETag.
        last_modified: The response's Last-Modified.
        length: The response's Content-Length.

    Returns:
        ``PREFIX url/<h>/NAME``.
    """
    return f"{prefix}url/{_digest(without_userinfo(url), etag, last_modified, length)}/{name}"


def plain_md5_etag(etag: str, encrypted: bool) -> str | None:
    """The MD5 an S3 ETag is, when it is one.

    Args:
        etag: The object's ETag (with or without quotes).
        encrypted: Whether the object is encrypted with SSE-KMS or SSE-C (their ETags are not
            MD5s).

    Returns:
        The MD5 (hex), or ``None`` for a multipart or encrypted object's ETag.
    """
    value = etag.strip('"').lower()
    return value if not encrypted and is_md5(value) else None
