"""async_refimport: bulk, crash-safe imports of reference genomes into AWS HealthOmics.

The public API (everything else is private and may change)::

    from async_refimport import Importer, ImportRequest

    async with Importer(journal="refimport.sqlite", region="us-east-1") as imp:
        ids = await imp.submit([ImportRequest(store_id, role_arn, "s3://bucket/hg38.fa", "hg38")])
        results = await imp.wait(ids)

The local HealthOmics emulator lives in :mod:`async_refimport.emulator`.
"""

from importlib import metadata as _metadata
from types import FunctionType as _FunctionType

from async_refimport._errors import CredentialsError as CredentialsError
from async_refimport._errors import FieldError as FieldError
from async_refimport._errors import ImporterClosedError as ImporterClosedError
from async_refimport._errors import JournalError as JournalError
from async_refimport._errors import LeaseLostError as LeaseLostError
from async_refimport._errors import ManifestError as ManifestError
from async_refimport._errors import PermanentServiceError as PermanentServiceError
from async_refimport._errors import QueueError as QueueError
from async_refimport._errors import RefImportError as RefImportError
from async_refimport._errors import RequestValidationError as RequestValidationError
from async_refimport._errors import ServiceError as ServiceError
from async_refimport._errors import SetupError as SetupError
from async_refimport._errors import SetupKind as SetupKind
from async_refimport._errors import StoreBookedError as StoreBookedError
from async_refimport._errors import StoreBusyError as StoreBusyError
from async_refimport._errors import TransientServiceError as TransientServiceError
from async_refimport._errors import ValidationFailed as ValidationFailed
from async_refimport._events import Event as Event
from async_refimport._events import JobFinished as JobFinished
from async_refimport._events import JobStarted as JobStarted
from async_refimport._events import RequestRetried as RequestRetried
from async_refimport._events import RowSettled as RowSettled
from async_refimport._events import RowsQueued as RowsQueued
from async_refimport._events import StoreChecked as StoreChecked
from async_refimport._events import StorePaused as StorePaused
from async_refimport._models import ImportRequest as ImportRequest
from async_refimport._models import RowResult as RowResult
from async_refimport._models import RowState as RowState
from async_refimport._models import StoreRef as StoreRef
from async_refimport._models import validate_request as validate_request
from async_refimport._pacing import PacingPolicy as PacingPolicy
from async_refimport._retry import RetryPolicy as RetryPolicy
from async_refimport.aws.preflight import PreflightPolicy as PreflightPolicy
from async_refimport.completion.base import CompletionWatcher as CompletionWatcher
from async_refimport.completion.events import EventsPolicy as EventsPolicy
from async_refimport.completion.polling import PollingPolicy as PollingPolicy
from async_refimport.engine.importer import ApiStats as ApiStats
from async_refimport.engine.importer import Importer as Importer
from async_refimport.engine.importer import ImporterSettings as ImporterSettings
from async_refimport.engine.importer import ImporterStatus as ImporterStatus
from async_refimport.engine.importer import StorePlan as StorePlan
from async_refimport.engine.importer import StoreStatus as StoreStatus
from async_refimport.gateway.aws import AwsGateway as AwsGateway
from async_refimport.gateway.base import ExistingReference as ExistingReference
from async_refimport.gateway.base import JobSnapshot as JobSnapshot
from async_refimport.gateway.base import JobSummary as JobSummary
from async_refimport.gateway.base import OmicsGateway as OmicsGateway
from async_refimport.gateway.base import SourceSpec as SourceSpec
from async_refimport.gateway.base import SourceStatus as SourceStatus
from async_refimport.journal.base import FinalJobStatus as FinalJobStatus
from async_refimport.journal.base import JobLog as JobLog
from async_refimport.journal.base import JobRecord as JobRecord
from async_refimport.journal.base import JobState as JobState
from async_refimport.journal.base import Journal as Journal
from async_refimport.journal.base import JournalLifecycle as JournalLifecycle
from async_refimport.journal.base import JournalReader as JournalReader
from async_refimport.journal.base import Outbox as Outbox
from async_refimport.journal.base import OutboxEntry as OutboxEntry
from async_refimport.journal.base import QueuedRow as QueuedRow
from async_refimport.journal.base import RowQueue as RowQueue
from async_refimport.journal.base import Settlement as Settlement
from async_refimport.journal.base import StagingQueue as StagingQueue
from async_refimport.journal.base import StagingRow as StagingRow
from async_refimport.journal.base import StoreLeases as StoreLeases
from async_refimport.journal.dynamo import DynamoJournal as DynamoJournal
from async_refimport.journal.sqlite import SQLiteJournal as SQLiteJournal

# The version is written once, in pyproject.toml; the installed distribution's metadata carries it.
__version__ = _metadata.version("async-refimport")

__all__ = [
    "ApiStats",
    "AwsGateway",
    "CompletionWatcher",
    "CredentialsError",
    "DynamoJournal",
    "Event",
    "EventsPolicy",
    "ExistingReference",
    "FieldError",
    "FinalJobStatus",
    "ImportRequest",
    "Importer",
    "ImporterClosedError",
    "ImporterSettings",
    "ImporterStatus",
    "JobFinished",
    "JobLog",
    "JobRecord",
    "JobSnapshot",
    "JobStarted",
    "JobState",
    "JobSummary",
    "Journal",
    "JournalError",
    "JournalLifecycle",
    "JournalReader",
    "LeaseLostError",
    "ManifestError",
    "OmicsGateway",
    "Outbox",
    "OutboxEntry",
    "PacingPolicy",
    "PermanentServiceError",
    "PollingPolicy",
    "PreflightPolicy",
    "QueueError",
    "QueuedRow",
    "RefImportError",
    "RequestRetried",
    "RequestValidationError",
    "RetryPolicy",
    "RowQueue",
    "RowResult",
    "RowSettled",
    "RowState",
    "RowsQueued",
    "SQLiteJournal",
    "ServiceError",
    "Settlement",
    "SetupError",
    "SetupKind",
    "SourceSpec",
    "SourceStatus",
    "StagingQueue",
    "StagingRow",
    "StoreBookedError",
    "StoreBusyError",
    "StoreChecked",
    "StoreLeases",
    "StorePaused",
    "StorePlan",
    "StoreRef",
    "StoreStatus",
    "TransientServiceError",
    "ValidationFailed",
    "validate_request",
]

# Exported names show as ``async_refimport.SetupError`` (in tracebacks, reprs and the docs), not
# as the private module that defines them (httpx does the same). Only the attribute changes:
# pickling and ``isinstance`` find the same objects through this namespace.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type | _FunctionType) and _obj.__module__.startswith(f"{__name__}."):
        _obj.__module__ = __name__
del _name, _obj
