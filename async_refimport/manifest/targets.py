"""Targets files: the stores one manifest is imported into (``refimport import --targets``).

A targets file is CSV (TSV when its name ends with ``.tsv``) with a header and one store a row::

    store_id,region,role_arn,profile,endpoint_url,staging
    1234567890,us-east-1,arn:aws:iam::111122223333:role/Import,,,s3://refs-use1/staging/
    2345678901,eu-west-1,arn:aws:iam::111122223333:role/Import,,,s3://refs-euw1/staging/

``store_id``, ``region`` and ``role_arn`` are required on every row; ``profile``,
``endpoint_url`` and ``staging`` (``s3://bucket/prefix/``: where sources from elsewhere are staged
for the stores of that row's Region) are optional. Each field is checked as a manifest row's is
(the same checks: store id, Region, role ARN, endpoint URL, profile), a store given twice (same
store id and Region) is refused, and every problem is reported at once as a
:class:`~async_refimport._errors.FieldError` naming the file, the line and the field.

Two targets of one Region may name different staging areas (stores of two accounts, whose roles
read their own account's bucket); the staging column is the target's own.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from async_refimport._errors import FieldError, ManifestError
from async_refimport._models import ImportRequest, StoreRef, printable, quoted, validate_request

__all__ = ["TARGET_COLUMNS", "TARGET_FIELDS", "Target", "read_targets"]

TARGET_COLUMNS = ("store_id", "region", "role_arn", "profile", "endpoint_url", "staging")
"""The columns of a targets file, required ones first."""

TARGET_FIELDS = ("store_id", "region", "role_arn", "profile", "endpoint_url")
"""The manifest fields a targets file decides: a manifest row may not set them with ``--targets``."""

_REQUIRED = ("store_id", "region", "role_arn")
_WHAT = {
    "store_id": "the reference store's id",
    "region": "the store's Region",
    "role_arn": "the IAM role HealthOmics assumes to read this store's sources",
}
_ALIASES = {
    "storeid": "store_id",
    "referencestoreid": "store_id",
    "rolearn": "role_arn",
    "endpointurl": "endpoint_url",
    "awsprofile": "profile",
    "stagingarea": "staging",
}
# S3's rules for a general purpose bucket's name: 3..63 of a-z 0-9 . -, a letter or a digit at
# both ends (the same as the staging package's and the manifest's source checks).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_STAGING_FORM = "expected s3://bucket/prefix/"
# A placeholder source and name for the manifest's checks, which take a whole request: only the
# target's own fields' problems are kept.
_PLACEHOLDER_SOURCE = "s3://placeholder/placeholder.fa"
_PLACEHOLDER_NAME = "placeholder"


@dataclass(frozen=True, slots=True)
class Target:
    """One store of a targets file.

    Attributes:
        store_id: The reference store's id.
        region: Its Region.
        role_arn: The IAM role HealthOmics assumes to read the sources of this store.
        profile: The AWS profile to call the store with, or ``None`` (the default chain).
        endpoint_url: A custom HealthOmics endpoint, or ``None`` (AWS).
        staging: ``s3://bucket/prefix/`` (always ending with ``/``, or ``s3://bucket/``) where
            sources from elsewhere are staged for this store, or ``None``. The bucket should be
            in ``region``; ``async_refimport.staging.parse_area_uri(region, staging)`` accepts it.
        line: The line of the targets file it was read from.
    """

    store_id: str
    region: str
    role_arn: str
    profile: str | None = None
    endpoint_url: str | None = None
    staging: str | None = None
    line: int = 0

    def store(self) -> StoreRef:
        """The store as the engine names it.

        Returns:
            Its store id, Region, endpoint and profile.
        """
        return StoreRef(self.store_id, self.region, self.endpoint_url, self.profile)

    def request_for(self, request: ImportRequest) -> ImportRequest:
        """``request`` (a manifest row) sent to this store.

        Args:
            request: A manifest row's request.

        Returns:
            The same request with this target's store id, Region, role, profile and endpoint.
        """
        return replace(
            request,
            store_id=self.store_id,
            region=self.region,
            role_arn=self.role_arn,
            profile=self.profile,
            endpoint_url=self.endpoint_url,
        )


def read_targets(path: str | os.PathLike[str]) -> list[Target]:
    """Read and check a targets file.

    Args:
        path: The file (CSV; TSV when its name ends with ``.tsv``).

    Returns:
        The targets, in file order (at least one).

    Raises:
        ManifestError: the file cannot be read, or has problems; ``errors`` lists every one, each
            naming the file, the line (none for a problem of the whole file) and the field.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError([FieldError("file", exc.strerror or str(exc), source=name)]) from exc
    reader = _TargetsReader(name, "\t" if name.lower().endswith(".tsv") else ",")
    targets = reader.read(data)
    if reader.errors:
        raise ManifestError(reader.errors)
    return targets


class _TargetsReader:
    """Reads one targets file, collecting every problem."""

    def __init__(self, source: str, delimiter: str) -> None:
        self.source = source
        self.delimiter = delimiter
        self.errors: list[FieldError] = []
        self.seen: dict[tuple[str, str], int] = {}

    def error(self, line: int | None, field: str, reason: str) -> None:
        self.errors.append(FieldError(field, reason, line, self.source))

    def read(self, data: bytes) -> list[Target]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.error(None, "encoding", f"not valid UTF-8 (byte {exc.start + 1})")
            return []
        records = self._records(text)
        header = next(records, None)
        if header is None:
            self.error(None, "file", "is empty: no targets")
            return []
        columns = self._header(*header)
        if columns is None:
            return []
        targets: list[Target] = []
        for line, cells in records:
            if len(cells) != len(header[1]):
                self.error(line, "row", f"has {len(cells)} fields, the header has {len(header[1])}")
                continue
            target = self._row(line, {col: cells[i] for i, col in columns if cells[i] != ""})
            if target is not None:
                targets.append(target)
        if not targets and not self.errors:
            self.error(None, "file", "has a header but no targets")
        return targets

    def _records(self, text: str) -> Iterator[tuple[int, list[str]]]:
        """The non-blank records, each with the line it starts on; stops at a malformed one."""
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
        last = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.error(last + 1, "row", f"malformed: {exc}")
                return
            line, last = last + 1, reader.line_num
            if any(c.strip() for c in cells):
                yield line, cells

    def _header(self, line: int, cells: list[str]) -> list[tuple[int, str]] | None:
        columns: list[tuple[int, str]] = []
        seen: set[str] = set()
        for i, raw in enumerate(cells):
            col = _canonical(raw)
            shown = printable(raw.strip()) or f"column {i + 1}"
            if col is None:
                expected = ", ".join(TARGET_COLUMNS)
                self.error(line, shown, f"unknown column (expected: {expected})")
            elif col in seen:
                self.error(line, col, "column given twice")
            else:
                seen.add(col)
                columns.append((i, col))
        for col in _REQUIRED:
            if col not in seen:
                self.error(line, col, "required column is missing")
        return None if self.errors else columns

    def _row(self, line: int, values: dict[str, str]) -> Target | None:
        before = len(self.errors)
        for col in _REQUIRED:
            if col not in values:
                self.error(line, col, f"is required: {_WHAT[col]}")
        probe = ImportRequest(
            store_id=values.get("store_id", "0000000000"),
            role_arn=values.get("role_arn", "arn:aws:iam::000000000000:role/placeholder"),
            source_file=_PLACEHOLDER_SOURCE,
            name=_PLACEHOLDER_NAME,
            region=values.get("region"),
            endpoint_url=values.get("endpoint_url"),
            profile=values.get("profile"),
        )
        for e in validate_request(probe):
            if e.field in values:
                self.error(line, e.field, e.reason)
        staging = values.get("staging")
        if staging is not None:
            staging = self._staging(line, staging)
        if len(self.errors) > before:
            return None
        key = (values["store_id"], values["region"])
        first = self.seen.setdefault(key, line)
        if first != line:
            self.error(
                line,
                "store_id",
                f"store {key[0]} in {key[1]} is given twice (first on line {first})",
            )
            return None
        return Target(
            store_id=values["store_id"],
            region=values["region"],
            role_arn=values["role_arn"],
            profile=values.get("profile"),
            endpoint_url=values.get("endpoint_url"),
            staging=staging,
            line=line,
        )

    def _staging(self, line: int, value: str) -> str | None:
        """The staging URI, ending with ``/``; or None, its problem recorded."""
        if not value.isprintable() or value != value.strip():
            self.error(line, "staging", f"{quoted(value)}: must be one s3:// URI ({_STAGING_FORM})")
            return None
        if not value.startswith("s3://"):
            self.error(line, "staging", f"{quoted(value)} is not an s3:// URI ({_STAGING_FORM})")
            return None
        bucket, _, prefix = value[len("s3://") :].partition("/")
        if not _BUCKET.fullmatch(bucket):
            self.error(line, "staging", f"{quoted(bucket)} is not an S3 bucket name")
            return None
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if prefix.startswith("/") or "//" in prefix or " " in prefix:
            self.error(
                line, "staging", f"{quoted(value)}: the prefix has an empty segment or a space"
            )
            return None
        return f"s3://{bucket}/{prefix}"


def _canonical(raw: str) -> str | None:
    key = raw.strip().lower().replace("-", "_")
    if key in TARGET_COLUMNS:
        return key
    return _ALIASES.get(key.replace("_", ""))
