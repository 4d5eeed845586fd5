"""The demo counts rows in the same words and numbers everywhere: its closing panel, the summary
table, the progress line's totals and ``--json`` / ``refimport report``'s summary."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from async_refimport._application import ImportOutcome
from async_refimport._console import outcome_words, print_summary
from async_refimport._models import RowResult, RowState
from async_refimport._report import Tally, json_document
from async_refimport.cli.demo import _print_finish
from tests.helpers.cli import Run

WORDS = re.compile(r"(\d+) rows: (\d+) imported, (\d+) already present, (\d+) failed")


def rows(imported: int, present: int, failed: int) -> list[RowResult]:
    states = (
        [RowState.IMPORTED] * imported
        + [RowState.ALREADY_PRESENT] * present
        + [RowState.FAILED] * failed
    )
    return [
        RowResult(i, "1234567890", "us-east-1", f"g{i}", f"s3://b/g{i}.fa", state, job_id="j1")
        for i, state in enumerate(states)
    ]


def table_totals(text: str) -> tuple[int, ...]:
    """Rows, Imported, Already present, Failed of the table's one store row."""
    line = next(line for line in text.splitlines() if line.lstrip().startswith("1234567890"))
    return tuple(int(n) for n in line.split()[2:6])


def test_the_panel_says_what_the_table_and_the_json_say(tmp_path: Path) -> None:
    results = rows(295, 5, 2)
    outcome = ImportOutcome([r.row_id for r in results], Tally.of(results))
    panel = Console(record=True, width=120)
    _print_finish(
        panel,
        outcome,
        {"calls": {"StartReferenceImportJob": 13}, "throttled": {"GetReferenceImportJob": 4}},
        elapsed=41.0,
        unexpected=0,
        paths={"Journal": tmp_path / "journal.sqlite"},
    )
    panel_text = panel.export_text()
    table = Console(record=True, width=80)
    print_summary(outcome.tally, table)
    table_text = table.export_text()
    summary = json_document(results)["summary"]

    assert "302 rows: 295 imported, 5 already present, 2 failed." in panel_text
    assert "Imported 300" not in panel_text  # the old count of imported + already present
    assert table_totals(table_text) == (302, 295, 5, 2)
    assert re.search(r"Already\s*\n.*present", table_text)
    assert summary == {"total": 302, "imported": 295, "already_present": 5, "failed": 2}
    assert outcome_words(summary) == "302 rows: 295 imported, 5 already present, 2 failed"


def test_rows_still_pending_are_counted_too() -> None:
    summary = {"total": 3, "imported": 1, "already_present": 0, "failed": 0, "pending": 2}
    assert outcome_words(summary) == "3 rows: 1 imported, 0 already present, 0 failed, 2 pending"
    assert outcome_words({"total": 1, "imported": 1}).startswith("1 row: ")


@pytest.mark.slow
def test_the_demos_panel_table_and_report_agree(cli: Callable[..., Run], tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    run = cli("demo", "--rows", "12", "--workdir", workdir, "--time-scale", "0.002")
    assert run.code == 0, run.stderr
    said = WORDS.search(run.stderr)
    assert said is not None, run.stderr
    total, imported, present, failed = map(int, said.groups())
    table_all = next(line for line in run.stdout.splitlines() if line.lstrip().startswith("all"))
    assert tuple(int(n) for n in table_all.split()[1:5]) == (total, imported, present, failed)
    report = cli("report", "--journal", workdir / "journal.sqlite", "--format", "json")
    assert report.json()["summary"] == {
        "total": total,
        "imported": imported,
        "already_present": present,
        "failed": failed,
    }
    # The demo's own set-up: two broken files, and some genomes imported "earlier".
    assert (total, failed) == (14, 2) and present >= 1
