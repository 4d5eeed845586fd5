"""Manifests: CSV, TSV or JSON Lines files listing the reference genomes to import.

Every row becomes an :class:`ImportRequest` remembered with the line it came from. The whole file
is read and checked before anything is sent; every problem is collected as a :class:`FieldError`
naming the file and line (header = line 1, blank lines counted), so a user fixes them all at once::

    manifest = read_manifest("refs.csv", ManifestDefaults(store_id="1234567890", role_arn=arn))
    manifest.raise_for_errors()          # ManifestError listing every bad row
    requests = manifest.requests

Columns (CSV/TSV header) or keys (JSON Lines): ``source_file`` and ``name`` (required),
``description``, ``tags`` (a JSON object, or ``k=v;k2=v2``), and per-row ``store_id``, ``role_arn``,
``region`` overriding the defaults. The API's own names (``sourceFile``, ``referenceStoreId``,
``roleArn``) are accepted too.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from ._errors import FieldError, ManifestError
from ._models import ImportRequest, validate_request

ManifestFormat = Literal["csv", "tsv", "jsonl"]

FORMATS: tuple[ManifestFormat, ...] = ("csv", "tsv", "jsonl")
_SUFFIXES: dict[str, ManifestFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
COLUMNS = ("source_file", "name", "description", "tags", "store_id", "role_arn", "region")
REQUIRED = ("source_file", "name")
_ALIASES = {
    "sourcefile": "source_file",
    "source": "source_file",
    "referencestoreid": "store_id",
    "storeid": "store_id",
    "rolearn": "role_arn",
}
# An unpaired surrogate is what ``errors="surrogateescape"`` leaves for a byte that is not UTF-8.
_SURROGATES = {chr(c) for c in range(0xDC80, 0xDD00)}


@dataclass(frozen=True, slots=True)
class ManifestDefaults:
    """Values for fields a row leaves empty (from command-line flags and the AWS configuration)."""

    store_id: str | None = None
    role_arn: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One valid row and the line it starts on."""

    line: int
    request: ImportRequest


@dataclass(slots=True)
class Manifest:
    """A parsed manifest: its valid rows and every problem found in the others.

    Attributes:
        path: The file read.
        format: ``csv``, ``tsv`` or ``jsonl``.
        rows: The valid rows, in file order.
        errors: Every problem, each with ``source`` and ``line`` set.
        invalid_lines: The lines of rows that were rejected.
    """

    path: Path
    format: ManifestFormat
    rows: list[ManifestRow] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    invalid_lines: set[int] = field(default_factory=set)

    @property
    def requests(self) -> list[ImportRequest]:
        return [row.request for row in self.rows]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise :class:`ManifestError` listing every problem, if there is any."""
        if self.errors:
            raise ManifestError(self.errors)


def format_error(error: FieldError) -> str:
    """``FILE:LINE: field: reason`` (``FILE: field: reason`` for a problem of the whole file)."""
    if error.source is not None and error.line is None:
        return f"{error.source}: {error.field}: {error.reason}"
    return str(error)


def detect_format(path: str | os.PathLike[str]) -> ManifestFormat | None:
    """The format implied by the file's extension, or None."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def read_manifest(
    path: str | os.PathLike[str],
    defaults: ManifestDefaults | None = None,
    *,
    format: ManifestFormat | None = None,
) -> Manifest:
    """Read and validate a whole manifest, collecting every problem.

    Args:
        path: The manifest file.
        defaults: Values for fields rows leave empty.
        format: Overrides the format implied by the extension.

    Returns:
        The valid rows and the errors (check ``manifest.errors`` or call ``raise_for_errors``).

    Raises:
        ManifestError: the format cannot be determined or the file cannot be read.
    """
    path = Path(path)
    source = str(path)
    fmt = format or detect_format(path)
    if fmt is None:
        raise ManifestError(
            [
                FieldError(
                    "format",
                    "cannot tell the format from the extension "
                    "(.csv, .tsv, .jsonl, .ndjson); pass --format csv|tsv|jsonl",
                    source=source,
                )
            ]
        )
    builder = _Builder(path, fmt, defaults or ManifestDefaults())
    try:
        if fmt == "jsonl":
            builder.read_jsonl()
        else:
            builder.read_delimited("\t" if fmt == "tsv" else ",")
    except OSError as exc:
        raise ManifestError([FieldError("file", exc.strerror or str(exc), source=source)]) from exc
    return builder.manifest


class _Builder:
    def __init__(self, path: Path, fmt: ManifestFormat, defaults: ManifestDefaults) -> None:
        self.manifest = Manifest(path, fmt)
        self.source = str(path)
        self.defaults = defaults
        # (region, store id, name) -> first line, to report a name repeated for one store.
        self.seen: dict[tuple[str, str, str], int] = {}
        # Fields reported once for the whole file (a missing column with no default).
        self.file_level: set[str] = set()

    def error(self, line: int | None, name: str, reason: str, row_name: str | None = None) -> None:
        self.manifest.errors.append(FieldError(name, reason, line, self.source, row_name))
        if line is not None:
            self.manifest.invalid_lines.add(line)

    # -- CSV / TSV ------------------------------------------------------------------------------

    def read_delimited(self, delimiter: str) -> None:
        with open(
            self.manifest.path, encoding="utf-8-sig", errors="surrogateescape", newline=""
        ) as f:
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            try:
                header = next(reader, None)
            except csv.Error as exc:
                self.error(1, "header", f"malformed: {exc}")
                return
            if header is None:
                return
            columns = self._header(header)
            if columns is None:
                return
            width = len(header)
            last = reader.line_num
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    self.error(last + 1, "row", f"malformed {self.manifest.format.upper()}: {exc}")
                    last = reader.line_num
                    continue
                line, last = last + 1, reader.line_num
                if not cells or all(not c.strip() for c in cells):
                    continue  # blank lines are skipped (but counted)
                if any(ch in _SURROGATES for cell in cells for ch in cell):
                    self.error(line, "encoding", "not valid UTF-8")
                    continue
                if len(cells) != width:
                    self.error(line, "row", f"has {len(cells)} fields, the header has {width}")
                    continue
                self._row(line, {col: cells[i] for i, col in columns if cells[i] != ""})

    def _header(self, header: list[str]) -> list[tuple[int, str]] | None:
        if any(ch in _SURROGATES for cell in header for ch in cell):
            self.error(1, "encoding", "not valid UTF-8")
            return None
        columns: list[tuple[int, str]] = []
        seen: set[str] = set()
        bad = False
        for i, raw in enumerate(header):
            col = _canonical(raw)
            if col is None:
                # Reported, and the column ignored, so the rows are still checked.
                self.error(1, raw.strip() or f"column {i + 1}", _unknown(raw, "column"))
            elif col in seen:
                self.error(1, col, "column given twice")
                bad = True
            else:
                seen.add(col)
                columns.append((i, col))
        for col in REQUIRED:
            if col not in seen:
                self.error(1, col, "required column is missing")
                bad = True
        self._missing_defaults(seen, 1)
        return None if bad else columns

    def _missing_defaults(self, present: set[str], line: int) -> None:
        for col, default in (
            ("store_id", self.defaults.store_id),
            ("role_arn", self.defaults.role_arn),
        ):
            if col not in present and not default:
                flag = "--" + col.replace("_", "-")
                self.error(line, col, f"no {col} column and no {flag} given")
                self.file_level.add(col)

    # -- JSON Lines -----------------------------------------------------------------------------

    def read_jsonl(self) -> None:
        with open(self.manifest.path, "rb") as f:
            for line, raw in enumerate(f, start=1):
                if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self.error(line, "encoding", f"not valid UTF-8 (byte {exc.start + 1})")
                    continue
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    self.error(line, "json", f"malformed JSON: {exc.msg} (column {exc.colno})")
                    continue
                if not isinstance(obj, dict):
                    self.error(line, "json", f"expected an object, got {type(obj).__name__}")
                    continue
                self._json_row(line, obj)

    def _json_row(self, line: int, obj: dict[str, Any]) -> None:
        values: dict[str, Any] = {}
        bad = False
        for key, value in obj.items():
            col = _canonical(key)
            if col is None:
                self.error(line, key, _unknown(key, "key"))
                bad = True
            elif col in values:
                self.error(line, col, "given twice")
                bad = True
            elif value is None:
                continue
            elif col == "tags":
                values[col] = value
            elif not isinstance(value, str):
                self.error(line, col, f"must be a string, got {type(value).__name__}")
                bad = True
            elif value != "":
                values[col] = value
        missing = [c for c in REQUIRED if c not in values and c not in obj]
        for col in missing:
            self.error(line, col, "is required")
            bad = True
        for col, default in (
            ("store_id", self.defaults.store_id),
            ("role_arn", self.defaults.role_arn),
        ):
            if col not in values and not default and col not in self.file_level:
                flag = "--" + col.replace("_", "-")
                self.error(line, col, f"missing, and no {flag} given")
                bad = True
        if not bad:
            self._row(line, values)

    # -- one row --------------------------------------------------------------------------------

    def _row(self, line: int, values: Mapping[str, Any]) -> None:
        d = self.defaults
        name = values.get("name", "")
        tags, tag_errors = _parse_tags(values.get("tags"))
        errors = [(e.field, e.reason) for e in tag_errors]
        request = ImportRequest(
            store_id=str(values.get("store_id") or d.store_id or ""),
            role_arn=str(values.get("role_arn") or d.role_arn or ""),
            source_file=str(values.get("source_file", "")),
            name=str(name),
            description=values.get("description"),
            tags=MappingProxyType(tags),
            region=values.get("region") or d.region,
            endpoint_url=d.endpoint_url,
            profile=d.profile,
        )
        for e in validate_request(request):
            if e.field in self.file_level and e.field not in values:
                continue  # already reported once for the whole file
            errors.append((e.field, e.reason))
        if request.region is None:
            errors.append(("region", "no region column, no --region and no AWS_REGION configured"))
        key = (request.region or "", request.store_id, request.name)
        first = self.seen.get(key)
        if first is not None:
            errors.append(
                (
                    "name",
                    f"{request.name!r} is repeated for store {request.store_id} "
                    f"(first on line {first})",
                )
            )
        elif not errors:
            self.seen[key] = line
        if errors:
            for field_name, reason in errors:
                self.error(line, field_name, reason, request.name or None)
            return
        self.manifest.rows.append(ManifestRow(line, request))


def _canonical(raw: str) -> str | None:
    key = raw.strip()
    if key in COLUMNS:
        return key
    lowered = key.lower().replace("-", "_")
    if lowered in COLUMNS:
        return lowered
    return _ALIASES.get(lowered.replace("_", ""))


def _unknown(raw: str, what: str) -> str:
    return f"unknown {what} {raw.strip()!r} (expected: {', '.join(COLUMNS)})"


def _parse_tags(value: Any) -> tuple[dict[str, str], list[FieldError]]:
    if value is None or value == "":
        return {}, []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                return {}, [FieldError("tags", f"malformed JSON object: {exc.msg}")]
        else:
            return _parse_pairs(text)
    if not isinstance(value, dict):
        return {}, [FieldError("tags", "must be an object of string values or k=v;k2=v2")]
    tags: dict[str, str] = {}
    errors: list[FieldError] = []
    for k, v in value.items():
        if not isinstance(v, str):
            errors.append(FieldError(f"tags.{k}", f"must be a string, got {type(v).__name__}"))
        else:
            tags[str(k)] = v
    return tags, errors


def _parse_pairs(text: str) -> tuple[dict[str, str], list[FieldError]]:
    tags: dict[str, str] = {}
    errors: list[FieldError] = []
    for piece in _split(text):
        key, sep, val = piece.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(FieldError("tags", f"{piece!r} is not k=v (use k=v;k2=v2 or JSON)"))
        elif key in tags:
            errors.append(FieldError(f"tags.{key}", "given twice"))
        else:
            tags[key] = val.strip()
    return tags, errors


def _split(text: str) -> Iterator[str]:
    for piece in text.split(";"):
        if piece.strip():
            yield piece.strip()
