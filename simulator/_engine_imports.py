"""Every name the simulator takes from the engine, in one place.

The library's modules are being moved into sub-packages; when one moves, this is the one file to
edit. Private names (``journal.sqlite._explain``, ``AwsGateway._client``) are marked: the
simulator runs the engine's own code and needs a few of its insides (see ENGINE_CHANGES.md).
"""

from __future__ import annotations

from async_refimport._errors import (
    JournalError,
    LeaseLostError,
    StoreBookedError,
)
from async_refimport._models import ImportRequest, RowState, StoreRef
from async_refimport._pacing import Pacer, PacingPolicy
from async_refimport._retry import RetryPolicy
from async_refimport._settings import ImporterSettings
from async_refimport.engine import lane as lane_module
from async_refimport.engine.importer import Importer
from async_refimport.gateway.aws import AwsGateway
from async_refimport.journal import sqlite as journal_module
from async_refimport.journal.sqlite import SQLiteJournal
from async_refimport.journal.sqlite import _explain as explain_sqlite_error  # private

__all__ = [
    "AwsGateway",
    "ImportRequest",
    "Importer",
    "ImporterSettings",
    "JournalError",
    "LeaseLostError",
    "Pacer",
    "PacingPolicy",
    "RetryPolicy",
    "RowState",
    "SQLiteJournal",
    "StoreBookedError",
    "StoreRef",
    "explain_sqlite_error",
    "journal_module",
    "lane_module",
]
