"""A run stopped between the chunks it journals reports the rest by their journal state.

The CLI's test (``tests/cli/test_rerun_interrupted.py``) stops a re-run before its first chunk;
this one stops it after its first chunk of several, where the rows left are partly journaled by
an earlier run and partly new (issue 25).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from async_refimport import _application
from async_refimport._application import run_import
from async_refimport._models import ImportRequest, RowState
from async_refimport.engine.importer import Importer
from async_refimport.journal import opened_journal
from tests.helpers.fakes import FakeOmics
from tests.unit.test_importer_logic import FAST, requests


async def test_rows_left_after_a_stop_are_reported_as_the_journal_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, fake = tmp_path / "j.sqlite", FakeOmics(polls_to_finish=1)
    earlier = requests(4)
    first = await run_import(
        earlier, journal=journal, region="us-east-1", settings=FAST, gateway=fake
    )
    assert first.tally.summary()["imported"] == 4

    monkeypatch.setattr(_application, "SUBMIT_CHUNK", 2)
    submit = Importer.submit

    async def submit_then_stop(self: Importer, rows: list[ImportRequest]) -> list[int]:
        ids = await submit(self, rows)
        self.stop()  # Ctrl-C right after the first chunk was journaled
        return ids

    monkeypatch.setattr(Importer, "submit", submit_then_stop)
    again = [*earlier, *requests(2, "new")]
    outcome = await run_import(
        again, journal=journal, region="us-east-1", settings=FAST, gateway=fake
    )
    assert outcome.summary == {"total": 4, "imported": 4, "already_present": 0, "failed": 0}
    assert outcome.not_journaled == 2  # the two new rows, never written to the journal
    assert outcome.stopped
    assert sorted(outcome.row_ids) == sorted(first.row_ids)
    async with opened_journal(journal, read_only=True) as reader:
        everything = await reader.results()
    assert {r.name: r.state for r in everything} == {f"ref{i}": RowState.IMPORTED for i in range(4)}
