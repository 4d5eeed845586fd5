"""The SQS intake's result documents of rejected messages, and its counters' outcomes (no queue)."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from async_refimport import FieldError
from async_refimport.aws.sqs import MAX_MESSAGE_BYTES
from async_refimport.worker.intakes.sqs.documents import error_dict, rejection_body
from async_refimport.worker.intakes.sqs.intake import MessageOutcome
from async_refimport.worker.intakes.sqs.outbox import DocumentOutcome


def test_a_rejection_lists_every_problem_when_they_fit() -> None:
    errors = [FieldError("name", "is required", line=i, source="requests") for i in (1, 2)]
    doc = json.loads(rejection_body("m-1", errors))
    assert doc["message_id"] == "m-1"
    assert doc["summary"]["total"] == 0 and doc["items"] == []
    assert [e["message"] for e in doc["errors"]] == [
        "requests[1]: name: is required",
        "requests[2]: name: is required",
    ]
    assert doc["errors"][0]["index"] == 1 and "line" not in doc["errors"][0]


def test_a_rejection_too_large_for_a_message_keeps_its_first_hundred_problems() -> None:
    reason = "x" * 500
    errors = [FieldError("name", reason, line=i, source="s3://b/k.csv") for i in range(1, 2001)]
    body = rejection_body("m-2", errors)
    assert len(body.encode()) <= MAX_MESSAGE_BYTES
    doc = json.loads(body)
    assert len(doc["errors"]) == 100
    assert doc["errors"][0]["source"] == "s3://b/k.csv" and doc["errors"][0]["line"] == 1


def test_a_problem_of_the_message_itself_names_no_source() -> None:
    out = error_dict(FieldError("body", "not a JSON document", source="message"))
    assert out["source"] is None and out["message"] == "body: not a JSON document"


def test_outcome_labels_are_the_names_the_metrics_always_had() -> None:
    from prometheus_client import Counter

    counter = Counter("t", "t", ["outcome"], registry=CollectorRegistry())
    for outcome in [*MessageOutcome, *DocumentOutcome]:
        counter.labels(outcome).inc()
    labels = {s.labels["outcome"] for m in counter.collect() for s in m.samples}
    assert labels == {"journaled", "rejected", "retried", "sent", "duplicate", "failed"}
