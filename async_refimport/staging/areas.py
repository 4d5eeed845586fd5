"""Where sources are staged (``REGION=s3://bucket/prefix/``) and what kind of source a row has."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote, urlsplit

from async_refimport._models import is_region_name, redact_url

__all__ = [
    "SourceKind",
    "StagingArea",
    "basename_of",
    "local_path",
    "parse_area_uri",
    "parse_s3_uri",
    "parse_staging",
    "source_kind",
]

# S3's rules for a bucket name (general purpose buckets): 3..63 of a-z 0-9 . -, a letter or a
# digit at both ends.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_SCHEME = re.compile(r"(?i)^([a-z][a-z0-9+.\-]*)://")
# What a staged key's last part may hold (the rest becomes "_"): S3's safe characters.
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]")


class SourceKind(StrEnum):
    """Where a row's source is read from."""

    S3 = "s3"
    """``s3://bucket/key``: copied server-side when its bucket is in another Region."""
    HTTP = "http"
    """``https://`` or ``http://``: downloaded and streamed into the staging bucket."""
    FILE = "file"
    """A local path, plain or ``file://``: read and streamed into the staging bucket."""


@dataclass(frozen=True, slots=True)
class StagingArea:
    """An S3 prefix in one Region where sources from elsewhere are staged.

    Attributes:
        region: The Region of the bucket (the stores it serves are in this Region).
        bucket: The bucket's name.
        prefix: The key prefix, empty or ending with ``/``.
    """

    region: str
    bucket: str
    prefix: str = ""

    def uri(self, key: str = "") -> str:
        """The ``s3://`` URI of ``key`` (a full key, under the prefix) or of the area itself.

        Args:
            key: An object key; empty: the area's prefix.

        Returns:
            ``s3://bucket/key`` (``s3://bucket/prefix`` when ``key`` is empty).
        """
        return f"s3://{self.bucket}/{key or self.prefix}"

    def __str__(self) -> str:
        """The area as ``--staging`` takes it: ``REGION=s3://bucket/prefix/``."""
        return f"{self.region}={self.uri()}"


def parse_staging(spec: str) -> StagingArea:
    """Read a ``--staging`` value: ``REGION=s3://bucket/prefix/``.

    Args:
        spec: The value as given.

    Returns:
        The area (its prefix ending with ``/`` when not empty).

    Raises:
        ValueError: what is wrong, naming the part (no ``=``, not a Region name, not an
            ``s3://`` URI, not a bucket name).
    """
    region, sep, uri = spec.strip().partition("=")
    if not sep:
        raise ValueError(f"staging {spec!r}: expected REGION=s3://bucket/prefix/")
    return parse_area_uri(region.strip(), uri.strip())


def parse_area_uri(region: str, uri: str) -> StagingArea:
    """A staging area from its Region and its ``s3://bucket/prefix/`` (a targets file's column).

    Args:
        region: The Region name.
        uri: ``s3://bucket/`` or ``s3://bucket/prefix/`` (a missing final ``/`` is added).

    Returns:
        The area.

    Raises:
        ValueError: what is wrong, naming the part.
    """
    if not is_region_name(region):
        raise ValueError(f"staging {region}={uri}: {region!r} is not a Region name (us-east-1)")
    if not uri.startswith("s3://"):
        raise ValueError(f"staging {region}={uri}: expected an s3://bucket/prefix/ URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"staging {region}={uri}: {bucket!r} is not an S3 bucket name")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if prefix.startswith("/") or "//" in prefix:
        raise ValueError(f"staging {region}={uri}: the prefix has an empty path segment")
    return StagingArea(region=region, bucket=bucket, prefix=prefix)


def source_kind(source: str) -> SourceKind:
    """What kind of source ``source`` is.

    Args:
        source: A manifest's ``source_file``.

    Returns:
        S3 for ``s3://``, HTTP for ``http://`` and ``https://``, FILE for ``file://`` or a path
        without a scheme.

    Raises:
        ValueError: another scheme (``ftp://``), or an empty source.
    """
    if not source.strip():
        raise ValueError("empty source")
    match = _SCHEME.match(source)
    if match is None:
        return SourceKind.FILE
    scheme = match.group(1).lower()
    if scheme == "s3":
        return SourceKind.S3
    if scheme in ("http", "https"):
        return SourceKind.HTTP
    if scheme == "file":
        return SourceKind.FILE
    raise ValueError(f"{redact_url(source)}: {scheme}:// sources cannot be staged")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """The bucket and key of ``s3://bucket/key``.

    Args:
        uri: The URI.

    Returns:
        ``(bucket, key)``.

    Raises:
        ValueError: not an ``s3://`` URI naming an object.
    """
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket) or not key:
        raise ValueError(f"{uri}: not an s3://bucket/key URI")
    return bucket, key


def local_path(source: str) -> str:
    """The file system path of a FILE source (``file:///data/x.fa`` or ``/data/x.fa``).

    Args:
        source: A source of kind FILE.

    Returns:
        The path (``file://`` URLs percent-decoded; ``file://localhost/...`` accepted).

    Raises:
        ValueError: a ``file://`` URL naming another host.
    """
    if not source.lower().startswith("file://"):
        return source
    parts = urlsplit(source)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{source}: a file:// URL of another host ({parts.netloc})")
    return unquote(parts.path)


def basename_of(source: str) -> str:
    """The last part of a source's path, fit for an S3 key (its FASTA extension kept).

    Args:
        source: Any source (its query and fragment are left out).

    Returns:
        The file name, characters outside ``A-Za-z0-9._-`` replaced by ``_``; ``source`` when
        the path has no name.
    """
    path = urlsplit(source).path if _SCHEME.match(source) else source
    if source.startswith("s3://"):
        path = source[len("s3://") :].partition("/")[2]
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name)[-200:].lstrip(".")
    return name or "source"
