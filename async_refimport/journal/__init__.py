"""The journal: the single, durable source of truth about every row and every import job.

* :mod:`~async_refimport.journal.base`: the seam, interface only (the role Protocols and the
  record types in their signatures);
* :mod:`~async_refimport.journal.sqlite`: :class:`~async_refimport.SQLiteJournal`, one local file;
* :mod:`~async_refimport.journal.dynamo`: :class:`~async_refimport.DynamoJournal`, one DynamoDB
  table a fleet shares (imported lazily: SQLite users never load the AWS SDK).

:func:`resolve_journal` picks one from what a user names: a path or ``dynamodb://TABLE``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from async_refimport._errors import JournalError
from async_refimport._models import quoted
from async_refimport.journal._common import lease_owner_name
from async_refimport.journal.base import Journal, Outbox, StagingQueue
from async_refimport.journal.sqlite import SQLiteJournal, default_journal_path

if TYPE_CHECKING:
    from async_refimport.aws.clients import ClientPool

__all__ = [
    "JOURNAL_URL_HELP",
    "is_dynamo_url",
    "journal_spec_problem",
    "lease_owner_name",
    "opened_journal",
    "outbox_of",
    "resolve_journal",
    "staging_of",
]

JOURNAL_URL_HELP = "a SQLite file path, or dynamodb://TABLE for a journal shared by a fleet"
"""What ``--journal`` accepts, for help texts."""

# "scheme://" at the start (RFC 3986 scheme syntax, two characters or more: "C:/x" is no URL).
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")
_DYNAMO_SCHEME = "dynamodb"


def is_dynamo_url(spec: str | os.PathLike[str] | None) -> bool:
    """Whether ``spec`` names a DynamoDB journal: ``dynamodb:`` in any case.

    Args:
        spec: What ``--journal`` gave.

    Returns:
        True for ``dynamodb:...`` (``DynamoDB://t`` too: URL schemes are case-insensitive).
    """
    return isinstance(spec, str) and spec[: len(_DYNAMO_SCHEME) + 1].lower() == "dynamodb:"


def journal_spec_problem(spec: str | os.PathLike[str] | None) -> str | None:
    """What is wrong with a journal a user names, before anything is opened or created.

    Args:
        spec: What ``--journal`` gave (None: not given, the default journal).

    Returns:
        One line saying what is wrong (an empty name, a URL of a scheme no journal has), or
        None when ``spec`` can name a journal.
    """
    if spec is None or not isinstance(spec, str) or is_dynamo_url(spec):
        return None
    if not spec.strip():
        return f"--journal {quoted(spec)} names no journal ({JOURNAL_URL_HELP})"
    scheme = _URL_SCHEME.match(spec)
    if scheme is not None:
        # Never made a file named "s3:/x": a URL of another scheme is a mistake.
        return (
            f"--journal {quoted(spec)}: {scheme.group(1)}:// is not a journal URL "
            f"({JOURNAL_URL_HELP})"
        )
    return None


def resolve_journal(
    spec: str | os.PathLike[str] | Journal | None,
    *,
    region: str | None = None,
    read_only: bool = False,
    pool: ClientPool | None = None,
) -> Journal:
    """The journal a user names; nothing is opened here.

    Args:
        spec: A :class:`Journal` (returned as is), ``dynamodb://TABLE[?region=R]`` for a
            :class:`~async_refimport.DynamoJournal`, anything else a SQLite path (``None``: the
            default path, :func:`~async_refimport.journal.sqlite.default_journal_path`).
        region: The fallback Region of a DynamoDB table.
        read_only: Open a SQLite journal for reading only.
        pool: The AWS client pool a DynamoDB journal takes its client from (default: its own);
            the journal leaves a given pool open.

    Returns:
        The journal, not yet open.

    Raises:
        JournalError: a ``dynamodb:`` URL that is not a DynamoDB journal URL, an empty name, or
            a URL of another scheme (see :func:`journal_spec_problem`).
    """
    if spec is None:
        return SQLiteJournal(default_journal_path(), read_only=read_only)
    if not isinstance(spec, str | os.PathLike):
        return spec
    if (problem := journal_spec_problem(spec)) is not None:
        raise JournalError(problem)
    if isinstance(spec, str) and is_dynamo_url(spec):
        # Lazily: SQLite users never load aioboto3.
        from async_refimport.journal.dynamo import DynamoJournal

        return DynamoJournal.from_url(spec, region=region, pool=pool)
    return SQLiteJournal(spec, read_only=read_only)


@asynccontextmanager
async def opened_journal(
    spec: str | os.PathLike[str] | Journal | None,
    *,
    region: str | None = None,
    read_only: bool = False,
) -> AsyncIterator[Journal]:
    """``async with opened_journal("dynamodb://t") as journal:`` (see :func:`resolve_journal`).

    Args:
        spec: What :func:`resolve_journal` takes.
        region: The fallback Region of a DynamoDB table.
        read_only: Open a SQLite journal without creating, migrating or changing it, and refuse a
            file that is not a refimport journal (``status`` and ``report``).

    Yields:
        The open journal, closed on exit.

    Raises:
        JournalError: the journal cannot be opened.
    """
    journal = resolve_journal(spec, region=region, read_only=read_only)
    await journal.open()
    try:
        yield journal
    finally:
        await journal.aclose()


def outbox_of(journal: Journal) -> Outbox:
    """The outbox role of ``journal`` (what the worker's SQS intake needs).

    Args:
        journal: The Importer's journal.

    Returns:
        The same object, typed as an :class:`Outbox`.

    Raises:
        TypeError: the journal does not implement :class:`Outbox`.
    """
    if not isinstance(journal, Outbox):
        raise TypeError(
            f"journal {journal!r} keeps no outbox (add_outbox, due_outbox, close_outbox): "
            "it cannot serve the SQS intake"
        )
    return journal


def staging_of(journal: Journal) -> StagingQueue | None:
    """The staging role of ``journal`` (what rows whose source is staged first need), if it has
    one.

    Args:
        journal: The Importer's journal.

    Returns:
        The same object, typed as a :class:`StagingQueue`; ``None`` when it keeps no staging
        rows (a run then refuses sources that need staging, up front).
    """
    return journal if isinstance(journal, StagingQueue) else None
