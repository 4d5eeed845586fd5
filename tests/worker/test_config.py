"""``refimport worker``'s flags, parsed into its configuration (no process, no AWS)."""

from __future__ import annotations

import pytest

from async_refimport.manifest.reader import RemoteLimits
from async_refimport.worker.config import (
    build_parser,
    config_from_args,
    has_intake,
    remote_limits,
    split_grace,
)
from async_refimport.worker.intake import intakes_for, spool_intake, sqs_intake


def test_flags_reach_the_engine_and_the_intakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFIMPORT_WORKER_TOKEN", "t0ken-of-the-worker")
    flags = ["--spool", "spool", "--sqs-queue-url", "https://q", "--store-id", "1111111111"]
    flags += ["--allow-store", "2222222222", "--api-rate", "7", "--grace", "8"]
    flags += ["--events-queue-url", "https://e1", "--events-queue-url", "https://e2"]
    args = build_parser().parse_args(flags)
    config = config_from_args(args)
    assert config.token == "t0ken-of-the-worker"
    assert config.defaults.store_id == "1111111111"
    assert config.remote.stores == frozenset({"1111111111", "2222222222"})
    assert config.settings.pacing.rate == 7
    assert config.settings.shutdown_grace == split_grace(8)[0]
    assert config.settings.events is not None
    assert config.settings.events.queue_urls == ("https://e1", "https://e2")
    # A service retries what a run would stop on.
    assert not config.settings.stop_on_journal_failure
    assert not config.settings.stop_on_setup_failure
    assert config.sqs.queue_url == "https://q" and config.sqs.enabled
    assert intakes_for(config) == [spool_intake, sqs_intake]


def test_without_allow_store_remote_rows_may_name_any_store() -> None:
    assert remote_limits([], "1111111111") == RemoteLimits()
    assert remote_limits(["2222222222"], None).stores == frozenset({"2222222222"})


def test_a_worker_needs_an_intake() -> None:
    parser = build_parser()
    assert not has_intake(parser.parse_args(["--store-id", "1111111111"]))
    assert has_intake(parser.parse_args(["--http-port", "0"]))
    assert has_intake(parser.parse_args(["--sqs-queue-url", "https://q"]))


def test_a_bad_sqs_value_is_a_value_error() -> None:
    args = build_parser().parse_args(["--sqs-queue-url", "https://q", "--sqs-wait", "21"])
    with pytest.raises(ValueError, match="wait_time"):
        config_from_args(args)
