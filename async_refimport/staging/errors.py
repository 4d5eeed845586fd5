"""What a staging failure is: a code to match on, and one line naming the source."""

from __future__ import annotations

from enum import StrEnum

from async_refimport._errors import RefImportError
from async_refimport._models import printable, redact_url

__all__ = ["StagingCode", "StagingError"]


class StagingCode(StrEnum):
    """Why a source could not be staged (match on this, never on the message)."""

    NOT_FOUND = "not_found"
    """No such file, URL (404/410), bucket or key."""
    HTTP_STATUS = "http_status"
    """An HTTP server answered another status than 200/206 (the message names it)."""
    TOO_MANY_REDIRECTS = "too_many_redirects"
    """More redirects than ``StagingLimits.max_redirects``."""
    TRUNCATED = "truncated"
    """Fewer bytes came than the source announced (its Content-Length, its S3 size)."""
    MD5_MISMATCH = "md5_mismatch"
    """The bytes' MD5 is not the manifest's ``md5``: nothing was completed."""
    TOO_LARGE = "too_large"
    """Over the service's limit on one source file (``StagingLimits.max_bytes``)."""
    WRONG_REGION = "wrong_region"
    """The staging bucket is not in the staging area's Region."""
    ACCESS_DENIED = "access_denied"
    """S3 or the HTTP server refused us (403, 401) or there are no credentials."""
    UNREADABLE = "unreadable"
    """The source could not be read (a connection lost, a local read error, a timeout) after
    the retries."""
    UNSUPPORTED = "unsupported"
    """A source this module cannot stage (another URL scheme, a directory)."""
    CHANGED = "changed"
    """The source changed while it was staged (its ETag, its size): nothing was completed."""
    S3_ERROR = "s3_error"
    """S3 answered an error of another kind while staging (the message names it)."""


# Codes a later attempt may well not see again (a lost connection, a throttle, a 5xx).
_RETRYABLE = frozenset({StagingCode.UNREADABLE, StagingCode.S3_ERROR, StagingCode.CHANGED})


class StagingError(RefImportError):
    """A source that could not be staged; nothing importable was left behind for it.

    ``str(error)`` is one line: ``staging SOURCE: DETAIL`` (the source's URL without its user
    name and password; control characters escaped).

    Args:
        code: Why.
        source: The source as the manifest gives it (redacted here, never stored as given).
        detail: What happened, for a person.
        retryable: Whether a later attempt may succeed (default: by ``code``: UNREADABLE,
            S3_ERROR and CHANGED are).

    Attributes:
        code: Why (a :class:`StagingCode`).
        source: The source, its URL's user name and password replaced by ``***``.
        detail: What happened.
        retryable: Whether a later attempt may succeed.
    """

    def __init__(
        self, code: StagingCode, source: str, detail: str, *, retryable: bool | None = None
    ) -> None:
        self.code = code
        self.source = redact_url(source)
        self.detail = redact_url(detail)
        self.retryable = code in _RETRYABLE if retryable is None else retryable
        super().__init__(f"staging {printable(self.source)}: {printable(self.detail)}")
