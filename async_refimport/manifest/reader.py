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
blocking the event loop. Without an extension to go by (standard input, a pipe or ``<(...)``, an
S3 key such as ``sheet``) the format is sniffed from the first line: ``{`` starts JSON Lines, a
tab makes TSV, otherwise CSV.

Columns (CSV/TSV header) or keys (JSON Lines): ``source_file`` and ``name`` (required),
``description``, ``tags`` (a JSON object, or ``k=v;k2=v2``), and per-row ``store_id``,
``role_arn``, ``region``, ``profile`` and ``endpoint_url`` overriding the defaults (so one manifest
can fan out over several accounts). The API's own names (``sourceFile``, ``referenceStoreId``,
``roleArn``) are accepted too. Other columns are refused unless ``ignore_unknown_columns`` is set
(sample sheets carry ``sample_id`` and the like); the ignored names are listed in
``Manifest.ignored_columns``.

What is refused, besides rows the service would refuse: an empty manifest, or one with a header
and no rows; a JSON object that gives one key twice (``{"name": "a", "name": "b"}``: JSON parsers
disagree on which wins); JSON nested deeper than anything a manifest needs; a name given twice for
one store, in the same spelling or in another Unicode normalization (NFC/NFD). A CSV quote that is
never closed takes in every row after it: the whole file is refused (``Manifest.refused``), naming
the line the quote opened on, so no row goes unreported, invalid rows skipped or not.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from async_refimport._errors import FieldError, ManifestError
from async_refimport._models import ImportRequest, printable

# The names below moved to formats, model and rows; importing them from here still works.
from async_refimport.manifest.formats import FORMATS as FORMATS
from async_refimport.manifest.formats import STDIN as STDIN
from async_refimport.manifest.formats import ManifestFormat as ManifestFormat
from async_refimport.manifest.formats import detect_format as detect_format
from async_refimport.manifest.formats import is_s3_uri as is_s3_uri
from async_refimport.manifest.formats import s3_key
from async_refimport.manifest.formats import sniff_format as sniff_format
from async_refimport.manifest.model import REMOTE_REFUSED as REMOTE_REFUSED
from async_refimport.manifest.model import Manifest as Manifest
from async_refimport.manifest.model import ManifestDefaults as ManifestDefaults
from async_refimport.manifest.model import ManifestRow as ManifestRow
from async_refimport.manifest.model import RemoteLimits as RemoteLimits
from async_refimport.manifest.rows import COLUMNS as COLUMNS
from async_refimport.manifest.rows import REQUIRED as REQUIRED
from async_refimport.manifest.rows import RowBuilder, parse
from async_refimport.manifest.s3 import fetch_s3

# Errors printed in full before "... and N more" (see format_errors).
PRINTED_ERRORS = 100


def format_error(error: FieldError) -> str:
    """``FILE:LINE: field: reason`` (``FILE: field: reason`` for a problem of the whole file), in
    one printable line: a file named with ESC or a line break cannot forge lines."""
    if error.source is not None and error.line is None:
        return printable(f"{error.source}: {error.field}: {error.reason}")
    return printable(str(error))


def format_errors(errors: Sequence[FieldError], limit: int = PRINTED_ERRORS) -> list[str]:
    """The first ``limit`` errors as lines, then one line saying how many more there are.

    Printing hundreds of thousands of errors takes longer than fixing the cause; the first ones
    show it.
    """
    shown = [format_error(e) for e in errors[:limit]]
    if len(errors) > limit:
        shown.append(f"... and {len(errors) - limit} more problem(s) not shown")
    return shown


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

        data = anyio.run(fetch_s3, str(source), defaults)
        return parse_manifest(
            data,
            str(source),
            defaults,
            format=format,
            ignore_unknown_columns=ignore_unknown_columns,
        )
    if str(source) == STDIN:
        stream = stdin if stdin is not None else _standard_input()
        return parse_manifest(
            stream.read(),
            STDIN,
            defaults,
            format=format,
            ignore_unknown_columns=ignore_unknown_columns,
        )
    return _read_file(
        source, defaults, format or detect_format(str(source)), ignore_unknown_columns
    )


def _read_file(
    source: str | os.PathLike[str],
    defaults: ManifestDefaults,
    fmt: ManifestFormat | None,
    ignore_unknown_columns: bool,
) -> Manifest:
    """:func:`read_manifest` of a file (``fmt``: its format, None when nothing tells it)."""
    name = str(source)
    try:
        with open(source, "rb") as f:
            if fmt is None and not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                # A pipe or <(...) has no extension to go by: sniffed, as standard input is.
                return parse_manifest(
                    f.read(), name, defaults, ignore_unknown_columns=ignore_unknown_columns
                )
            if fmt is None:
                raise ManifestError([_cannot_tell(name)])
            return parse(f, name, fmt, defaults, ignore_unknown_columns)
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
        data = await fetch_s3(str(source), defaults)
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
    fmt = format or detect_format(s3_key(source) if is_s3_uri(source) else source)
    # Nothing to sniff means nothing but blank lines: reported as an empty manifest.
    fmt = fmt or sniff_format(data[:65536]) or "csv"
    return parse(
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
        """Every problem found (``manifest.errors``)."""
        return self.manifest.errors

    def chunks(self, size: int = 5000) -> Iterator[list[ImportRequest]]:
        """The valid rows' requests, in manifest order, ``size`` at a time.

        Raises:
            ManifestError: the file changed since it was checked. Found before each chunk is
                handed out, so no chunk holds a row of the changed file; the chunks handed out
                before are the checked file's.
        """
        if self.manifest.refused:
            return  # no row of it is importable (see Manifest.refused)
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
            builder = RowBuilder(
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

    A problem of the whole file (a quote never closed, a header no row can be read by) leaves
    none of its rows importable: ``manifest.refused`` is set, and no row is valid.

    Raises:
        ManifestError: the format cannot be determined or the manifest cannot be read.
    """
    defaults = defaults or ManifestDefaults()
    name = str(source)
    reopen, fmt, regular = _reader(source, defaults, format, stdin)
    builder = RowBuilder(name, fmt, defaults, ignore_unknown_columns)
    stores: dict[tuple[str | None, ...], ImportRequest] = {}
    valid = 0
    with reopen() as stream:
        identity = _identity(stream.fileno()) if regular else None
        for _, request in builder.rows(stream):
            valid += 1
            key = (request.store_id, request.region, request.endpoint_url, request.profile)
            if key not in stores:
                stores[key] = request
    if builder.manifest.refused:  # the file as a whole: no row of it is imported
        valid, stores = 0, {}
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

        data = anyio.run(fetch_s3, name, defaults)
        fmt = format or detect_format(s3_key(name)) or sniff_format(data[:65536]) or "csv"
        return (lambda: io.BytesIO(data)), fmt, False
    if name == STDIN:
        copy = _copied(stdin if stdin is not None else _standard_input())
        with copy() as head:
            return copy, format or sniff_format(head.read(65536)) or "csv", False
    given = format or detect_format(name)
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):  # a pipe, /dev/stdin, <(...): read once
            with open(source, "rb") as once:
                copy = _copied(once)
            if given is None:  # /dev/fd/63 has no extension: sniffed, as standard input is
                with copy() as head:
                    given = sniff_format(head.read(65536)) or "csv"
            return copy, given, False
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    if given is None:
        raise ManifestError([_cannot_tell(name)])

    def reopen() -> IO[bytes]:
        try:
            return open(source, "rb")
        except OSError as exc:
            raise _unreadable(name, exc) from exc

    return reopen, given, True


def _standard_input() -> IO[bytes]:
    """The process's standard input, as bytes.

    Raises:
        ManifestError: it is closed (``<&-``).
    """
    if sys.stdin is None:
        raise ManifestError([FieldError("file", "standard input is closed", source=STDIN)])
    return sys.stdin.buffer


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
    builder = RowBuilder(
        source, "jsonl", defaults or ManifestDefaults(), ignore_unknown_columns, remote=remote
    )
    for index, item in enumerate(items, start=1):
        if isinstance(item, dict):
            if (request := builder.json_row(index, item)) is not None:
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
