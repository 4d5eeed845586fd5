"""Manifest rows: reading CSV, TSV or JSON Lines into checked :class:`ImportRequest` s.

:class:`RowBuilder` reads one manifest's rows, collecting every problem as a :class:`FieldError`
naming its line; :func:`parse` reads a whole manifest with it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import IO, Any

from async_refimport._errors import FieldError
from async_refimport._models import QUOTED_MAX, ImportRequest, validate_request
from async_refimport.manifest.formats import ManifestFormat
from async_refimport.manifest.model import REMOTE_REFUSED, Manifest, ManifestDefaults, RemoteLimits

COLUMNS = (
    "source_file",
    "name",
    "description",
    "tags",
    "store_id",
    "role_arn",
    "region",
    "profile",
    "endpoint_url",
    "md5",
)
REQUIRED = ("source_file", "name")
_ALIASES = {
    "sourcefile": "source_file",
    "source": "source_file",
    "referencestoreid": "store_id",
    "storeid": "store_id",
    "rolearn": "role_arn",
    "endpointurl": "endpoint_url",
    "awsprofile": "profile",
    "sourcemd5": "md5",
}
# Fields a row may take from the defaults; the others come from the row only.
_DEFAULTED = ("store_id", "role_arn", "region", "profile", "endpoint_url")
# Distinct tag maps shared between rows: most manifests repeat a handful of them on every row.
_SHARED_TAG_MAPS = 4096
_SHARED_VALUES = 4096
_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


def parse(
    stream: IO[bytes],
    source: str,
    fmt: ManifestFormat,
    defaults: ManifestDefaults,
    ignore_unknown_columns: bool,
    remote: RemoteLimits | None = None,
) -> Manifest:
    """Read a whole manifest from ``stream``: its valid rows and every problem.

    Args:
        stream: The manifest's bytes.
        source: Its name in errors.
        fmt: Its format.
        defaults: Values for fields rows leave empty.
        ignore_unknown_columns: Skip unknown columns (keys) instead of refusing them.
        remote: What a remote client's rows may set, if they are a remote client's.

    Returns:
        The manifest.
    """
    builder = RowBuilder(source, fmt, defaults, ignore_unknown_columns, remote=remote)
    manifest = builder.manifest
    for line, request in builder.rows(stream):
        manifest.requests.append(request)
        manifest.lines.append(line)
    if manifest.refused:  # no row of it is imported, invalid rows skipped or not
        manifest.requests.clear()
        del manifest.lines[:]
    return manifest


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _loads(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` or ``(None, why the text is refused)``: never raises."""
    try:
        return _DECODER.decode(text), None
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} (column {exc.colno})"
    except _DuplicateKey as exc:
        return None, f"key {_shown(exc.key)!r} is given twice in one object"
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as exc:  # e.g. an integer over the interpreter's digit limit
        return None, f"malformed JSON: {exc}"


def decode_json(text: str) -> tuple[Any, str | None]:
    """One JSON document decoded as a JSON Lines row is: a key given twice in one object, too
    deep a nesting or too long an integer is refused, as malformed JSON is. For the intakes that
    receive JSON of their own (an SQS message), so every intake refuses the same documents.

    Args:
        text: The JSON text.

    Returns:
        ``(value, None)``, or ``(None, why the text is refused)``; never raises.
    """
    return _loads(text)


def _shown(text: str) -> str:
    """``text`` fit to stand in one line of an error message (no line breaks or controls, no
    more than a few dozen characters of a huge value)."""
    if len(text) > QUOTED_MAX:
        return f"{_shown(text[:QUOTED_MAX])}... ({len(text)} characters)"
    if text.isprintable():
        return text
    return repr(text)[1:-1]


def _field(name: str) -> str:
    """A field's name as an error shows it: never blank, never more than one line."""
    return _shown(name) if name.strip() else repr(name)


class RowBuilder:
    """Reads one manifest's rows into requests, collecting every problem in :attr:`manifest`.

    Args:
        source: The manifest's name in errors.
        fmt: Its format.
        defaults: Values for fields rows leave empty.
        ignore_unknown_columns: Skip unknown columns (keys) instead of refusing them.
        replay: Reading a checked manifest again (``CheckedManifest.chunks``): no problem is
            recorded twice.
        remote: What a remote client's rows may set, if they are a remote client's.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        fmt: ManifestFormat,
        defaults: ManifestDefaults,
        ignore_unknown_columns: bool = False,
        *,
        replay: bool = False,
        remote: RemoteLimits | None = None,
    ) -> None:
        self.source = str(source)
        self.remote = remote
        # Reading a checked manifest again (CheckedManifest.chunks): its errors are known, and
        # its repeated names too (the lines of those rows are skipped by the caller).
        self.replay = replay
        self.manifest = Manifest(self.source, fmt)
        self.defaults = defaults
        self.ignore_unknown = ignore_unknown_columns
        # (region, store id) -> name -> first line, to report a name repeated for one store
        # (a dict per store rather than a tuple key per row: 64 bytes less a row).
        self.seen: dict[tuple[str, str], dict[str, int]] = {}
        # The same for the names that are not in Unicode NFC, by their NFC form.
        self.folded: dict[tuple[str, str], dict[str, int]] = {}
        # Fields reported once for the whole file (a missing column with no default).
        self.file_level: set[str] = set()
        self.has_header = False
        self.header_line = 1
        # A header so broken that no row could be read (a required column missing ...).
        self.header_fatal = False
        # Non-blank lines after the header (every line of JSON Lines): rows, valid or not.
        self.data_lines = 0
        # Equal values shared between rows instead of one copy per row (memory of big manifests).
        self.shared: dict[str, str] = {}
        self.tag_maps: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}

    def error(self, line: int | None, name: str, reason: str, row_name: str | None = None) -> None:
        """Record a problem of a row (of the file when ``line`` is None); nothing on a replay."""
        if self.replay:
            return
        self.manifest.errors.append(FieldError(_field(name), reason, line, self.source, row_name))
        if line is not None:
            self.manifest.invalid_lines.add(line)

    def header_error(self, name: str, reason: str) -> None:
        """Record a problem of the CSV/TSV header."""
        # A CSV header is not a row: it is reported but not counted among invalid rows.
        self.manifest.errors.append(FieldError(_shown(name), reason, self.header_line, self.source))

    def rows(self, stream: IO[bytes]) -> Iterator[tuple[int, ImportRequest]]:
        """The valid rows, each with the line it starts on, as they are read; the problems of
        the others go to ``manifest.errors``."""
        if self.manifest.format == "jsonl":
            yield from self.read_jsonl(stream)
        else:
            yield from self.read_delimited(stream, "\t" if self.manifest.format == "tsv" else ",")
        self.finish()

    def finish(self) -> None:
        """Refuse a manifest without a single row: a run that imports nothing is a mistake."""
        if self.data_lines or self.header_fatal:
            return  # rows were read, or a broken header already says why none could be
        if self.has_header:
            reason = "has a header but no rows"
        else:
            reason = "is empty: no rows to import"
        self.manifest.errors.append(FieldError("file", reason, None, self.source))

    # -- CSV / TSV ------------------------------------------------------------------------------

    def read_delimited(
        self, stream: IO[bytes], delimiter: str
    ) -> Iterator[tuple[int, ImportRequest]]:
        """The valid rows of a CSV (``,``) or TSV (tab) manifest, with their lines."""
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield from self._read_delimited(text, delimiter)
        finally:
            text.detach()  # the caller's stream stays open: it may be checked, or read again

    def _read_delimited(
        self, text: io.TextIOWrapper, delimiter: str
    ) -> Iterator[tuple[int, ImportRequest]]:
        self._lines = _QuoteCounter(text)
        reader = csv.reader(self._lines, delimiter=delimiter, strict=True)
        header: list[str] | None = None
        while header is None:
            start = reader.line_num + 1
            self._lines.quotes = 0
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                self.header_line = start
                if self._lines.quotes % 2:
                    end = reader.line_num
                    self.header_error(
                        "header",
                        f"the quote opened on line {start} is never closed (lines "
                        f"{start}-{end} would be one field): {exc}",
                    )
                else:
                    self.header_error("header", f"malformed: {exc}")
                self.header_fatal = self.manifest.refused = True
                return
            if cells is None:
                return  # nothing but blank lines: reported by finish()
            if any(c.strip() for c in cells):
                header = cells
        # Blank lines before the header are skipped, and counted, like blank lines between rows.
        self.header_line = reader.line_num
        self.has_header = True
        columns = self._header(header)
        if columns is None:
            # No row can be read: the file is refused whole, invalid rows skipped or not.
            self.header_fatal = self.manifest.refused = True
            return
        width = len(header)
        for line, cells in self._records(reader):
            if not cells or all(not c.strip() for c in cells):
                continue  # blank lines are skipped (but counted)
            self.data_lines += 1
            if not _utf8(cells):
                self.error(line, "encoding", "not valid UTF-8")
                continue
            if len(cells) != width:
                self.error(line, "row", f"has {len(cells)} fields, the header has {width}")
                continue
            request = self._row(line, {col: cells[i] for i, col in columns if cells[i] != ""})
            if request is not None:
                yield line, request

    def _records(self, reader: Any) -> Iterator[tuple[int, list[str]]]:
        """The records after the header, each with the line it starts on; a malformed one is
        recorded as its row's problem, or as the whole file's when a quote opened in it is never
        closed (:meth:`_malformed`)."""
        last = reader.line_num
        # A malformed record is judged once the next one is read: only then is it known whether
        # it ran to the end of the file.
        pending: tuple[int, int, csv.Error] | None = None
        while True:
            self._lines.quotes = 0
            try:
                cells = next(reader)
            except StopIteration:
                if pending is not None:
                    self._malformed(*pending, at_end=True)
                return
            except csv.Error as exc:
                if pending is not None:
                    self._malformed(*pending, at_end=False)
                self.data_lines += 1
                # An odd number of quotes in its lines: one opened was never closed.
                pending = (last + 1, reader.line_num, exc) if self._lines.quotes % 2 else None
                if pending is None:
                    self._malformed(last + 1, reader.line_num, exc, at_end=False)
                last = reader.line_num
                continue
            if pending is not None:
                self._malformed(*pending, at_end=False)
                pending = None
            line, last = last + 1, reader.line_num
            yield line, cells

    def _malformed(self, line: int, end: int, exc: csv.Error, *, at_end: bool) -> None:
        """Record the malformed record on lines ``line``-``end``.

        One that ran over several lines to the end of the file holds a quote never closed: the
        rows it took in would be reported nowhere (``--skip-invalid`` or not), so the whole file
        is refused, naming the line the quote opened on.
        """
        if self.replay:
            return
        if at_end and end > line:
            self.manifest.refused = True
            self.manifest.errors.append(
                FieldError(
                    "file",
                    f"the quote opened on line {line} is never closed: lines {line}-{end} (the "
                    'rest of the file) would be one field; close it, or double it ("")',
                    line,
                    self.source,
                )
            )
            return
        span = f" (lines {line}-{end})" if end > line else ""
        self.error(line, "row", f"malformed {self.manifest.format.upper()}{span}: {exc}")

    def _header(self, header: list[str]) -> list[tuple[int, str]] | None:
        if not _utf8(header):
            self.header_error("encoding", "not valid UTF-8")
            return None
        columns: list[tuple[int, str]] = []
        seen: set[str] = set()
        bad = False
        for i, raw in enumerate(header):
            col = _canonical(raw)
            if col is None:
                if self.ignore_unknown:
                    self.manifest.ignored_columns.add(raw.strip() or f"column {i + 1}")
                else:
                    # Reported, and the column ignored, so the rows are still checked.
                    self.header_error(raw.strip() or f"column {i + 1}", _unknown(raw, "column"))
            elif col in seen:
                self.header_error(col, "column given twice")
                bad = True
            else:
                seen.add(col)
                columns.append((i, col))
        for col in REQUIRED:
            if col not in seen:
                self.header_error(col, "required column is missing")
                bad = True
        for col, flag in self._missing_defaults(seen):
            self.header_error(col, f"no {col} column and no {flag} given")
            self.file_level.add(col)
        return None if bad else columns

    def _missing_defaults(self, present: Iterable[str]) -> Iterator[tuple[str, str]]:
        for col, default in (
            ("store_id", self.defaults.store_id),
            ("role_arn", self.defaults.role_arn),
        ):
            if col not in present and not default:
                yield col, "--" + col.replace("_", "-")

    # -- JSON Lines -----------------------------------------------------------------------------

    def read_jsonl(self, stream: IO[bytes]) -> Iterator[tuple[int, ImportRequest]]:
        """The valid rows of a JSON Lines manifest, with their lines."""
        for line, raw in enumerate(stream, start=1):
            if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.data_lines += 1
                self.error(line, "encoding", f"not valid UTF-8 (byte {exc.start + 1})")
                continue
            if not text.strip():
                continue
            self.data_lines += 1
            obj, problem = _loads(text)
            if problem is not None:
                self.error(line, "json", problem)
            elif not isinstance(obj, dict):
                self.error(line, "json", f"expected an object, got {type(obj).__name__}")
            elif (request := self.json_row(line, obj)) is not None:
                yield line, request

    def json_row(self, line: int, obj: dict[str, Any]) -> ImportRequest | None:
        """The request of one JSON object (a JSON Lines row), or None when it is refused."""
        values: dict[str, Any] = {}
        bad = False
        for key, value in obj.items():
            col = _canonical(key)
            if col is None:
                if self.ignore_unknown:
                    self.manifest.ignored_columns.add(_shown(key))
                else:
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
        for col in REQUIRED:
            if col not in values and col not in obj:
                self.error(line, col, "is required")
                bad = True
        if self.file_level:
            present: Iterable[str] = set(values) | self.file_level
        else:
            present = values
        for col, flag in self._missing_defaults(present):
            self.error(line, col, f"missing, and no {flag} given")
            bad = True
        return None if bad else self._row(line, values)

    # -- one row --------------------------------------------------------------------------------

    def _share(self, value: str | None) -> str | None:
        if value is None:
            return None
        shared = self.shared.get(value)
        if shared is None:
            shared = value
            if len(self.shared) < _SHARED_VALUES:
                self.shared[value] = value
        return shared

    def _tags(self, value: Any) -> tuple[Mapping[str, str], list[FieldError]]:
        tags, errors = _parse_tags(value)
        if not tags:
            return _EMPTY_TAGS, errors
        key = tuple(tags.items())
        shared = self.tag_maps.get(key)
        if shared is None:
            shared = MappingProxyType(tags)
            if len(self.tag_maps) < _SHARED_TAG_MAPS:
                self.tag_maps[key] = shared
        return shared, errors

    def _row(self, line: int, values: Mapping[str, Any]) -> ImportRequest | None:
        d = self.defaults
        tags, tag_errors = self._tags(values.get("tags"))
        errors = [(e.field, e.reason) for e in tag_errors]
        if self.remote is not None:
            errors.extend(self._remote_errors(values))
        errors.extend(
            (col, "is decided by the targets file (--targets): a manifest row may not set it")
            for col in d.fixed
            if col in values
        )
        given = {col: values.get(col) or getattr(d, col) for col in _DEFAULTED}
        request = ImportRequest(
            store_id=self._share(given["store_id"]) or "",
            role_arn=self._share(given["role_arn"]) or "",
            source_file=values.get("source_file", ""),
            name=values.get("name", ""),
            description=values.get("description"),
            tags=tags,
            region=self._share(given["region"]),
            endpoint_url=self._share(given["endpoint_url"]),
            profile=self._share(given["profile"]),
            source_md5=(values.get("md5") or "").lower() or None,
        )
        stageable = d.stageable and self.remote is None
        for e in validate_request(request, stageable=stageable):
            if e.field in self.file_level and e.field not in values:
                continue  # already reported once for the whole file
            if e.field == "source_file" and any(f == "source_file" for f, _ in errors):
                continue  # a remote client's source, refused above
            # The request's source_md5 is the manifest's md5 column.
            errors.append(("md5" if e.field == "source_md5" else e.field, e.reason))
        if request.region is None:
            errors.append(("region", "no region column, no --region and no AWS_REGION configured"))
        if not self.replay:
            errors.extend(self._repeated(line, request, remember=not errors))
        if errors:
            row_name = request.name if isinstance(request.name, str) and request.name else None
            for field_name, reason in errors:
                self.error(line, field_name, reason, row_name)
            return None
        return request

    def _repeated(
        self, line: int, request: ImportRequest, *, remember: bool
    ) -> Iterator[tuple[str, str]]:
        """The problem of a name given before for the same store, in the same spelling or in
        another Unicode normalization (NFC and NFD spell "é" differently, and the service takes
        them for two names); ``remember``: a valid row's name is remembered."""
        key = (request.region or "", request.store_id)
        names = self.seen.get(key)
        if names is None:
            names = self.seen[key] = {}
        name = request.name
        first = names.get(name)
        if first is not None:
            yield (
                "name",
                f"{_shown(name)!r} is repeated for store {request.store_id} "
                f"(first on line {first})",
            )
            return
        # Only names that are not NFC are kept a second time, by their NFC form: most names
        # (ASCII ones) cost nothing more.
        folded = self.folded.setdefault(key, {})
        normal = unicodedata.normalize("NFC", name)
        first = folded.get(normal) if normal == name else names.get(normal, folded.get(normal))
        if first is not None:
            yield (
                "name",
                f"{_shown(name)!r} is the name on line {first} for store {request.store_id} in "
                "another Unicode normalization (NFC/NFD): the service would keep both",
            )
        elif remember:
            names[name] = line
            if normal != name:
                folded.setdefault(normal, line)

    def _remote_errors(self, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        assert self.remote is not None
        for col in REMOTE_REFUSED:
            if col in values:
                yield (
                    col,
                    "cannot be set by a remote client (the worker's own configuration decides)",
                )
        source = values.get("source_file")
        if isinstance(source, str) and source and not source.startswith("s3://"):
            # The worker never fetches a client's URL (SSRF) nor reads its own disk for one.
            yield (
                "source_file",
                "a remote client's source must be s3://bucket/key: the worker does not stage "
                "http(s)://, file:// or local sources (refimport import --staging does)",
            )
        allowed = self.remote.stores
        store_id = values.get("store_id") or self.defaults.store_id
        if allowed is not None and store_id and store_id not in allowed:
            yield (
                "store_id",
                f"{_shown(str(store_id))!r} is not a store this worker serves "
                f"(--allow-store: {', '.join(sorted(allowed))})",
            )


class _QuoteCounter:
    """The lines of a text, counting the quotes (``"``) read since :attr:`quotes` was reset: an
    odd count in a malformed record's lines means a quote opened in it was never closed."""

    def __init__(self, text: Iterable[str]) -> None:
        self._text = iter(text)
        self.quotes = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._text)
        if '"' in line:
            self.quotes += line.count('"')
        return line


def _utf8(cells: list[str]) -> bool:
    # The text was decoded with errors="surrogateescape": a byte that is not UTF-8 became an
    # unpaired surrogate, which encoding back (at C speed) refuses.
    try:
        "".join(cells).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _canonical(raw: str) -> str | None:
    key = raw.strip()
    if key in COLUMNS:
        return key
    lowered = key.lower().replace("-", "_")
    if lowered in COLUMNS:
        return lowered
    return _ALIASES.get(lowered.replace("_", ""))


def _unknown(raw: str, what: str) -> str:
    return f"unknown {what} {_shown(raw.strip())!r} (expected: {', '.join(COLUMNS)})"


def _parse_tags(value: Any) -> tuple[dict[str, str], list[FieldError]]:
    if value is None or value == "":
        return {}, []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value, problem = _loads(text)
            if problem is not None:
                return {}, [FieldError("tags", problem)]
        else:
            return _parse_pairs(text)
    if not isinstance(value, dict):
        return {}, [FieldError("tags", "must be an object of string values or k=v;k2=v2")]
    tags: dict[str, str] = {}
    errors: list[FieldError] = []
    for k, v in value.items():
        if not isinstance(v, str):
            errors.append(
                FieldError(f"tags.{_shown(k)}", f"must be a string, got {type(v).__name__}")
            )
        else:
            tags[k] = v
    return tags, errors


def _parse_pairs(text: str) -> tuple[dict[str, str], list[FieldError]]:
    tags: dict[str, str] = {}
    errors: list[FieldError] = []
    for piece in _split(text):
        key, sep, val = piece.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(
                FieldError("tags", f"{_shown(piece)!r} is not k=v (use k=v;k2=v2 or JSON)")
            )
        elif key in tags:
            errors.append(FieldError(f"tags.{_shown(key)}", "given twice"))
        else:
            tags[key] = val.strip()
    return tags, errors


def _split(text: str) -> Iterator[str]:
    for piece in text.split(";"):
        if piece.strip():
            yield piece.strip()
