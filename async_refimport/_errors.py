"""The exception tree of async_refimport.

Every exception the library raises on purpose derives from :class:`RefImportError`::

    RefImportError
    ├── ValidationFailed              one or more requests or manifest rows are invalid
    │   ├── RequestValidationError    requests given through the API (carries every FieldError)
    │   └── ManifestError             rows of a manifest file (carries FieldErrors with line numbers)
    ├── ServiceError                  HealthOmics answered with an error (or did not answer)
    │   ├── TransientServiceError     worth retrying: throttling, 408, 500, connection errors
    │   ├── StoreBusyError            402: the store is running someone else's import job
    │   └── PermanentServiceError     400/403/404: retrying cannot help
    │       └── CredentialsError      no, expired or invalid credentials, unknown profile
    ├── SetupError                    the run cannot work as set up (credentials, access, store,
    │                                 endpoint): nothing is wrong with the rows, they stay queued
    ├── JournalError                  the journal is unusable (schema, full disk, missing table, access)
    ├── StoreBookedError              the journal already holds an active job for the store
    ├── LeaseLostError                another worker holds the store's lease: this one is fenced out
    ├── QueueError                    an SQS queue does not exist or may not be used
    └── ImporterClosedError           the Importer was closed and cannot be reused

Errors carry their context (store id, job id, row name, field) as attributes, not only in the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of one request or manifest row.

    Attributes:
        field: The field's name as the user wrote it (``name``, ``source_file``, ``tags.env`` ...).
        reason: What is wrong, in words a user can act on.
        line: The 1-based line of the manifest the row came from, when it came from a file.
        source: The manifest path, when the row came from a file.
        row_name: The row's reference name, when it has one.
    """

    field: str
    reason: str
    line: int | None = None
    source: str | None = None
    row_name: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.source is not None and self.line is not None:
            where = f"{self.source}:{self.line}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        elif self.row_name:
            where = f"{self.row_name}: "
        return f"{where}{self.field}: {self.reason}"


class RefImportError(Exception):
    """Base class of every error async_refimport raises on purpose."""


class ValidationFailed(RefImportError):
    """Input was rejected before anything was sent; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(str(e) for e in self.errors[:50])
        more = f"\n... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(f"{len(self.errors)} invalid field(s):\n{lines}{more}")


class RequestValidationError(ValidationFailed):
    """Requests passed to the API failed validation; nothing was journaled or sent."""


class ManifestError(ValidationFailed):
    """Rows of a manifest failed validation; each FieldError names its file and line."""


class ServiceError(RefImportError):
    """An error answered by (or on the way to) HealthOmics.

    Attributes:
        code: The service's error code (``ThrottlingException``) or a local one (``ConnectionError``).
        operation: The API operation, e.g. ``StartReferenceImportJob``.
        store_id: The reference store concerned, when known.
        status: The HTTP status, when there was a response.
        ambiguous: True when the request may have taken effect although it failed (408, lost connection).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        operation: str,
        store_id: str | None = None,
        status: int | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.operation = operation
        self.store_id = store_id
        self.status = status
        self.ambiguous = ambiguous

    def __str__(self) -> str:
        return f"{self.operation}: {self.code}: {self.message}"


class TransientServiceError(ServiceError):
    """Throttling, timeouts, server errors and lost connections: retried with backoff."""


class StoreBusyError(ServiceError):
    """The store already runs an import job (402): wait for it instead of failing."""


class PermanentServiceError(ServiceError):
    """Validation, access or not-found errors: retrying cannot help; the rows fail with this message."""


class CredentialsError(PermanentServiceError):
    """The caller's credentials are missing, expired or rejected.

    At a store's first call it fails the store's rows (nothing can work); later, while jobs run,
    the lane pauses instead: temporary credentials are often refreshed by the credentials chain.
    """


class SetupKind(StrEnum):
    """What a :class:`SetupError` says to fix (str-valued: printed and serialised as its value)."""

    CREDENTIALS = "credentials"
    """No, unknown or refused credentials or profile."""
    ACCESS = "access"
    """The credentials work but may not call the store (IAM)."""
    STORE = "store"
    """No such reference store (in this account and Region)."""
    ENDPOINT = "endpoint"
    """Nothing answered within ``setup_timeout``."""
    SERVICE = "service"
    """Any other refusal of the store's first call."""
    STAGING = "staging"
    """The staging area of the store's Region cannot be used (no such bucket, a bucket of
    another Region, access denied)."""


class SetupError(RefImportError):
    """A store cannot be used as set up: fix the set-up, not the data, then run again.

    Told at a store's first call (ListReferences) from what it answers: no or unknown credentials
    or profile, access denied, no such store, or no answer at all within
    ``ImporterSettings.setup_timeout`` (a wrong endpoint, an unreachable VPC endpoint or proxy).
    Nothing failed: the store's rows stay queued in the journal, and the same run started again
    once the set-up is fixed imports them. The CLI exits with code 3 (the README's exit codes).

    Attributes:
        store_id: The reference store concerned.
        region: Its Region.
        kind: What to fix (a :class:`SetupKind`; one given as its string value is converted).
        fix: What to fix, in words a user can act on.
        cause: The service error underneath (None when nothing answered).
    """

    def __init__(
        self,
        message: str,
        *,
        store_id: str,
        region: str,
        kind: SetupKind | str,
        fix: str,
        cause: ServiceError | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.store_id = store_id
        self.region = region
        self.kind = SetupKind(kind)
        self.fix = fix
        self.cause = cause

    def __str__(self) -> str:
        return f"store {self.store_id} ({self.region}): {self.message}. {self.fix}"


class JournalError(RefImportError):
    """The journal cannot be used (newer schema, unreadable file, inconsistent state).

    Attributes:
        code: The service's error code when a service refused (DynamoDB's
            ``ResourceInUseException``, ``AccessDeniedException`` ...), else ``None``.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StoreBookedError(RefImportError):
    """The store already has an active job in the journal (possibly another process's).

    Not a failure: the lane waits for that job to end. Kept apart from :class:`JournalError` so
    that a journal that cannot be written (a full disk) is never mistaken for a busy store.

    Attributes:
        store_key: The journal's key of the store.
    """

    def __init__(self, message: str, *, store_key: str) -> None:
        super().__init__(message)
        self.store_key = store_key


class LeaseLostError(RefImportError):
    """Another process holds the store's lease: every write this one tries for the store is refused.

    Attributes:
        store_key: The journal's key of the store.
        owner: The lease holder this process is, or was.
    """

    def __init__(self, message: str, *, store_key: str, owner: str | None = None) -> None:
        super().__init__(message)
        self.store_key = store_key
        self.owner = owner


class QueueError(RefImportError):
    """An SQS queue (of requests or of result documents) does not exist or may not be used.

    Attributes:
        queue_url: The queue concerned.
        code: The service's error code (``QueueDoesNotExist``, ``AccessDenied`` ...).
    """

    def __init__(self, message: str, *, queue_url: str, code: str) -> None:
        super().__init__(message)
        self.queue_url = queue_url
        self.code = code


class ImporterClosedError(RefImportError):
    """The Importer has been closed; create a new one."""
