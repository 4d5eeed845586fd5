"""What data may print (issue 25): :func:`printable` neutralises control characters, and
:func:`redact_url` / the store keys keep the user part of endpoint URLs out of output and
journals, while a key without one keeps the form existing journals hold."""

from __future__ import annotations

import pytest

from async_refimport._logconfig import redact_text
from async_refimport._models import RowState, StoreRef, printable, redact_url, without_userinfo
from async_refimport._report import csv_cell


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("hg38", "hg38"),
        ("Homo sapiens (GRCh38) é 😀", "Homo sapiens (GRCh38) é 😀"),
        ("a\x1b[31mb", "a\\x1b[31mb"),
        ("x\ny\r", "x\\ny\\r"),
        ("\u202eevil", "\\u202eevil"),
        ("bell\x07\x9b", "bell\\x07\\x9b"),
    ],
)
def test_printable_escapes_controls_and_leaves_the_rest(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(text).isprintable()


@pytest.mark.parametrize(
    ("url", "redacted", "bare"),
    [
        ("http://admin:hunter2@host:8080/x", "http://***@host:8080/x", "http://host:8080/x"),
        ("https://user@h", "https://***@h", "https://h"),
        ("http://a:p@ss@h/p?q=a@b", "http://***@h/p?q=a@b", "http://h/p?q=a@b"),
        ("http://host/p?mail=a@b", "http://host/p?mail=a@b", "http://host/p?mail=a@b"),
        ("http://host:1", "http://host:1", "http://host:1"),
    ],
)
def test_the_user_part_of_a_url_is_redacted_or_dropped(url: str, redacted: str, bare: str) -> None:
    assert redact_url(url) == redacted
    assert without_userinfo(url) == bare
    assert redact_url(f"no answer from {url} in 20 s") == f"no answer from {redacted} in 20 s"


def test_log_lines_never_show_a_url_password() -> None:
    line = redact_text("connecting to 'http://admin:hunter2@10.0.0.1:443/' failed", known=[])
    assert "hunter2" not in line and "http://***@10.0.0.1:443/" in line


def test_store_keys_keep_no_password_and_keys_without_one_are_unchanged() -> None:
    plain = StoreRef("1234567890", "us-east-1", "http://127.0.0.1:9", "p")
    assert plain.key == "p|us-east-1|http://127.0.0.1:9|1234567890"  # as journals always held
    secret = StoreRef("1234567890", "us-east-1", "http://admin:hunter2@127.0.0.1:9", "p")
    assert secret.key == plain.key
    assert StoreRef.from_key(secret.key) == plain


def test_csv_report_cells_keep_tabs_and_line_breaks_but_no_terminal_controls() -> None:
    assert csv_cell("a\x1b]0;t\x07b\tc\nd\u202e") == "a\\x1b]0;t\\x07b\tc\nd\\u202e"


def test_documents_of_stores_show_no_endpoint_password() -> None:
    from async_refimport._application import JournalStatus, stores_document
    from async_refimport.engine.status import ImporterStatus, StoreStatus

    store = StoreRef("1234567890", "us-east-1", "http://admin:hunter2@host:9")
    served = stores_document(ImporterStatus((StoreStatus(store, {RowState.QUEUED: 1}),), (), False))
    assert served["stores"][0]["endpoint_url"] == "http://***@host:9"
    journal = JournalStatus("j.db", {store: {RowState.QUEUED: 1}}, [], 0).document()
    assert journal["stores"][0]["endpoint_url"] == "http://***@host:9"


def test_another_librarys_log_message_is_one_line_without_terminal_controls() -> None:
    import logging

    from async_refimport._logconfig import EventFormatter

    record = logging.LogRecord(
        "botocore", logging.WARNING, __file__, 1, "body: %s", ("\x1b[2J\nFAKE line",), None
    )
    line = EventFormatter().format(record)
    assert "\x1b" not in line and "\n" not in line
    assert "body: \\x1b[2J\\nFAKE line" in line
