"""Reports rendered from results and jobs, and the logging redaction processor."""

from __future__ import annotations

import csv
import io
import json
import logging

import pytest

from async_refimport._logconfig import REDACTED, EventFormatter, redact
from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport._report import render_csv, render_html, render_json
from async_refimport.journal.base import JobRecord, JobState

STORE = StoreRef("1234567890", "us-east-1")


def results() -> list[RowResult]:
    return [
        RowResult(
            1, STORE.store_id, "us-east-1", "hg38", "s3://b/hg38.fa", RowState.IMPORTED, "111", "j1"
        ),
        RowResult(
            2,
            STORE.store_id,
            "us-east-1",
            "mm39",
            "s3://b/mm39.fa",
            RowState.ALREADY_PRESENT,
            "222",
        ),
        RowResult(
            3,
            STORE.store_id,
            "us-east-1",
            "<bad>",
            "s3://b/x.fa",
            RowState.FAILED,
            None,
            "j1",
            "Invalid FASTA: <oops> & more",
        ),
    ]


def jobs() -> list[JobRecord]:
    return [
        JobRecord(
            1,
            STORE,
            "tok1",
            "arn:aws:iam::1:role/r",
            JobState.DONE,
            100.0,
            "j1",
            101.0,
            160.0,
            "COMPLETED_WITH_FAILURES",
            "1 of 2 sources failed",
        ),
        JobRecord(
            2,
            StoreRef("9999999999", "eu-west-1"),
            "tok2",
            "arn:aws:iam::1:role/r",
            JobState.RUNNING,
            150.0,
            "j2",
            151.0,
        ),
    ]


def test_json_document() -> None:
    doc = json.loads(render_json(results()))
    assert doc["summary"] == {"total": 3, "imported": 1, "already_present": 1, "failed": 1}
    assert doc["items"][0] == {
        "store_id": STORE.store_id,
        "name": "hg38",
        "source_file": "s3://b/hg38.fa",
        "status": "IMPORTED",
        "reference_id": "111",
        "md5": None,
        "job_id": "j1",
        "message": None,
        "arn": None,  # the row keeps no role: no account to name
        "uri": None,
    }


def test_csv_report() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(results()))))
    assert [r["status"] for r in rows] == ["IMPORTED", "ALREADY_PRESENT", "FAILED"]
    assert rows[1]["job_id"] == ""


def test_html_report_is_self_contained_with_timeline_and_failures() -> None:
    html = render_html(results(), jobs(), now=200.0)
    assert "<svg" in html and html.count("<rect") >= 4  # two lanes, two job bars
    assert "1234567890 (us-east-1)" in html and "9999999999 (eu-west-1)" in html
    assert "Invalid FASTA: &lt;oops&gt; &amp; more" in html and "<oops>" not in html
    assert "&lt;bad&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html and "<link" not in html


def test_html_report_without_jobs() -> None:
    assert "No import jobs were started" in render_html([], [], now=0.0)


def test_redaction() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    event = {
        "event": f"calling with {secret}",
        "aws_secret_access_key": "abc",
        "password": "hunter2",
        "token": "t",
        "Authorization": "AWS4-HMAC-SHA256 ...",
        "credentials": {"a": 1},
        "client_token": "keep-me",
        "nested": {"session_token": "x", "ok": "fine"},
        "key": "AKIAABCDEFGHIJKLMNOP",
    }
    out = redact(None, "info", event)
    assert out["event"] == f"calling with {REDACTED}"
    for key in ("aws_secret_access_key", "password", "token", "Authorization", "credentials"):
        assert out[key] == REDACTED
    assert out["client_token"] == "keep-me"
    assert out["nested"] == {"session_token": REDACTED, "ok": "fine"}
    assert "ABCDEFGHIJKLMNOP" not in out["key"]


def test_formatter_redacts_every_loggers_records(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "IQoJb3JpZ2luX2VjEHwaCXVzLWVhc3QtMSJHMEUCIQDexampleSessionToken" * 4
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    monkeypatch.setenv("REFIMPORT_WORKER_TOKEN", "worker-token-1234")
    signature = "a" * 64
    # What botocore prints at DEBUG when it sends a signed request.
    message = (
        "Sending http request: <AWSPreparedRequest method=POST, "
        "headers={'X-Amz-Date': b'20260101T000000Z', "
        f"'X-Amz-Security-Token': b'{token}', "
        "'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIAABCDEFGHIJKLMNOP/20260101/"
        f"us-east-1/omics/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}'}}>"
        " and Bearer worker-token-1234"
    )
    record = logging.LogRecord("botocore.endpoint", logging.DEBUG, "f", 1, message, (), None)
    for fmt in ("console", "json"):
        line = EventFormatter(fmt).format(record)
        for secret in (token, signature, "ABCDEFGHIJKLMNOP", "worker-token-1234", token[:40]):
            assert secret not in line
        assert "botocore.endpoint" in line


def test_formatter_renders_the_librarys_structured_events() -> None:
    record = logging.LogRecord("async_refimport.engine.lane", logging.INFO, "f", 1, "msg", (), None)
    record.refimport_event = {"event": "import_job.started", "job_id": "5012345678", "rows": 3}
    doc = json.loads(EventFormatter("json").format(record))
    assert doc["event"] == "import_job.started"
    assert doc["job_id"] == "5012345678" and doc["rows"] == 3
    assert doc["level"] == "info" and doc["timestamp"].endswith("Z")
