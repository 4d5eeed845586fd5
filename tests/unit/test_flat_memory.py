"""A large import in flat memory: the manifest is checked whole but its rows are journaled a chunk
at a time, read again from the file; results come back from the journal a page at a time. What a
user sees must not change: every row once, in manifest order, the same counts and document."""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from async_refimport import Importer, _application
from async_refimport._application import (
    ImportOutcome,
    check_manifest_file,
    read_manifest_file,
    read_results,
    run_import,
)
from async_refimport._errors import ManifestError, RequestValidationError
from async_refimport._models import RowState
from async_refimport._report import JsonReportWriter, Tally, json_document, write_report
from async_refimport._rowset import RowIdSet
from async_refimport.engine import importer as _importer
from async_refimport.journal import opened_journal
from async_refimport.manifest.reader import CheckedManifest, ManifestDefaults, check_manifest
from tests.helpers.common import ROLE_ARN, STORE_ID
from tests.helpers.fakes import FakeOmics
from tests.unit.test_importer_logic import FAST

DEFAULTS = ManifestDefaults(store_id=STORE_ID, role_arn=ROLE_ARN, region="us-east-1")


def write_manifest(path: Path, rows: int, *, broken: bool = True) -> Path:
    lines = ["name,source_file,store_id"]
    for i in range(rows):
        store = STORE_ID if i % 3 else "2234567890"  # two stores
        lines.append(f"ref{i:04d},s3://genomes/ref{i}.fa,{store}")
    if broken:  # a bad row and a repeated name: refused when checked, skipped when read again
        lines.insert(5, "bad,not-an-s3-uri,")
        lines.insert(9, f"ref0001,s3://genomes/again.fa,{STORE_ID}")
    path.write_text("\n".join(lines) + "\n")
    return path


async def run_with(
    fake: FakeOmics, rows: CheckedManifest, journal: Path, stop: anyio.Event | None = None
) -> ImportOutcome:
    """``run_import`` of ``rows`` against the fake service, its waits compressed."""
    return await run_import(
        rows,
        journal=journal,
        region="us-east-1",
        settings=FAST,
        gateway=fake,
        stop=stop,
    )


def test_a_checked_manifest_reads_the_same_rows_again_a_chunk_at_a_time(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.csv", 50)
    whole = read_manifest_file(path, DEFAULTS)
    checked = check_manifest_file(path, DEFAULTS)

    assert checked.errors == whole.errors and len(whole.errors) == 2
    assert checked.manifest.requests == []  # nothing held
    assert checked.valid_rows == 50
    chunks = list(checked.chunks(7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    assert [r for c in chunks for r in c] == whole.requests
    assert sorted(r.store_id for r in checked.stores) == ["1234567890", "2234567890"]


def test_a_manifest_changed_after_its_check_is_refused_not_half_read(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.csv", 20)
    checked = check_manifest_file(path, DEFAULTS)
    with path.open("a") as f:
        f.write("late,s3://genomes/late.fa,\n")

    with pytest.raises(ManifestError) as caught:
        next(checked.chunks(5))
    assert str(caught.value.errors[0]).endswith("file: changed while being imported; run again")
    assert caught.value.errors[0].source == str(path)


def test_standard_input_is_read_once_and_replayed_from_a_copy(tmp_path: Path) -> None:
    data = write_manifest(tmp_path / "m.csv", 12).read_bytes()
    stdin = io.BytesIO(data)
    checked = check_manifest("-", DEFAULTS, stdin=stdin)
    stdin.close()  # standard input can be read once only: the replay never touches it
    first = [r.name for c in checked.chunks(5) for r in c]
    again = [r.name for c in checked.chunks(5) for r in c]
    assert first == again == [f"ref{i:04d}" for i in range(12)]


async def test_a_run_over_many_chunks_and_pages_imports_every_row_once_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_application, "SUBMIT_CHUNK", 7)
    monkeypatch.setattr(_importer, "RESULTS_PAGE", 5)
    path = write_manifest(tmp_path / "m.csv", 60)
    checked = check_manifest_file(path, DEFAULTS)
    journal = tmp_path / "journal.sqlite"
    fake = FakeOmics(polls_to_finish=1)

    outcome = await run_with(fake, checked, journal)

    results = [r async for page in read_results(journal, outcome.row_ids) for r in page]
    assert [r.name for r in results] == [f"ref{i:04d}" for i in range(60)]  # manifest order
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert sum(len(job.sources) for job in fake.jobs.values()) == 60  # each row sent once
    assert outcome.summary == {"total": 60, "imported": 60, "already_present": 0, "failed": 0}
    assert outcome.tally.per_store == Tally.of(results).per_store
    assert not outcome.stopped and outcome.pending == 0

    # The document written a page at a time is the one written whole.
    out = io.StringIO()
    writer = JsonReportWriter(out, outcome.summary)
    async for page in read_results(journal, outcome.row_ids):
        writer.write(page)
    writer.close()
    assert out.getvalue() == json.dumps(json_document(results), indent=2, ensure_ascii=False) + "\n"

    # Run again: nothing is sent, every row is reported again.
    again = await run_with(fake, check_manifest_file(path, DEFAULTS), journal)
    assert list(again.row_ids) == list(outcome.row_ids)
    assert sum(len(job.sources) for job in fake.jobs.values()) == 60


def test_an_empty_document_is_the_same_streamed() -> None:
    out = io.StringIO()
    writer = JsonReportWriter(out, Tally().summary())
    writer.close()
    assert json.loads(out.getvalue()) == json_document([])
    assert out.getvalue() == json.dumps(json_document([]), indent=2) + "\n"


@settings(max_examples=200, deadline=None, database=None)
@given(
    universe=st.lists(st.integers(1, 10**12), max_size=40),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 60)), max_size=80),
)
def test_a_row_id_set_behaves_as_a_set_of_its_universe(
    universe: list[int], ops: list[tuple[bool, int]]
) -> None:
    compact, plain = RowIdSet(universe), set[int]()
    for add, pick in ops:
        row_id = universe[pick % len(universe)] if universe and pick < 50 else -pick
        if add and row_id in universe:
            compact.add(row_id)
            plain.add(row_id)
        elif not add:
            compact.discard(row_id)  # an id outside the universe is ignored
            plain.discard(row_id)
        assert len(compact) == len(plain) and bool(compact) == bool(plain)
        assert list(compact) == sorted(plain)
        assert (row_id in compact) == (row_id in plain)
    with pytest.raises(KeyError):
        compact.add(-1)


async def test_a_manifest_changed_before_the_run_reads_it_again_stops_the_run_and_loses_nothing(
    tmp_path: Path,
) -> None:
    path = write_manifest(tmp_path / "m.csv", 30)
    checked = check_manifest_file(path, DEFAULTS)
    path.write_text(path.read_text().replace("ref0007", "ref7777"))  # edited meanwhile
    journal = tmp_path / "journal.sqlite"
    fake = FakeOmics(polls_to_finish=1)

    with pytest.raises(ManifestError) as caught:
        await run_with(fake, checked, journal)
    assert "changed while being imported" in str(caught.value)
    assert not fake.jobs  # not a row of the edited file was sent

    # Checked again, the edited manifest imports every row once.
    outcome = await run_with(fake, check_manifest_file(path, DEFAULTS), journal)
    assert outcome.summary["imported"] == 30
    assert sorted(s.name for job in fake.jobs.values() for s in job.sources) == sorted(
        f"ref{i:04d}" if i != 7 else "ref7777" for i in range(30)
    )


def test_a_manifest_from_a_pipe_is_read_once_and_replayed_from_a_copy(tmp_path: Path) -> None:
    data = write_manifest(tmp_path / "m.csv", 12).read_bytes()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # what `refimport import <(zcat m.csv.gz) --format csv` reads
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    checked = check_manifest(fifo, DEFAULTS, format="csv")
    writer.join(5)
    names = [r.name for c in checked.chunks(5) for r in c]
    assert (
        names
        == [r.name for c in checked.chunks(5) for r in c]
        == [f"ref{i:04d}" for i in range(12)]
    )


def test_a_manifest_changed_while_it_is_read_again_is_refused_before_its_next_chunk(
    tmp_path: Path,
) -> None:
    path = write_manifest(tmp_path / "m.csv", 20)
    chunks = check_manifest_file(path, DEFAULTS).chunks(5)
    next(chunks)
    with path.open("r+") as f:  # rewritten in place: the same file, other rows
        f.write(f.read().replace("ref0019", "ref9999"))
    with pytest.raises(ManifestError, match="changed while being imported"):
        list(chunks)


async def test_a_conflict_in_a_later_chunk_journals_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_application, "SUBMIT_CHUNK", 7)
    journal = tmp_path / "journal.sqlite"
    fake = FakeOmics(polls_to_finish=1)
    first = write_manifest(tmp_path / "first.csv", 30)
    await run_with(fake, check_manifest_file(first, DEFAULTS), journal)
    sent = sum(len(job.sources) for job in fake.jobs.values())
    # Rows 30..59 are new; ref0025 (in the fourth chunk) now names another file.
    second = tmp_path / "second.csv"
    text = write_manifest(tmp_path / "all.csv", 60).read_text()
    second.write_text(text.replace("s3://genomes/ref25.fa", "s3://genomes/other25.fa"))

    with pytest.raises(RequestValidationError) as caught:
        await run_with(fake, check_manifest_file(second, DEFAULTS), journal)
    [problem] = caught.value.errors
    assert problem.field == "source_file" and problem.row_name == "ref0025"
    assert sum(len(job.sources) for job in fake.jobs.values()) == sent  # nothing new sent
    async with opened_journal(journal, read_only=True) as opened:
        assert len(await opened.results()) == 30  # nothing new journaled


async def test_a_run_stopped_before_its_rows_are_journaled_says_they_are_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_application, "SUBMIT_CHUNK", 7)
    stop = anyio.Event()
    stop.set()  # Ctrl-C before the first chunk
    fake = FakeOmics(polls_to_finish=1)
    outcome = await run_with(
        fake,
        check_manifest_file(write_manifest(tmp_path / "m.csv", 30), DEFAULTS),
        tmp_path / "journal.sqlite",
        stop=stop,
    )
    assert outcome.stopped and outcome.pending == 30 and outcome.not_journaled == 30
    assert not fake.jobs


async def test_a_manifest_changed_after_its_first_chunk_was_journaled_imports_that_chunk_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_application, "SUBMIT_CHUNK", 7)
    path = write_manifest(tmp_path / "m.csv", 30)
    submit = Importer.submit

    async def submit_then_edit(self: Importer, requests: Any, **kw: Any) -> list[int]:
        ids = await submit(self, requests, **kw)
        path.write_text(path.read_text().replace("ref0029", "ref9999"))  # edited meanwhile
        return ids

    monkeypatch.setattr(Importer, "submit", submit_then_edit)
    fake = FakeOmics(polls_to_finish=1)
    outcome = await run_with(fake, check_manifest_file(path, DEFAULTS), tmp_path / "j.sqlite")

    assert outcome.manifest_changed is not None
    assert "changed while being imported" in str(outcome.manifest_changed)
    assert outcome.summary["imported"] == 7 and outcome.not_journaled == 23
    assert sorted(s.name for job in fake.jobs.values() for s in job.sources) == [
        f"ref{i:04d}" for i in range(7)
    ]


async def test_requests_in_memory_repeating_a_name_across_chunks_journal_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_application, "SUBMIT_CHUNK", 7)
    rows = check_manifest_file(write_manifest(tmp_path / "m.csv", 20), DEFAULTS)
    requests = [r for chunk in rows.chunks() for r in chunk]
    requests.append(replace(requests[0], source_file="s3://genomes/other.fa"))  # in chunk 3
    fake = FakeOmics(polls_to_finish=1)
    with pytest.raises(RequestValidationError):
        await run_import(
            requests,
            journal=tmp_path / "j.sqlite",
            region="us-east-1",
            settings=FAST,
            gateway=fake,  # type: ignore[arg-type]
        )
    assert not fake.jobs
    async with opened_journal(tmp_path / "j.sqlite", read_only=True) as opened:
        assert await opened.results() == []


def test_a_report_written_to_a_link_goes_where_it_points(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)  # as /dev/stdout is a link to the terminal or the redirected file
    write_report(link, "new report\n")
    assert link.is_symlink() and target.read_text() == "new report\n"


def test_the_cli_says_how_many_rows_a_manifest_changed_mid_run_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from async_refimport.cli import import_ as _cli_import
    from async_refimport.cli import main as _cli

    monkeypatch.setattr(_application, "SUBMIT_CHUNK", 7)
    path = write_manifest(tmp_path / "m.csv", 30, broken=False)
    submit = Importer.submit

    async def submit_then_edit(self: Importer, requests: Any, **kw: Any) -> list[int]:
        ids = await submit(self, requests, **kw)
        path.write_text(path.read_text().replace("ref0029", "ref9999"))
        return ids

    monkeypatch.setattr(Importer, "submit", submit_then_edit)
    fake = FakeOmics(polls_to_finish=1)

    class FakeGateway(_importer.AwsGateway):
        def __new__(cls, **_: Any) -> Any:  # the CLI's gateway is the fake
            return fake

    monkeypatch.setattr(_importer, "AwsGateway", FakeGateway)
    monkeypatch.setattr(_cli_import, "ImporterSettings", lambda **kw: replace(FAST, **kw))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")

    code = _cli.main(
        ["import", str(path), "--journal", str(tmp_path / "j.sqlite"), "--role-arn", ROLE_ARN,
         "--store-id", STORE_ID, "--region", "us-east-1", "--no-check-sources", "--quiet"]
    )  # fmt: skip

    err = capsys.readouterr().err
    assert code == 2
    assert "changed while being imported" in err
    assert "23 row(s) not imported" in err and "Traceback" not in err
    assert sum(len(job.sources) for job in fake.jobs.values()) == 7
