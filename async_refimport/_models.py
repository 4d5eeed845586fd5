"""What a user asks for (:class:`ImportRequest`), what they get back (:class:`RowResult`), and the
client-side validation that keeps anything invalid from ever being sent.

The limits are those of botocore's ``omics`` model (``StartReferenceImportJobSourceItem`` and
``StartReferenceImportJobRequest``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from ._errors import FieldError, RequestValidationError

MAX_SOURCES_PER_JOB = 100
"""The service's limit on sources in one StartReferenceImportJob call."""

_STORE_ID = re.compile(r"[0-9]{10,36}")
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9\-.]{1,61}[a-z0-9])/(.{1,1024})", re.DOTALL)
_ROLE_ARN = re.compile(r"arn:.*", re.DOTALL)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".ffn", ".faa", ".frn", ".fas", ".mpfa", ".seq")
_COMPRESSED_SUFFIXES = (".gz", ".bgz", ".bgzf")


class RowState(StrEnum):
    """Where one requested reference stands.

    QUEUED and SUBMITTED are in flight; the three others are final.
    """

    QUEUED = "QUEUED"
    SUBMITTED = "SUBMITTED"
    IMPORTED = "IMPORTED"
    ALREADY_PRESENT = "ALREADY_PRESENT"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATES


_FINAL_STATES = frozenset({RowState.IMPORTED, RowState.ALREADY_PRESENT, RowState.FAILED})


@dataclass(frozen=True, slots=True)
class StoreRef:
    """Identifies one reference store: its id, plus where and as whom to reach it.

    A store quota is one per account and Region, so fan-out is across Regions and profiles;
    ``key`` is the identity used by the journal, the lanes and the pacing.
    """

    store_id: str
    region: str
    endpoint_url: str | None = None
    profile: str | None = None

    @property
    def key(self) -> str:
        return "|".join((self.profile or "", self.region, self.endpoint_url or "", self.store_id))

    @classmethod
    def from_key(cls, key: str) -> StoreRef:
        profile, region, endpoint_url, store_id = key.split("|", 3)
        return cls(store_id, region, endpoint_url or None, profile or None)

    def __str__(self) -> str:
        return f"{self.store_id} ({self.region})"


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """One reference genome to import into one store.

    Attributes:
        store_id: The reference store's id (digits).
        role_arn: The IAM role HealthOmics assumes to read ``source_file``.
        source_file: ``s3://bucket/key`` of a FASTA file (plain, gzip or bgzip).
        name: The reference's name, unique in the store.
        description: Optional, 1..255 characters.
        tags: Optional tags for the reference.
        region: The store's Region; ``None`` means the Importer's default.
        endpoint_url: A custom HealthOmics endpoint (an emulator); ``None`` for AWS.
        profile: An AWS profile from the shared config; ``None`` for the default credentials chain.
    """

    store_id: str
    role_arn: str
    source_file: str
    name: str
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None

    def store(self, default_region: str | None = None) -> StoreRef:
        region = self.region or default_region
        if not region:
            raise RequestValidationError(
                [
                    FieldError(
                        "region",
                        "no Region given and no default Region configured",
                        row_name=self.name,
                    )
                ]
            )
        return StoreRef(self.store_id, region, self.endpoint_url, self.profile)


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one request, as recorded in the journal.

    ``reference_id`` is set for IMPORTED and ALREADY_PRESENT, ``message`` for FAILED (and as a note
    otherwise), ``job_id`` once the row has been part of an import job.
    """

    row_id: int
    store_id: str
    region: str
    name: str
    source_file: str
    state: RowState
    reference_id: str | None = None
    job_id: str | None = None
    message: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.state in (RowState.IMPORTED, RowState.ALREADY_PRESENT)


def _printable(value: str) -> bool:
    # The model's pattern [\p{L}||\p{M}||\p{Z}||\p{S}||\p{N}||\p{P}]+ admits every Unicode letter,
    # mark, separator, symbol, number and punctuation: everything but the "C" (control) categories.
    return all(not unicodedata.category(ch).startswith("C") for ch in value)


def _check_length(errors: list[FieldError], name: str, value: str, low: int, high: int) -> bool:
    if not low <= len(value) <= high:
        errors.append(FieldError(name, f"must be {low}..{high} characters long, got {len(value)}"))
        return False
    return True


def validate_request(request: ImportRequest) -> list[FieldError]:
    """Check one request against the service model's constraints.

    Returns:
        Every problem found (empty when the request is valid); ``row_name`` is not filled in.
    """
    errors: list[FieldError] = []
    if not _STORE_ID.fullmatch(request.store_id or ""):
        errors.append(FieldError("store_id", "must be 10..36 digits"))
    if _check_length(
        errors, "role_arn", request.role_arn or "", 20, 2048
    ) and not _ROLE_ARN.fullmatch(request.role_arn):
        errors.append(FieldError("role_arn", "must be an IAM role ARN starting with 'arn:'"))
    source = request.source_file or ""
    if not _S3_URI.fullmatch(source):
        errors.append(
            FieldError(
                "source_file", "must be s3://bucket/key with a valid bucket name (3..63 chars)"
            )
        )
    else:
        lowered = source.lower()
        for suffix in _COMPRESSED_SUFFIXES:
            if lowered.endswith(suffix):
                lowered = lowered[: -len(suffix)]
                break
        if not lowered.endswith(FASTA_SUFFIXES):
            errors.append(
                FieldError(
                    "source_file", "must name a FASTA file (.fa, .fasta, .fna ..., optionally .gz)"
                )
            )
    name = request.name or ""
    if _check_length(errors, "name", name, 3, 255) and not _printable(name):
        errors.append(FieldError("name", "must not contain control characters"))
    if request.description is not None and _check_length(
        errors, "description", request.description, 1, 255
    ):
        if not _printable(request.description):
            errors.append(FieldError("description", "must not contain control characters"))
    for key, value in request.tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            errors.append(FieldError(f"tags.{key}", "tag keys must be 1..128 characters"))
        if not isinstance(value, str) or len(value) > 256:
            errors.append(
                FieldError(f"tags.{key}", "tag values must be strings of at most 256 characters")
            )
    if request.region is not None and not _REGION.fullmatch(request.region):
        errors.append(FieldError("region", f"{request.region!r} is not an AWS Region name"))
    return errors


def validate_requests(
    requests: Iterable[ImportRequest], default_region: str | None = None
) -> list[FieldError]:
    """Validate a submission: every request, plus one name per store within the submission.

    Returns:
        Every problem found, each naming the row (``row_name``) it belongs to.
    """
    errors: list[FieldError] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, request in enumerate(requests):
        row_errors = validate_request(request)
        region = request.region or default_region
        if region is None:
            row_errors.append(
                FieldError("region", "no Region given and no default Region configured")
            )
        key = (region or "", request.store_id, request.name)
        if key in seen:
            row_errors.append(
                FieldError(
                    "name", f"{request.name!r} is requested twice for store {request.store_id}"
                )
            )
        else:
            seen[key] = index
        errors.extend(
            FieldError(e.field, e.reason, e.line, e.source, request.name or f"#{index + 1}")
            for e in row_errors
        )
    return errors
