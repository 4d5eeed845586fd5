"""Reports that are safe to open: no formula a spreadsheet would run, files only their owner can
read, and a JSON document streamed row by row (with each reference's md5)."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from async_refimport._models import RowResult, RowState
from async_refimport._report import (
    csv_cell,
    iter_json,
    json_document,
    render_csv,
    render_json,
    write_json,
    write_report,
)

STORE = "1234567890"


def row(i: int, name: str, **kw: object) -> RowResult:
    base: dict[str, object] = {
        "row_id": i,
        "store_id": STORE,
        "region": "us-east-1",
        "name": name,
        "source_file": f"s3://bkt/{i}.fa",
        "state": RowState.IMPORTED,
        "reference_id": str(5_000_000_000 + i),
        "job_id": "1111111111",
    }
    base.update(kw)
    return RowResult(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "hostile",
    [
        '=HYPERLINK("http://evil.example/x","click")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
        "  =1+1",
        "\uff1d1+1",
    ],
    ids=repr,
)
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(hostile: str) -> None:
    text = render_csv([row(1, hostile, message=hostile, state=RowState.FAILED)])
    cells = next(iter(csv.DictReader(io.StringIO(text, newline=""))))
    for field in ("name", "message"):
        assert cells[field] == "'" + hostile
        assert not cells[field].lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r"))
    # The JSON report keeps the value as it is.
    assert json.loads(render_json([row(1, hostile)]))["items"][0]["name"] == hostile


def test_ordinary_cells_are_left_alone() -> None:
    for value in ("hg38", "Homo sapiens (GRCh38)", "a=b", "x-y", "1234567890", ""):
        assert csv_cell(value) == value
    assert csv_cell(None) == ""


def test_report_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "report.csv"
        write_report(fresh, "a,b\n")
        existing = tmp_path / "old.html"
        existing.write_text("world readable")
        existing.chmod(0o644)
        write_report(existing, "<html></html>")
    finally:
        os.umask(old)
    for path, text in ((fresh, "a,b\n"), (existing, "<html></html>")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.html", "report.csv"]  # no temp left


def test_a_report_to_a_device_is_written_through(tmp_path: Path) -> None:
    write_report(os.devnull, "ignored")  # /dev/null stays a device, untouched in mode
    assert not stat.S_ISREG(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_streamed_json_is_the_document(count: int) -> None:
    results = [row(i, f"genome-{i}", md5=f"{i:032x}", message='a "quote"\n') for i in range(count)]
    expected = json.dumps(json_document(results), indent=2, ensure_ascii=False) + "\n"
    assert "".join(iter_json(results)) == expected
    out = io.StringIO()
    write_json(results, out, extra_summary={"skipped_invalid": 2})
    doc = json.loads(out.getvalue())
    assert doc["summary"]["skipped_invalid"] == 2
    assert doc["summary"]["total"] == count
    assert [item["md5"] for item in doc["items"]] == [f"{i:032x}" for i in range(count)]


def test_md5_is_in_every_item_and_csv_row() -> None:
    results = [row(1, "hg38", md5="0f3a"), row(2, "mm39")]
    assert [i["md5"] for i in json_document(results)["items"]] == ["0f3a", None]
    assert [r["md5"] for r in csv.DictReader(io.StringIO(render_csv(results)))] == ["0f3a", ""]


def test_streaming_json_never_holds_the_whole_document() -> None:
    results = [row(i, f"genome-{i:07d}") for i in range(20_000)]

    class Sink(io.TextIOBase):
        written = 0

        def write(self, s: str) -> int:
            self.written += len(s)
            return len(s)

    sink = Sink()
    tracemalloc.start()
    try:
        write_json(results, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The document is about 6 MB of text (and the dict per row several times that); streaming
    # holds one item at a time.
    assert sink.written > 5_000_000
    assert peak < 1_000_000, peak
