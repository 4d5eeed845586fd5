"""Fuzzing what the worker's queues may carry: whatever a message's body (100,000 nested brackets,
a megabyte of digits, a key given twice, lone surrogates, a BOM, NUL, anything but an object), the
events watcher and the request intake decide on it without an exception, and every message they
cannot use ends deleted (a request message answered first), never handed back to come again.

Both run in this process on in-memory fakes: an SQS that records what is done with each message,
the in-memory gateway, a SQLite journal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from async_refimport import ImporterSettings, PollingPolicy, RetryPolicy, SQLiteJournal
from async_refimport._errors import RequestValidationError
from async_refimport.aws.sqs import Message, ObjectUnavailable
from async_refimport.completion.events import (
    EventsPolicy,
    EventWatcher,
    JobEvent,
    MessageFate,
    read_event,
)
from async_refimport.completion.polling import PollingWatcher
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults
from async_refimport.testing import MemoryGateway
from async_refimport.worker.intakes.sqs.intake import SqsIntake
from async_refimport.worker.intakes.sqs.messages import MessageBody, parse_body
from tests.helpers.common import ROLE_ARN, STORE_ID

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis directory in the worktree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FAST = ImporterSettings(
    retry=RetryPolicy(attempts=2, initial=0.001, max_backoff=0.01),
    polling=PollingPolicy(first_poll=0.001, min_interval=0.001, max_interval=0.01),
    busy_wait=0.01,
    rescan_interval=0.05,
)
DEFAULTS = ManifestDefaults(store_id=STORE_ID, role_arn=ROLE_ARN, region="us-east-1")
REQUESTS = "https://sqs.us-east-1.amazonaws.com/123456789012/requests"
RESULTS = "https://sqs.us-east-1.amazonaws.com/123456789012/results"
EVENTS = "https://sqs.us-east-1.amazonaws.com/123456789012/omics-events"


@dataclass
class FakeSqs:
    """Records what is done with each message (by receipt handle)."""

    deleted: list[str] = field(default_factory=list)
    visibility: list[tuple[str, int]] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def delete(self, queue_url: str, receipt_handle: str) -> None:
        self.deleted.append(receipt_handle)

    async def set_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        self.visibility.append((receipt_handle, seconds))

    async def send(self, queue_url: str, body: str, *, dedup_id: str | None = None) -> str:
        self.sent.append((queue_url, body))
        return "sent-" + str(len(self.sent))

    async def download_object(self, uri: str, dest: Any, *, max_bytes: int) -> int:
        raise ObjectUnavailable(f"{uri}: NoSuchKey: no such key", uri=uri, code="NoSuchKey")

    async def aclose(self) -> None:
        pass


# -- what a hostile or broken producer sends --------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["s3://genomes/a.fa", "hg38", ROLE_ARN, STORE_ID, "aws.omics", "\x00"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
_ROW = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=20) | _SCALARS,
        "source_file": st.sampled_from(["s3://genomes/a.fa", "s3://genomes/b.fa", "", "x"]),
        "store_id": st.sampled_from([STORE_ID, "", "1", "9" * 30]),
        "tags": _JSON,
        "description": _SCALARS,
        "endpoint_url": st.just("http://127.0.0.1:1"),
        "colour": st.just("blue"),
    },
)
_DEPTH = st.integers(min_value=1, max_value=200_000)
_NESTED = st.one_of(
    _DEPTH.map(lambda n: "[" * n),
    _DEPTH.map(lambda n: "[" * n + "]" * n),
    _DEPTH.map(lambda n: '{"a":' * n + "1" + "}" * n),
    _DEPTH.map(lambda n: '{"requests":' + "[" * n + "]" * n + "}"),
    _DEPTH.map(lambda n: '{"source":"aws.omics","detail":' + '{"x":' * n + "0" + "}" * (n + 1)),
)
_HUGE = st.sampled_from([5_000, 100_000, 2_000_000]).map(lambda n: "9" * n)
_DUPLICATED = st.sampled_from(
    [
        '{"requests":[{"name":"a","name":"b","source_file":"s3://genomes/a.fa"}]}',
        '{"requests":[{"name":"a","source_file":"s3://genomes/a.fa"}],"requests":[]}',
        '{"manifest":"s3://bucket/a.csv","manifest":"s3://bucket/b.csv"}',
        '{"source":"aws.omics","source":"aws.omics","detail-type":"Reference Import Job Status '
        'Change","detail":{"id":"1","referenceStoreId":"2","status":"COMPLETED"}}',
    ]
)
# Any code point: lone surrogates, NUL, controls, a BOM.
_TEXT = st.text(st.characters(exclude_categories=()), max_size=200)
_REQUEST_SHAPED = st.one_of(
    st.lists(_ROW, max_size=4).map(lambda rows: json.dumps({"requests": rows})),
    _JSON.map(lambda m: json.dumps({"manifest": m})),
    st.builds(lambda m, f: json.dumps({"manifest": m, "format": f}), _TEXT, _JSON),
    _JSON.map(lambda j: json.dumps({"requests": j})),
)
_EVENT_SHAPED = st.builds(
    lambda source, kind, detail: json.dumps(
        {"source": source, "detail-type": kind, "detail": detail}
    ),
    st.sampled_from(["aws.omics", "aws.s3"]) | _SCALARS,
    st.sampled_from(["Reference Import Job Status Change", "x"]) | _SCALARS,
    _JSON
    | st.fixed_dictionaries(
        {"id": _SCALARS, "referenceStoreId": _SCALARS, "status": _SCALARS | st.just("COMPLETED")}
    ),
)
BODIES = st.one_of(
    _JSON.map(json.dumps),
    _JSON.map(lambda j: json.dumps(j, ensure_ascii=False)),
    _REQUEST_SHAPED,
    _EVENT_SHAPED,
    _NESTED,
    _HUGE,
    _DUPLICATED,
    _TEXT,
    _REQUEST_SHAPED.map(lambda b: "\ufeff" + b),
    st.sampled_from(["", " ", "null", "[]", "1e999", "-0", '"x"', "{", "}", "\ud800"]),
)


# -- the events watcher --------------------------------------------------------------------------


def test_a_body_of_100_000_nested_brackets_is_no_event_and_raises_nothing() -> None:
    assert isinstance(read_event("[" * 100_000), str)
    assert isinstance(read_event("{" * 100_000), str)


@FUZZ
@given(body=BODIES)
def test_the_events_watcher_deletes_every_message_it_cannot_use(
    body: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    read = read_event(body)  # never raises
    assert isinstance(read, JobEvent | str)
    journal_path = tmp_path_factory.mktemp("events") / "j.sqlite"

    async def main() -> tuple[MessageFate, FakeSqs]:
        sqs = FakeSqs()
        gateway = MemoryGateway()
        async with SQLiteJournal(journal_path) as journal:
            watcher = EventWatcher(
                gateway,
                PollingWatcher(gateway, PollingPolicy(first_poll=0.001, min_interval=0.001)),
                {EVENTS: sqs},  # type: ignore[dict-item]
                journal,
                EventsPolicy(),
            )
            fate = await watcher.handle(EVENTS, Message("m-1", "h-1", body))
        return fate, sqs

    fate, sqs = anyio.run(main)
    # No job is waited on, none is journaled: nobody can use any message, so each is deleted.
    assert fate is MessageFate.DELETED
    assert sqs.deleted == ["h-1"] and sqs.visibility == []


# -- the request intake --------------------------------------------------------------------------


@FUZZ
@given(body=BODIES)
def test_a_body_is_parsed_or_refused_never_an_exception(body: str) -> None:
    try:
        parsed = parse_body(body, DEFAULTS)
    except RequestValidationError as exc:
        assert exc.errors
        for error in exc.errors:
            assert "\n" not in f"{error.field}: {error.reason}"
    else:
        assert isinstance(parsed, MessageBody)
        assert bool(parsed.requests) != (parsed.manifest is not None)


@pytest.mark.parametrize(
    "body",
    [
        '{"requests":[{"name":"a","name":"b","source_file":"s3://genomes/a.fa"}]}',
        '{"requests":[{"name":"a","source_file":"s3://genomes/a.fa"}],"requests":[]}',
        '{"manifest":"s3://bucket/a.csv","manifest":"s3://bucket/b.csv"}',
    ],
)
def test_a_key_given_twice_is_refused_as_the_manifest_reader_refuses_it(body: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_body(body, DEFAULTS)
    [error] = caught.value.errors
    assert error.field == "body" and "given twice" in error.reason


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, SqsIntake, FakeSqs]]:
    """An SqsIntake over a fake SQS, on an open Importer (in-memory gateway) run by a portal."""
    journal = tmp_path_factory.mktemp("fuzz-sqs") / "j.sqlite"
    sqs = FakeSqs()
    with anyio.from_thread.start_blocking_portal() as portal:
        importer = Importer(journal, gateway=MemoryGateway(), region="us-east-1", settings=FAST)
        with portal.wrap_async_context_manager(importer) as imp:
            yield (
                portal,
                SqsIntake(imp, sqs, REQUESTS, DEFAULTS, results_queue_url=RESULTS),  # type: ignore[arg-type]
                sqs,
            )


_COUNTER = iter(range(10**9))


@FUZZ
@given(body=BODIES)
def test_every_request_message_is_journaled_or_answered_and_deleted_never_handed_back(
    body: str, intake: tuple[Any, SqsIntake, FakeSqs]
) -> None:
    portal, sqs_intake, sqs = intake
    n = next(_COUNTER)
    message = Message(f"m-{n}", f"h-{n}", body)
    sent_before = len(sqs.sent)
    try:
        parse_body(body, DEFAULTS)
    except RequestValidationError:
        invalid = True
    else:
        invalid = False
    sqs_intake._in_flight += 1  # as the receiving loop counts it
    portal.call(sqs_intake._handle, message)  # never raises
    assert sqs.deleted[-1] == message.receipt_handle
    assert all(handle != message.receipt_handle for handle, _ in sqs.visibility)
    if invalid:
        # Answered first: the result document names the message and lists its problems.
        [(queue, doc)] = sqs.sent[sent_before:]
        answer = json.loads(doc)
        assert queue == RESULTS and answer["message_id"] == message.message_id
        assert answer["errors"] and answer["summary"]["total"] == 0
    assert sqs_intake.in_flight == 0


class BrokenImporter:
    """An Importer whose every submit fails unexpectedly (a bug, not a verdict)."""

    region = "us-east-1"
    stopping = False
    journal = None

    async def submit(self, requests: Any, *, submission: str | None = None) -> list[int]:
        raise RuntimeError("a bug")


@pytest.mark.parametrize(("receive_count", "rejected"), [(1, False), (4, False), (5, True)])
async def test_a_message_failing_unexpectedly_is_handed_back_then_rejected_at_its_fifth_delivery(
    receive_count: int, rejected: bool
) -> None:
    sqs = FakeSqs()
    intake = SqsIntake(
        BrokenImporter(),  # type: ignore[arg-type]
        sqs,  # type: ignore[arg-type]
        REQUESTS,
        DEFAULTS,
        results_queue_url=RESULTS,
    )
    body = json.dumps({"requests": [{"name": "hg38", "source_file": "s3://genomes/a.fa"}]})
    intake._in_flight += 1  # as the receiving loop counts it
    await intake._handle(Message("m-1", "h-1", body, receive_count=receive_count))
    if rejected:
        assert sqs.deleted == ["h-1"] and sqs.visibility == []
        [(_, doc)] = sqs.sent
        [error] = json.loads(doc)["errors"]
        assert "5 deliveries" in error["message"] and "RuntimeError" in error["message"]
    else:
        assert sqs.deleted == [] and sqs.sent == []
        assert sqs.visibility == [("h-1", intake.settings.retry_delay)]
