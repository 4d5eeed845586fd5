"""What a user asks for (:class:`ImportRequest`), what they get back (:class:`RowResult`), and the
client-side validation that keeps anything invalid from ever being sent.

The limits are those of botocore's ``omics`` model (``StartReferenceImportJobSourceItem`` and
``StartReferenceImportJobRequest``).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from async_refimport._errors import FieldError, RequestValidationError

MAX_SOURCES_PER_JOB = 100
"""The service's limit on sources in one StartReferenceImportJob call."""

_STORE_ID = re.compile(r"[0-9]{10,36}")
# No re.DOTALL: the service's patterns are Java regexes, whose "." matches no line terminator, so
# a newline in a key would pass a looser local check and then sink every row of its job.
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9\-.]{1,61}[a-z0-9])/(.{1,1024})")
# The service checks only "arn:.*"; a role it cannot assume fails the whole job later, so the
# form of an IAM role ARN is checked here: partition, empty Region, 12-digit account, an optional
# path (printable ASCII between slashes) and a role name of IAM's characters.
_ROLE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/(?:[\x21-\x7e]+/)?[A-Za-z0-9_+=,.@-]{1,64}"
)
ROLE_ARN_FORM = "arn:<partition>:iam::<12-digit account>:role/<name>"
"""The form of role ARN accepted, as error messages name it."""
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_ENDPOINT_URL = re.compile(r"https?://[\x21-\x2e\x30-\x7e]+(/[\x21-\x7e]*)?")
# Names of profiles in ~/.aws/config: printable, no edge spaces (botocore strips them).
_PROFILE = re.compile(r"[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,254}[^\s\x00-\x1f\x7f])?")
# Java's "." also stops at these; Python's stops at "\n" only.
_LINE_TERMINATORS = frozenset("\n\r\x85\u2028\u2029")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".ffn", ".faa", ".frn", ".fas", ".mpfa", ".seq")
_COMPRESSED_SUFFIXES = (".gz", ".bgz", ".bgzf")


class RowState(StrEnum):
    """Where one requested reference stands.

    STAGING, QUEUED and SUBMITTED are in flight; the three others are final. A STAGING row's
    source is being copied into a bucket of its store's own Region (the lanes never take it);
    once staged it is QUEUED with the staged object as its source.
    """

    QUEUED = "QUEUED"
    SUBMITTED = "SUBMITTED"
    IMPORTED = "IMPORTED"
    ALREADY_PRESENT = "ALREADY_PRESENT"
    FAILED = "FAILED"
    # Last: the states listed before it kept their order (messages and documents list them).
    STAGING = "STAGING"

    @property
    def is_final(self) -> bool:
        """Whether the row is settled for good (IMPORTED, ALREADY_PRESENT or FAILED)."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset({RowState.IMPORTED, RowState.ALREADY_PRESENT, RowState.FAILED})
_KEY_SEPARATOR = "|"


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
        """The store's identity as one string, decoded by :meth:`from_key`.

        Stores whose fields hold no ``|`` keep the form journals have always used,
        ``profile|region|endpoint_url|store_id``, so a journal written before this encoding resumes
        unchanged; an endpoint's user name and password are left out. A field holding ``|`` (a profile named ``a|b``) would make that form ambiguous:
        such a store's key is a JSON array of the four fields instead, which ends with ``]``, never
        with a store id's digits, so the two forms cannot be mistaken for one another.
        """
        # The endpoint without a user name or password: no journal keeps one (a key without
        # one is unchanged, so existing journals resume).
        endpoint = without_userinfo(self.endpoint_url) if self.endpoint_url else ""
        fields = (self.profile or "", self.region, endpoint, self.store_id)
        if any(_KEY_SEPARATOR in f for f in fields):
            return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        return _KEY_SEPARATOR.join(fields)

    @classmethod
    def from_key(cls, key: str) -> StoreRef:
        """The store a :attr:`key` names (either form).

        Raises:
            ValueError: ``key`` is neither form.
        """
        return _store_from_key(key)

    def __str__(self) -> str:
        return f"{self.store_id} ({self.region})"


@functools.lru_cache(maxsize=1024)
def _store_from_key(key: str) -> StoreRef:
    # Cached: a journal reads the same few keys back once per row, and a shared StoreRef shares
    # its strings between the rows' results (200,000 rows of one store hold one copy, not 200,000).
    if key.startswith("[") and key.endswith("]"):
        fields = json.loads(key)
        if not (
            isinstance(fields, list)
            and len(fields) == 4
            and all(isinstance(f, str) for f in fields)
        ):
            raise ValueError(f"not a store key: {key!r}")
        profile, region, endpoint_url, store_id = fields
    else:
        parts = key.split(_KEY_SEPARATOR)
        if len(parts) != 4:
            raise ValueError(f"not a store key: {key!r}")
        profile, region, endpoint_url, store_id = parts
    return StoreRef(store_id, region, endpoint_url or None, profile or None)


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
        source_md5: The MD5 checksum of the source file as its publisher gives it (NCBI's and
            Ensembl's ``md5checksums.txt``), 32 hex digits: checked while a source is staged.
            Not the reference's checksum the service reports (``RowResult.md5``).
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
    source_md5: str | None = None

    def store(self, default_region: str | None = None) -> StoreRef:
        """The store the request goes to.

        Args:
            default_region: The Region when the request names none.

        Returns:
            Its store id, Region, endpoint and profile.

        Raises:
            RequestValidationError: neither the request nor ``default_region`` names a Region.
        """
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
    otherwise), ``job_id`` once the row has been part of an import job. ``md5`` is the reference's
    checksum as the service reports it (ListReferences), when known, so a user can verify it.
    A staged row's ``source_file`` is the staged ``s3://`` object and ``original_source`` the
    manifest's source; ``source_md5`` is the source's checksum the manifest gave, if any, and
    ``role_arn`` the role the row is (or was) imported with.
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
    md5: str | None = None
    original_source: str | None = None
    role_arn: str | None = None
    source_md5: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the reference is in the store (imported now or already present)."""
        return self.state in (RowState.IMPORTED, RowState.ALREADY_PRESENT)


#: Characters of a value an error message quotes: a 100 KB field must not make a 100 KB line.
QUOTED_MAX = 80

# The user name and password of a URL: everything between "scheme://" and the last "@" before
# the host's end ("/", "?", "#", or a space or quote where a URL stands inside a message).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s'\"]*@")


def is_region_name(value: str) -> bool:
    """Whether ``value`` has the form of an AWS Region name (``us-east-1``, ``us-gov-west-1``).

    Args:
        value: A Region name as given.

    Returns:
        True for a name of that form (which the AWS SDK also requires before any call).
    """
    return _REGION.fullmatch(value) is not None


def printable(text: object) -> str:
    """``text`` fit to print on a terminal or in one line of a message: every control or format
    character (ESC, a line break, a bidi override, ...) is shown as its escape (``\\x1b``,
    ``\\n``, ``\\u202e``), so data can neither drive the terminal nor forge a line.

    Everything that prints data (a journal's names and messages, a file's name in an error line)
    goes through this one function.

    Args:
        text: What to print (anything but a string is shown as ``str(text)``).

    Returns:
        The text, unchanged when it holds nothing to neutralise.
    """
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def redact_url(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``***``
    (``http://admin:hunter2@host`` → ``http://***@host``), for whatever is printed or logged.

    Args:
        text: A URL, or a message naming URLs.

    Returns:
        The text, unchanged when no URL in it has a user part.
    """
    if "@" not in text:
        return text
    return _USERINFO.sub(r"\1***@", text)


def without_userinfo(url: str) -> str:
    """``url`` without its user name and password (``http://a:b@host`` → ``http://host``): what a
    store's journal key holds, so no journal keeps a password.

    Args:
        url: A URL.

    Returns:
        The URL, unchanged when it has no user part.
    """
    if "@" not in url:
        return url
    return _USERINFO.sub(r"\1", url)


def quoted(value: str) -> str:
    """``repr(value)``, cut to :data:`QUOTED_MAX` characters with the full length said."""
    if len(value) <= QUOTED_MAX:
        return repr(value)
    return f"{value[:QUOTED_MAX]!r}... ({len(value)} characters)"


def _key(key: object) -> str:
    """A tag key as part of a field name: one line, cut like a quoted value."""
    text = key if isinstance(key, str) else repr(key)
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= QUOTED_MAX else f"{text[:QUOTED_MAX]}..."


def _printable(value: str) -> bool:
    # The model's pattern [\p{L}||\p{M}||\p{Z}||\p{S}||\p{N}||\p{P}]+ admits every Unicode letter,
    # mark, separator, symbol, number and punctuation: everything but the "C" (control) categories.
    if value.isprintable():  # the common case, at C speed: no C category (nor Zl, Zp, Zs but " ")
        return True
    return all(not unicodedata.category(ch).startswith("C") for ch in value)


def _java_length(value: str) -> int:
    # The service counts UTF-16 code units (Java's String.length()): a character outside the
    # Basic Multilingual Plane, such as most emoji, counts twice.
    if value.isascii():
        return len(value)
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def _check_length(errors: list[FieldError], name: str, value: str, low: int, high: int) -> bool:
    length = _java_length(value)
    if not low <= length <= high:
        errors.append(FieldError(name, f"must be {low}..{high} characters long, got {length}"))
        return False
    return True


def _text(errors: list[FieldError], name: str, value: object) -> str | None:
    """``value`` if it is a string; otherwise records why not (the API takes any object)."""
    if isinstance(value, str):
        return value
    errors.append(FieldError(name, f"must be a string, got {type(value).__name__}"))
    return None


def _single_line(value: str) -> bool:
    if value.isprintable():  # no line terminator is printable
        return True
    return not any(ch in _LINE_TERMINATORS for ch in value) and _printable(value)


def role_arn_problem(value: str) -> str | None:
    """Why ``value`` cannot be the ARN of an IAM role, or None when it can.

    The service's own check is only ``arn:.*`` (20..2048 characters); anything else it learns by
    failing to assume the role, after the job has started, failing every row packed into it.
    """
    form = f"expected {ROLE_ARN_FORM}"
    if not value.startswith("arn:"):
        return f"not an ARN ({form})"
    if _ROLE_ARN.fullmatch(value) and len(value) <= 2048:
        return None
    parts = value.split(":", 5)
    if len(parts) < 6:
        detail = f"{len(parts) - 1} ':' separators, an ARN has 5"
    elif not re.fullmatch(r"aws(?:-[a-z]+)*", parts[1]):
        detail = f"partition {quoted(parts[1])} is not aws, aws-cn, aws-us-gov ..."
    elif parts[2] != "iam":
        detail = f"service {quoted(parts[2])} is not iam"
    elif parts[3]:
        detail = "IAM ARNs have no Region"
    elif not re.fullmatch(r"[0-9]{12}", parts[4]):
        detail = f"account {quoted(parts[4])} is not 12 digits"
    elif not parts[5].startswith("role/"):
        detail = "the resource is not role/<name>"
    elif len(value) > 2048:
        detail = f"{len(value)} characters, at most 2048"
    else:
        detail = "the role name or path has characters IAM does not allow"
    return f"not an IAM role ARN: {detail} ({form})"


def _check_store_id(errors: list[FieldError], request: ImportRequest) -> None:
    store_id = _text(errors, "store_id", request.store_id)
    if store_id is not None and not _STORE_ID.fullmatch(store_id):
        errors.append(FieldError("store_id", "must be 10..36 digits"))


def _check_role_arn(errors: list[FieldError], request: ImportRequest) -> None:
    role_arn = _text(errors, "role_arn", request.role_arn)
    if role_arn is not None:
        problem = role_arn_problem(role_arn)
        if problem is not None:
            errors.append(FieldError("role_arn", problem))


def _check_source_file(
    errors: list[FieldError], request: ImportRequest, *, stageable: bool = False
) -> None:
    source = _text(errors, "source_file", request.source_file)
    if source is None:
        return
    if not _single_line(source):
        errors.append(FieldError("source_file", "must be one line of printable characters"))
        return
    path = source
    if not _S3_URI.fullmatch(source):
        if not stageable or source.startswith("s3://") or not source.strip():
            reason = "must be s3://bucket/key with a valid bucket name (3..63 chars)"
            if stageable:
                reason += ", an http(s):// URL, a file:// URL or a local path"
            elif not source.startswith("s3://"):
                reason += (
                    "; a source elsewhere (http(s)://, a local file) is staged into S3 first "
                    "with refimport import --staging REGION=s3://bucket/prefix/"
                )
            errors.append(FieldError("source_file", reason))
            return
        # A URL's query or fragment is no part of the file's name.
        path = re.split(r"[?#]", source, maxsplit=1)[0] if "://" in source else source
    lowered = path.lower()
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


def _check_source_md5(errors: list[FieldError], request: ImportRequest) -> None:
    if request.source_md5 is None:
        return
    md5 = _text(errors, "source_md5", request.source_md5)
    if md5 is not None and not _MD5.fullmatch(md5):
        errors.append(FieldError("source_md5", f"{quoted(md5)} is not an MD5 (32 hex digits)"))


def _check_name(errors: list[FieldError], request: ImportRequest) -> None:
    name = _text(errors, "name", request.name)
    if name is None or not _check_length(errors, "name", name, 3, 255):
        return
    if not _printable(name):
        errors.append(FieldError("name", "must not contain control characters"))
    elif name != name.strip():
        errors.append(
            FieldError(
                "name",
                f"{quoted(name)} has leading or trailing whitespace "
                "(names are matched exactly; remove it)",
            )
        )


def _check_description(errors: list[FieldError], request: ImportRequest) -> None:
    if request.description is None:
        return
    description = _text(errors, "description", request.description)
    if description is not None and _check_length(errors, "description", description, 1, 255):
        if not _printable(description):
            errors.append(FieldError("description", "must not contain control characters"))


def _check_tags(errors: list[FieldError], request: ImportRequest) -> None:
    if not isinstance(request.tags, Mapping):
        errors.append(FieldError("tags", "must be a mapping of tag keys to string values"))
        return
    for key, value in request.tags.items():
        if not isinstance(key, str) or not 1 <= _java_length(key) <= 128:
            errors.append(FieldError(f"tags.{_key(key)}", "tag keys must be 1..128 characters"))
        if not isinstance(value, str) or _java_length(value) > 256:
            errors.append(
                FieldError(
                    f"tags.{_key(key)}", "tag values must be strings of at most 256 characters"
                )
            )


def _check_region(errors: list[FieldError], request: ImportRequest) -> None:
    if request.region is None:
        return
    region = _text(errors, "region", request.region)
    if region is not None and not _REGION.fullmatch(region):
        errors.append(FieldError("region", f"{quoted(region)} is not an AWS Region name"))


def _check_endpoint_url(errors: list[FieldError], request: ImportRequest) -> None:
    if request.endpoint_url is None:
        return
    url = _text(errors, "endpoint_url", request.endpoint_url)
    if url is not None and not _ENDPOINT_URL.fullmatch(url):
        errors.append(
            FieldError(
                "endpoint_url",
                f"{quoted(redact_url(url))} is not an http:// or https:// URL without spaces",
            )
        )


def _check_profile(errors: list[FieldError], request: ImportRequest) -> None:
    if request.profile is None:
        return
    profile = _text(errors, "profile", request.profile)
    if profile is not None and not _PROFILE.fullmatch(profile):
        errors.append(
            FieldError(
                "profile",
                f"{quoted(profile)} is not a profile name (printable, no leading or trailing "
                "spaces, at most 256 characters)",
            )
        )


# One check per field, in the order their errors are reported; each appends what it finds.
_FIELD_CHECKS: tuple[Callable[[list[FieldError], ImportRequest], None], ...] = (
    _check_store_id,
    _check_role_arn,
    _check_source_file,
    _check_name,
    _check_description,
    _check_tags,
    _check_region,
    _check_endpoint_url,
    _check_profile,
    _check_source_md5,
)


def validate_request(request: ImportRequest, *, stageable: bool = False) -> list[FieldError]:
    """Check one request against the service model's constraints, and a little more.

    Every check is at least as strict as the service's, so a row that would make the service
    reject its whole job (and every row packed with it) is refused here, alone. Stricter than the
    service: the form of an IAM role ARN, control characters and line breaks in ``source_file``,
    leading or trailing whitespace in ``name`` (a reference's name is matched exactly: " hg38" and
    "hg38" would be two references), and the form of ``endpoint_url`` and ``profile``.

    Args:
        request: The request.
        stageable: Its source may also be one that is staged first (an ``http(s)://`` or
            ``file://`` URL, or a local path); without it only ``s3://`` is accepted.

    Returns:
        Every problem found (empty when the request is valid); ``row_name`` is not filled in.
    """
    errors: list[FieldError] = []
    for check in _FIELD_CHECKS:
        if check is _check_source_file:
            _check_source_file(errors, request, stageable=stageable)
        else:
            check(errors, request)
    return errors


def validate_requests(
    requests: Iterable[ImportRequest],
    default_region: str | None = None,
    *,
    stageable: bool = False,
) -> list[FieldError]:
    """Validate a submission: every request, plus one name per store within the submission.

    Args:
        requests: The requests.
        default_region: The Region of requests that name none.
        stageable: Sources may be ones that are staged first (see :func:`validate_request`).

    Returns:
        Every problem found, each naming the row (``row_name``) it belongs to.
    """
    errors: list[FieldError] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, request in enumerate(requests):
        row_errors = validate_request(request, stageable=stageable)
        region = request.region or default_region
        if region is None:
            row_errors.append(
                FieldError("region", "no Region given and no default Region configured")
            )
        key = (region or "", request.store_id, request.name)
        if key in seen:
            row_errors.append(
                FieldError(
                    "name",
                    f"{quoted(request.name)} is requested twice for store {request.store_id}",
                )
            )
        else:
            seen[key] = index
        errors.extend(
            FieldError(e.field, e.reason, e.line, e.source, request.name or f"#{index + 1}")
            for e in row_errors
        )
    return errors
