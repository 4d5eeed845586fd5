"""Every name the simulator takes from the engine, in one place.

The library's modules are being moved into sub-packages; when one moves, this is the one file to
edit. A few private names are needed (marked): the simulator runs the engine's own code and
reaches a few of its insides (see ENGINE_CHANGES.md).
"""

from __future__ import annotations

from async_refimport._errors import (
    JournalError,
    LeaseLostError,
    ServiceError,
    StoreBookedError,
    TransientServiceError,
)
from async_refimport._models import ImportRequest, RowState, StoreRef
from async_refimport._pacing import Pacer, PacingPolicy
from async_refimport._retry import RetryPolicy
from async_refimport._settings import ImporterSettings
from async_refimport.completion.polling import PollingWatcher
from async_refimport.engine import start as start_module  # the Start loop calls its `classify`
from async_refimport.engine.importer import Importer
from async_refimport.engine.lane import Lane
from async_refimport.engine.start import StartAction
from async_refimport.gateway.aws import AwsGateway
from async_refimport.journal import sqlite_schema as schema_module  # its SCHEMA (a mutation)
from async_refimport.journal.sqlite import SQLiteJournal
from async_refimport.journal.sqlite_schema import explain as explain_sqlite_error

__all__ = [
    "AwsGateway",
    "ImportRequest",
    "Importer",
    "ImporterSettings",
    "JournalError",
    "Lane",
    "LeaseLostError",
    "Pacer",
    "PacingPolicy",
    "PollingWatcher",
    "RetryPolicy",
    "RowState",
    "SQLiteJournal",
    "ServiceError",
    "StartAction",
    "StoreBookedError",
    "StoreRef",
    "TransientServiceError",
    "explain_sqlite_error",
    "schema_module",
    "start_module",
]
