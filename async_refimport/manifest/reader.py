"""Manifests: CSV, TSV or JSON Lines listing the reference genomes to import, from a file, from
standard input or from S3.

Every row becomes an :class:`ImportRequest` remembered with the line it came from. The whole
manifest is read and checked before anything is sent; every problem is collected as a
:class:`FieldError` naming the source and line (header = line 1, blank lines counted), so a user
fixes them all at once::

    manifest = read_manifest("refs.csv", ManifestDefaults(store_id="1234567890", role_arn=arn))
    manifest.raise_for_errors()          # ManifestError listing every bad row
    requests = manifest.requests

``read_manifest`` takes a path, ``"-"`` (standard input) or an ``s3://bucket/key`` URI (read with
the caller's AWS credentials); from async code, ``await load_manifest(...)`` does the same without
blocking the event loop. Without an extension to go by (standard input, an S3 key such as
``sheet``) the format is sniffed from the first line: ``{`` starts JSON Lines, a tab makes TSV,
otherwise CSV.

Columns (CSV/TSV header) or keys (JSON Lines): ``source_file`` and ``name`` (required),
``description``, ``tags`` (a JSON object, or ``k=v;k2=v2``), and per-row ``store_id``,
``role_arn``, ``region``, ``profile`` and ``endpoint_url`` overriding the defaults (so one manifest
can fan out over several accounts). The API's own names (``sourceFile``, ``referenceStoreId``,
``roleArn``) are accepted too. Other columns are refused unless ``ignore_unknown_columns`` is set
(sample sheets carry ``sample_id`` and the like); the ignored names are listed in
``Manifest.ignored_columns``.

What is refused, besides rows the service would refuse: an empty manifest, or one with a header
and no rows; a JSON object that gives one key twice (``{"name": "a", "name": "b"}``: JSON parsers
disagree on which wins); JSON nested deeper than anything a manifest needs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Literal

from async_refimport._errors import FieldError, ManifestError
from async_refimport._models import QUOTED_MAX, ImportRequest, validate_request

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
}
# Fields a row may take from the defaults; the others come from the row only.
_DEFAULTED = ("store_id", "role_arn", "region", "profile", "endpoint_url")
_S3_SOURCE = re.compile(r"s3://([^/]+)/(.+)", re.DOTALL)
# Distinct tag maps shared between rows: most manifests repeat a handful of them on every row.
_SHARED_TAG_MAPS = 4096
_SHARED_VALUES = 4096
_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})
# Errors printed in full before "... and N more" (see format_errors).
PRINTED_ERRORS = 100


@dataclass(frozen=True, slots=True)
class ManifestDefaults:
    """Values for fields a row leaves empty (from command-line flags and the AWS configuration)."""

    store_id: str | None = None
    role_arn: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteLimits:
    """What a remote client (the worker's HTTP API, its SQS queue) may set in a row.

    A remote row names only its store, name, source, description, tags, Region and role. The
    endpoint and the AWS profile are never a client's to choose: the worker signs its calls with
    its own credentials, and an endpoint chosen by a client would receive them. They come from the
    worker's own configuration (its flags and environment).

    Attributes:
        stores: The store ids a remote row may name (the worker's ``--allow-store`` and
            ``--store-id``); ``None`` lets a row name any store.
    """

    stores: frozenset[str] | None = None


REMOTE_REFUSED = ("endpoint_url", "profile")
"""Row fields a remote client may not set (see :class:`RemoteLimits`)."""


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One valid row and the line it starts on."""

    line: int
    request: ImportRequest


@dataclass(slots=True)
class Manifest:
    """A parsed manifest: its valid rows and every problem found in the others.

    Attributes:
        source: What was read: a path, ``-`` for standard input, or an ``s3://`` URI.
        format: ``csv``, ``tsv`` or ``jsonl``.
        requests: The valid rows' requests, in manifest order.
        lines: The line each of ``requests`` starts on.
        errors: Every problem, each with ``source`` set (and ``line``, unless it concerns the
            whole manifest).
        invalid_lines: The lines of rows that were rejected (a CSV header is not a row).
        ignored_columns: Unknown columns or keys skipped under ``ignore_unknown_columns``.
    """

    source: str
    format: ManifestFormat
    requests: list[ImportRequest] = field(default_factory=list)
    # Four bytes a line instead of a Python int and a row object: a manifest can hold 10^5+ rows.
    lines: array[int] = field(default_factory=lambda: array("L"))
    errors: list[FieldError] = field(default_factory=list)
    invalid_lines: set[int] = field(default_factory=set)
    ignored_columns: set[str] = field(default_factory=set)

    @property
    def path(self) -> Path:
        """``source`` as a path (meaningful for a manifest read from a file)."""
        return Path(self.source)

    @property
    def rows(self) -> list[ManifestRow]:
        """The valid rows with their lines (built on demand)."""
        return [ManifestRow(line, r) for line, r in zip(self.lines, self.requests, strict=True)]

    @property
    def invalid_rows(self) -> int:
        """How many rows were rejected: what ``--skip-invalid`` skips."""
        return len(self.invalid_lines)

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


def format_errors(errors: Sequence[FieldError], limit: int = PRINTED_ERRORS) -> list[str]:
    """The first ``limit`` errors as lines, then one line saying how many more there are.

    Printing hundreds of thousands of errors takes longer than fixing the cause; the first ones
    show it.
    """
    shown = [format_error(e) for e in errors[:limit]]
    if len(errors) > limit:
        shown.append(f"... and {len(errors) - limit} more problem(s) not shown")
    return shown


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


def read_manifest(
    source: str | os.PathLike[str],
    defaults: ManifestDefaults | None = None,
    *,
    format: ManifestFormat | None = None,
    ignore_unknown_columns: bool = False,
    stdin: IO[bytes] | None = None,
) -> Manifest:
    """Read and validate a whole manifest, collecting every problem.

    Args:
        source: A path, ``"-"`` for standard input, or ``s3://bucket/key``. An S3 object is read
            with the AWS credentials of ``defaults.profile`` (or the default chain); the standard
            ``AWS_ENDPOINT_URL_S3`` variable points it elsewhere. From a running event loop use
            :func:`load_manifest` instead.
        defaults: Values for fields rows leave empty.
        format: Overrides the format implied by the extension (or sniffed).
        ignore_unknown_columns: Skip columns (keys) that are not manifest fields instead of
            refusing them.
        stdin: The stream ``"-"`` reads (default: the process's standard input).

    Returns:
        The valid rows and the errors (check ``manifest.errors`` or call ``raise_for_errors``).

    Raises:
        ManifestError: the format cannot be determined or the manifest cannot be read.
    """
    defaults = defaults or ManifestDefaults()
    if is_s3_uri(source):
        import anyio

        data = anyio.run(_fetch_s3, str(source), defaults)
        return parse_manifest(
            data,
            str(source),
            defaults,
            format=format,
            ignore_unknown_columns=ignore_unknown_columns,
        )
    if str(source) == STDIN:
        stream = stdin if stdin is not None else sys.stdin.buffer
        return parse_manifest(
            stream.read(),
            STDIN,
            defaults,
            format=format,
            ignore_unknown_columns=ignore_unknown_columns,
        )
    name = str(source)
    fmt = format or detect_format(name)
    if fmt is None:
        raise ManifestError([_cannot_tell(name)])
    try:
        with open(source, "rb") as f:
            return _parse(f, name, fmt, defaults, ignore_unknown_columns)
    except OSError as exc:
        raise _unreadable(name, exc) from exc


async def load_manifest(
    source: str | os.PathLike[str],
    defaults: ManifestDefaults | None = None,
    *,
    format: ManifestFormat | None = None,
    ignore_unknown_columns: bool = False,
    stdin: IO[bytes] | None = None,
) -> Manifest:
    """:func:`read_manifest` for async code: downloads and parsing keep off the event loop."""
    import anyio.to_thread

    defaults = defaults or ManifestDefaults()
    if is_s3_uri(source):
        data = await _fetch_s3(str(source), defaults)
        return await anyio.to_thread.run_sync(
            lambda: parse_manifest(
                data,
                str(source),
                defaults,
                format=format,
                ignore_unknown_columns=ignore_unknown_columns,
            )
        )
    return await anyio.to_thread.run_sync(
        lambda: read_manifest(
            source,
            defaults,
            format=format,
            ignore_unknown_columns=ignore_unknown_columns,
            stdin=stdin,
        )
    )


def parse_manifest(
    data: bytes,
    source: str,
    defaults: ManifestDefaults | None = None,
    *,
    format: ManifestFormat | None = None,
    ignore_unknown_columns: bool = False,
    remote: RemoteLimits | None = None,
) -> Manifest:
    """Validate a manifest already in memory; ``source`` names it in errors (and its extension
    gives the format unless ``format`` does; failing both, the format is sniffed). ``remote``:
    the manifest came from a remote client, whose rows may set less (:class:`RemoteLimits`)."""
    fmt = format or detect_format(_s3_key(source) if is_s3_uri(source) else source)
    # Nothing to sniff means nothing but blank lines: reported as an empty manifest.
    fmt = fmt or sniff_format(data[:65536]) or "csv"
    return _parse(
        io.BytesIO(data),
        source,
        fmt,
        defaults or ManifestDefaults(),
        ignore_unknown_columns,
        remote,
    )


@dataclass(slots=True)
class CheckedManifest:
    """A manifest read once and checked in full, whose rows are not held: :meth:`chunks` reads
    the valid rows again, a chunk at a time. What a manifest of 10^5 rows costs is then one
    chunk of requests, not all of them (see :func:`check_manifest`).

    Attributes:
        manifest: Its source, format, errors, invalid lines and ignored columns
            (``manifest.requests`` is empty).
        valid_rows: How many rows are valid: what :meth:`chunks` yields in all.
        stores: The first valid row of each store (store id, Region, endpoint and profile):
            enough to check each store's set-up before anything is sent.
    """

    manifest: Manifest
    valid_rows: int
    stores: list[ImportRequest]
    _defaults: ManifestDefaults
    _ignore_unknown_columns: bool
    _open: Callable[[], IO[bytes]]
    _identity: tuple[int, ...] | None

    @property
    def errors(self) -> list[FieldError]:
        return self.manifest.errors

    def chunks(self, size: int = 5000) -> Iterator[list[ImportRequest]]:
        """The valid rows' requests, in manifest order, ``size`` at a time.

        Raises:
            ManifestError: the file changed since it was checked. Found before each chunk is
                handed out, so no chunk holds a row of the changed file; the chunks handed out
                before are the checked file's.
        """
        invalid = self.manifest.invalid_lines
        changed = ManifestError(
            [
                FieldError(
                    "file", "changed while being imported; run again", source=self.manifest.source
                )
            ]
        )
        yielded = 0
        with self._open() as stream:

            def unchanged() -> bool:
                return self._identity is None or _identity(stream.fileno()) == self._identity

            if not unchanged():
                raise changed
            builder = _Builder(
                self.manifest.source,
                self.manifest.format,
                self._defaults,
                self._ignore_unknown_columns,
                replay=True,
            )
            chunk: list[ImportRequest] = []
            for line, request in builder.rows(stream):
                if line in invalid:
                    continue  # a repeated name: refused when checked
                chunk.append(request)
                if len(chunk) >= size:
                    if not unchanged():
                        raise changed
                    yielded += len(chunk)
                    yield chunk
                    chunk = []
            if not unchanged():  # what was read since the last chunk, and the last chunk
                raise changed
            if chunk:
                yielded += len(chunk)
                yield chunk
        if yielded != self.valid_rows:  # cannot happen unless the file changed unseen
            raise changed


def check_manifest(
    source: str | os.PathLike[str],
    defaults: ManifestDefaults | None = None,
    *,
    format: ManifestFormat | None = None,
    ignore_unknown_columns: bool = False,
    stdin: IO[bytes] | None = None,
) -> CheckedManifest:
    """Check a whole manifest as :func:`read_manifest` does, without keeping its rows.

    A regular file is read again by :meth:`CheckedManifest.chunks` (which refuses it if it
    changed in between). What can be read once only (standard input, a pipe or a device such as
    ``<(...)`` or ``/dev/stdin``) is copied to an unnamed temporary file first; an S3 object is
    held as its bytes (a few dozen bytes a row, against the hundreds of a row's request).

    Raises:
        ManifestError: the format cannot be determined or the manifest cannot be read.
    """
    defaults = defaults or ManifestDefaults()
    name = str(source)
    reopen, fmt, regular = _reader(source, defaults, format, stdin)
    builder = _Builder(name, fmt, defaults, ignore_unknown_columns)
    stores: dict[tuple[str | None, ...], ImportRequest] = {}
    valid = 0
    with reopen() as stream:
        identity = _identity(stream.fileno()) if regular else None
        for _, request in builder.rows(stream):
            valid += 1
            key = (request.store_id, request.region, request.endpoint_url, request.profile)
            if key not in stores:
                stores[key] = request
    return CheckedManifest(
        builder.manifest,
        valid,
        list(stores.values()),
        defaults,
        ignore_unknown_columns,
        reopen,
        identity,
    )


def _reader(
    source: str | os.PathLike[str],
    defaults: ManifestDefaults,
    format: ManifestFormat | None,
    stdin: IO[bytes] | None,
) -> tuple[Callable[[], IO[bytes]], ManifestFormat, bool]:
    """What opens the manifest from its start, as often as needed; its format; and whether it
    is a regular file (one that can change between two reads)."""
    name = str(source)
    if is_s3_uri(source):
        import anyio

        data = anyio.run(_fetch_s3, name, defaults)
        fmt = format or detect_format(_s3_key(name)) or sniff_format(data[:65536]) or "csv"
        return (lambda: io.BytesIO(data)), fmt, False
    if name == STDIN:
        copy = _copied(stdin if stdin is not None else sys.stdin.buffer)
        with copy() as head:
            return copy, format or sniff_format(head.read(65536)) or "csv", False
    given = format or detect_format(name)
    if given is None:
        raise ManifestError([_cannot_tell(name)])
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):  # a pipe, /dev/stdin, <(...): read once
            with open(source, "rb") as once:
                return _copied(once), given, False
    except OSError as exc:
        raise _unreadable(name, exc) from exc

    def reopen() -> IO[bytes]:
        try:
            return open(source, "rb")
        except OSError as exc:
            raise _unreadable(name, exc) from exc

    return reopen, given, True


def _unreadable(source: str, exc: OSError) -> ManifestError:
    return ManifestError([FieldError("file", exc.strerror or str(exc), source=source)])


def _copied(stream: IO[bytes]) -> Callable[[], IO[bytes]]:
    """A stream that can be read once only, copied to an unnamed temporary file (deleted when
    closed, or at exit); returns what opens a reader of the copy from its start."""
    copy = tempfile.TemporaryFile()
    shutil.copyfileobj(stream, copy)
    copy.flush()  # readers read the descriptor, not this object's buffer

    def reopen() -> IO[bytes]:
        # A reader of its own (closing it leaves the copy open), from the start: duplicated
        # descriptors share one offset.
        reader = os.fdopen(os.dup(copy.fileno()), "rb")
        reader.seek(0)
        return reader

    return reopen


def _identity(file: int | str) -> tuple[int, ...]:
    """What tells a file (a descriptor or a path) changed: its inode, size and modification
    time."""
    st = os.stat(file)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_objects(
    items: Iterable[object],
    defaults: ManifestDefaults | None = None,
    *,
    source: str = "request",
    ignore_unknown_columns: bool = False,
    remote: RemoteLimits | None = None,
) -> Manifest:
    """Check JSON objects exactly as rows of a JSON Lines manifest; "lines" are 1-based indexes.

    For intakes that receive rows already decoded (an HTTP body, a queue message), so every intake
    accepts the same fields the same way; ``remote`` limits what such rows may set.
    """
    builder = _Builder(
        source, "jsonl", defaults or ManifestDefaults(), ignore_unknown_columns, remote=remote
    )
    for index, item in enumerate(items, start=1):
        if isinstance(item, dict):
            if (request := builder._json_row(index, item)) is not None:
                builder.manifest.requests.append(request)
                builder.manifest.lines.append(index)
        else:
            builder.error(index, "json", f"expected an object, got {type(item).__name__}")
    return builder.manifest


def _cannot_tell(source: str) -> FieldError:
    return FieldError(
        "format",
        "cannot tell the format from the extension "
        "(.csv, .tsv, .jsonl, .ndjson); pass --format csv|tsv|jsonl",
        source=source,
    )


def _s3_key(uri: str) -> str:
    match = _S3_SOURCE.fullmatch(uri)
    return match.group(2) if match else ""


async def _fetch_s3(uri: str, defaults: ManifestDefaults) -> bytes:
    """The bytes of an S3 object, read with the caller's credentials."""
    match = _S3_SOURCE.fullmatch(uri)
    if match is None:
        raise ManifestError([FieldError("file", "not an s3://bucket/key URI", source=uri)])
    bucket, key = match.groups()
    import aioboto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = aioboto3.Session(profile_name=defaults.profile)
        # Without a Region of its own S3 answers from us-east-1 and redirects to the bucket's.
        async with session.client("s3", region_name=defaults.region or None) as s3:
            response = await s3.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "error"))
        reason = {
            "NoSuchKey": "no such object",
            "NoSuchBucket": "no such bucket",
            "AccessDenied": "access denied (check the credentials' s3:GetObject permission)",
            "403": "access denied (check the credentials' s3:GetObject permission)",
            "404": "no such object",
        }.get(code, f"{code}: {error.get('Message', exc)}")
        raise ManifestError(
            [FieldError("file", f"cannot read from S3: {reason}", source=uri)]
        ) from exc
    except BotoCoreError as exc:  # no credentials, unknown profile, endpoint unreachable ...
        raise ManifestError(
            [FieldError("file", f"cannot read from S3: {exc}", source=uri)]
        ) from exc
    return data


def _parse(
    stream: IO[bytes],
    source: str,
    fmt: ManifestFormat,
    defaults: ManifestDefaults,
    ignore_unknown_columns: bool,
    remote: RemoteLimits | None = None,
) -> Manifest:
    builder = _Builder(source, fmt, defaults, ignore_unknown_columns, remote=remote)
    manifest = builder.manifest
    for line, request in builder.rows(stream):
        manifest.requests.append(request)
        manifest.lines.append(line)
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


class _Builder:
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
        if self.replay:
            return
        self.manifest.errors.append(FieldError(_field(name), reason, line, self.source, row_name))
        if line is not None:
            self.manifest.invalid_lines.add(line)

    def header_error(self, name: str, reason: str) -> None:
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
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield from self._read_delimited(text, delimiter)
        finally:
            text.detach()  # the caller's stream stays open: it may be checked, or read again

    def _read_delimited(
        self, text: io.TextIOWrapper, delimiter: str
    ) -> Iterator[tuple[int, ImportRequest]]:
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        header: list[str] | None = None
        while header is None:
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                self.header_line = reader.line_num
                self.header_error("header", f"malformed: {exc}")
                self.header_fatal = True
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
            self.header_fatal = True
            return
        width = len(header)
        last = reader.line_num
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                self.data_lines += 1
                self.error(last + 1, "row", f"malformed {self.manifest.format.upper()}: {exc}")
                last = reader.line_num
                continue
            line, last = last + 1, reader.line_num
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
            elif (request := self._json_row(line, obj)) is not None:
                yield line, request

    def _json_row(self, line: int, obj: dict[str, Any]) -> ImportRequest | None:
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
        )
        for e in validate_request(request):
            if e.field in self.file_level and e.field not in values:
                continue  # already reported once for the whole file
            errors.append((e.field, e.reason))
        if request.region is None:
            errors.append(("region", "no region column, no --region and no AWS_REGION configured"))
        names = self.seen.get((request.region or "", request.store_id))
        if names is None:
            names = self.seen[(request.region or "", request.store_id)] = {}
        first = None if self.replay else names.get(request.name)
        if first is not None:
            errors.append(
                (
                    "name",
                    f"{_shown(request.name)!r} is repeated for store {request.store_id} "
                    f"(first on line {first})",
                )
            )
        elif not errors and not self.replay:
            names[request.name] = line
        if errors:
            row_name = request.name if isinstance(request.name, str) and request.name else None
            for field_name, reason in errors:
                self.error(line, field_name, reason, row_name)
            return None
        return request

    def _remote_errors(self, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        assert self.remote is not None
        for col in REMOTE_REFUSED:
            if col in values:
                yield (
                    col,
                    "cannot be set by a remote client (the worker's own configuration decides)",
                )
        allowed = self.remote.stores
        store_id = values.get("store_id") or self.defaults.store_id
        if allowed is not None and store_id and store_id not in allowed:
            yield (
                "store_id",
                f"{_shown(str(store_id))!r} is not a store this worker serves "
                f"(--allow-store: {', '.join(sorted(allowed))})",
            )


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
