"""What reading a manifest gives and takes: :class:`Manifest`, its rows, and the defaults and limits
applied to them."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path

from async_refimport._errors import FieldError, ManifestError
from async_refimport._models import ImportRequest
from async_refimport.manifest.formats import ManifestFormat


@dataclass(frozen=True, slots=True)
class ManifestDefaults:
    """Values for fields a row leaves empty (from command-line flags and the AWS configuration).

    Attributes:
        stageable: Sources may also be ones staged first (``http(s)://``, ``file://``, a local
            path): ``refimport import`` with somewhere to stage them.
        fixed: Fields decided for every row elsewhere (a targets file): a row that sets one is
            refused, naming it; the other attributes then hold placeholders.
    """

    store_id: str | None = None
    role_arn: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    stageable: bool = False
    fixed: frozenset[str] = frozenset()


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
        refused: A problem of the whole file leaves none of its rows importable (a quote never
            closed takes in every row after it): nothing is imported, invalid rows skipped or
            not.
    """

    source: str
    format: ManifestFormat
    requests: list[ImportRequest] = field(default_factory=list)
    # Four bytes a line instead of a Python int and a row object: a manifest can hold 10^5+ rows.
    lines: array[int] = field(default_factory=lambda: array("L"))
    errors: list[FieldError] = field(default_factory=list)
    invalid_lines: set[int] = field(default_factory=set)
    ignored_columns: set[str] = field(default_factory=set)
    refused: bool = False

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
        """Whether no problem was found."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise :class:`ManifestError` listing every problem, if there is any."""
        if self.errors:
            raise ManifestError(self.errors)
