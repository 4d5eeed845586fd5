"""Manifest formats: the three a manifest may be in, told by extension or sniffed from its start."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

ManifestFormat = Literal["csv", "tsv", "jsonl"]

FORMATS: tuple[ManifestFormat, ...] = ("csv", "tsv", "jsonl")
STDIN = "-"
"""The manifest source that means standard input."""
_SUFFIXES: dict[str, ManifestFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_S3_SOURCE = re.compile(r"s3://([^/]+)/(.+)", re.DOTALL)


def detect_format(path: str | os.PathLike[str]) -> ManifestFormat | None:
    """The format implied by the file's extension, or None."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def sniff_format(head: bytes) -> ManifestFormat | None:
    """The format of a manifest judged from its first bytes, or None when they are empty.

    ``{`` starting the first non-blank line means JSON Lines; a tab in that line means TSV;
    anything else is taken as CSV (whose own checks then report what is wrong).
    """
    text = head.removeprefix(b"\xef\xbb\xbf")
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(b"{"):
            return "jsonl"
        return "tsv" if b"\t" in line else "csv"
    return None


def is_s3_uri(source: object) -> bool:
    """True when ``source`` names an S3 object (``s3://bucket/key``)."""
    return isinstance(source, str) and source.startswith("s3://")


def s3_key(uri: str) -> str:
    """The key of an ``s3://bucket/key`` URI ("" when it is not one)."""
    match = _S3_SOURCE.fullmatch(uri)
    return match.group(2) if match else ""


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """``(bucket, key)`` of an ``s3://bucket/key`` URI, or None when it is not one."""
    match = _S3_SOURCE.fullmatch(uri)
    return None if match is None else (match.group(1), match.group(2))
