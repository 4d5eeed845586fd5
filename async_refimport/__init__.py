"""async_refimport: bulk, crash-safe imports of reference genomes into AWS HealthOmics.

The public API (everything else is private and may change)::

    from async_refimport import Importer, ImportRequest

    async with Importer(journal="refimport.sqlite", region="us-east-1") as imp:
        ids = await imp.submit([ImportRequest(store_id, role_arn, "s3://bucket/hg38.fa", "hg38")])
        results = await imp.wait(ids)

The local HealthOmics emulator lives in :mod:`async_refimport.emulator`.
"""

from ._dynamo_journal import DynamoJournal as DynamoJournal
from ._errors import CredentialsError as CredentialsError
from ._errors import FieldError as FieldError
from ._errors import ImporterClosedError as ImporterClosedError
from ._errors import JournalError as JournalError
from ._errors import LeaseLostError as LeaseLostError
from ._errors import ManifestError as ManifestError
from ._errors import PermanentServiceError as PermanentServiceError
from ._errors import QueueError as QueueError
from ._errors import RefImportError as RefImportError
from ._errors import RequestValidationError as RequestValidationError
from ._errors import ServiceError as ServiceError
from ._errors import SetupError as SetupError
from ._errors import StoreBookedError as StoreBookedError
from ._errors import StoreBusyError as StoreBusyError
from ._errors import TransientServiceError as TransientServiceError
from ._errors import ValidationFailed as ValidationFailed
from ._event_watch import EventsPolicy as EventsPolicy
from ._events import Event as Event
from ._events import JobFinished as JobFinished
from ._events import JobStarted as JobStarted
from ._events import RequestRetried as RequestRetried
from ._events import RowSettled as RowSettled
from ._events import RowsQueued as RowsQueued
from ._events import StoreChecked as StoreChecked
from ._events import StorePaused as StorePaused
from ._gateway import AwsGateway as AwsGateway
from ._gateway import ExistingReference as ExistingReference
from ._gateway import JobSnapshot as JobSnapshot
from ._gateway import JobSummary as JobSummary
from ._gateway import OmicsGateway as OmicsGateway
from ._gateway import SourceSpec as SourceSpec
from ._gateway import SourceStatus as SourceStatus
from ._importer import ApiStats as ApiStats
from ._importer import Importer as Importer
from ._importer import ImporterSettings as ImporterSettings
from ._importer import ImporterStatus as ImporterStatus
from ._importer import StorePlan as StorePlan
from ._importer import StoreStatus as StoreStatus
from ._journal import Journal as Journal
from ._journal import SQLiteJournal as SQLiteJournal
from ._journal import default_journal_path as default_journal_path
from ._memory import MemoryGateway as MemoryGateway
from ._models import ImportRequest as ImportRequest
from ._models import RowResult as RowResult
from ._models import RowState as RowState
from ._models import StoreRef as StoreRef
from ._models import validate_request as validate_request
from ._pacing import PacingPolicy as PacingPolicy
from ._polling import PollingPolicy as PollingPolicy
from ._preflight import PreflightPolicy as PreflightPolicy
from ._retry import RetryPolicy as RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "ApiStats",
    "AwsGateway",
    "CredentialsError",
    "DynamoJournal",
    "Event",
    "EventsPolicy",
    "ExistingReference",
    "FieldError",
    "ImportRequest",
    "Importer",
    "ImporterClosedError",
    "ImporterSettings",
    "ImporterStatus",
    "JobFinished",
    "JobSnapshot",
    "JobStarted",
    "JobSummary",
    "Journal",
    "JournalError",
    "LeaseLostError",
    "ManifestError",
    "MemoryGateway",
    "OmicsGateway",
    "PacingPolicy",
    "PermanentServiceError",
    "PollingPolicy",
    "PreflightPolicy",
    "QueueError",
    "RefImportError",
    "RequestRetried",
    "RequestValidationError",
    "RetryPolicy",
    "RowResult",
    "RowSettled",
    "RowState",
    "RowsQueued",
    "SQLiteJournal",
    "ServiceError",
    "SetupError",
    "SourceSpec",
    "SourceStatus",
    "StoreBookedError",
    "StoreBusyError",
    "StoreChecked",
    "StorePaused",
    "StorePlan",
    "StoreRef",
    "StoreStatus",
    "TransientServiceError",
    "ValidationFailed",
    "default_journal_path",
    "validate_request",
]
