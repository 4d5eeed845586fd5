"""Result documents: what the results queue receives about each request message.

The document of a journaled message is the one ``refimport import --json`` prints, plus the
request's id::

    {"message_id": "6c0f...", "summary": {"total": 2, "imported": 2, ...}, "items": [...]}

A rejected message's document journals nothing and lists every problem under ``errors``.

Every document fits in one SQS message (256 KiB): a journaled message's keeps its summary and
only the rows that were not imported (``items_omitted`` counts the others), and if even that is
too large, only the summary; a rejected message's keeps its first 100 problems. The full report
is always available from ``refimport report`` or ``GET /v1/imports``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from async_refimport._errors import FieldError
from async_refimport._models import RowResult, RowState
from async_refimport._report import json_document
from async_refimport.aws.sqs import MAX_MESSAGE_BYTES
from async_refimport.worker.intakes.sqs.messages import INLINE_SOURCE, MESSAGE_SOURCE

#: Problems a rejection document keeps when listing them all would not fit in one message.
_MAX_PROBLEMS_TRIMMED = 100


def _fits(body: str) -> bool:
    return len(body.encode()) <= MAX_MESSAGE_BYTES


def result_document(message_id: str, results: Sequence[RowResult]) -> str:
    """The JSON result document of one journaled message, trimmed to fit in one SQS message.

    Args:
        message_id: The request message's MessageId (its submission id).
        results: The message's rows, all final.

    Returns:
        The document's JSON text.
    """
    doc: dict[str, Any] = {"message_id": message_id, **json_document(results)}
    body = json.dumps(doc, default=str)
    if _fits(body):
        return body
    kept = [r for r in results if r.state is not RowState.IMPORTED]
    doc["items"] = json_document(kept)["items"]
    doc["items_omitted"] = len(results) - len(kept)
    body = json.dumps(doc, default=str)
    if _fits(body):
        return body
    doc["items"] = []
    doc["items_omitted"] = len(results)
    return json.dumps(doc, default=str)


def _where(error: FieldError) -> str:
    """Where a problem is, as its message starts (``requests[3]: ``, ``s3://b/k:7: ``)."""
    if error.source == INLINE_SOURCE:
        return f"requests[{error.line}]: " if error.line is not None else ""
    if error.source not in (None, MESSAGE_SOURCE):
        return f"{error.source}:{error.line}: " if error.line else f"{error.source}: "
    return ""


def error_dict(error: FieldError) -> dict[str, Any]:
    """One problem of a rejected message, as its result document lists it.

    Args:
        error: The problem.

    Returns:
        ``field``, ``reason``, ``row_name``, ``index`` (a row given inline) or ``line`` and
        ``source`` (a manifest object), and ``message``, all of it in one line.
    """
    out: dict[str, Any] = {
        "field": error.field,
        "reason": error.reason,
        "row_name": error.row_name,
    }
    if error.source == INLINE_SOURCE:
        out["index"] = error.line
    else:
        out["line"] = error.line
        out["source"] = error.source if error.source not in (None, MESSAGE_SOURCE) else None
    out["message"] = f"{_where(error)}{error.field}: {error.reason}"
    return out


def rejection_document(message_id: str, errors: Sequence[FieldError]) -> dict[str, Any]:
    """The result document of a rejected message: nothing journaled, every problem listed.

    Args:
        message_id: The request message's MessageId.
        errors: Every problem found.

    Returns:
        The document.
    """
    doc: dict[str, Any] = {"message_id": message_id, **json_document([])}
    doc["errors"] = [error_dict(e) for e in errors]
    return doc


def rejection_body(message_id: str, errors: Sequence[FieldError]) -> str:
    """The JSON text of a rejection document, trimmed to fit in one SQS message.

    Args:
        message_id: The request message's MessageId.
        errors: Every problem found.

    Returns:
        The document listing every problem, or the first 100 when all would not fit.
    """
    body = json.dumps(rejection_document(message_id, errors), default=str)
    if _fits(body):
        return body
    return json.dumps(rejection_document(message_id, errors[:_MAX_PROBLEMS_TRIMMED]))
