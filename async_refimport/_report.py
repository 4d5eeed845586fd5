"""Reports of a journal's rows and jobs: CSV, JSON and a self-contained HTML page.

The JSON document is the one ``refimport import --json`` prints::

    {"summary": {"total": 3, "imported": 2, "already_present": 0, "failed": 1},
     "items": [{"store_id", "name", "source_file", "status", "reference_id", "md5", "job_id",
                "message", "arn", "uri"}]}

``md5`` is the reference's checksum as HealthOmics reports it (null until the service has
reported it). ``arn`` and ``uri`` are where a reference in its store is (its ARN and
``omics://`` URI, from its row's role account: :mod:`async_refimport._arns`); null for a row
not in its store, or whose role ARN names no account. :class:`JsonReportWriter` streams the
document item by item, so a report of 200,000 rows never exists whole in memory.

The CSV report is meant for spreadsheets, which run a cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return as a formula: such cells are prefixed with ``'`` (OWASP's
guidance on CSV injection), and every cell is quoted, so ``=HYPERLINK(...)`` in a reference's name
is shown, never run. The JSON report keeps every value as it is.

The HTML report has the summary, a timeline of jobs per store (inline SVG: one bar per job, one lane
per store, so idle gaps between jobs are visible) and the failures. It loads nothing from outside.

:func:`write_report` writes a report file readable by its owner only (mode 0600, as the journal):
reports name buckets, accounts and stores.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, Literal, TextIO

from async_refimport._arns import address_of
from async_refimport._models import RowResult, RowState
from async_refimport.journal.base import JobRecord

ReportFormat = Literal["csv", "json", "html"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("csv", "json", "html")
ITEM_FIELDS = (
    "store_id",
    "name",
    "source_file",
    "status",
    "reference_id",
    "md5",
    "job_id",
    "message",
    "arn",
    "uri",
)
# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"), plus the full-width
# forms some locales' spreadsheets accept as well.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# C0 and C1 controls but tab and line breaks, and the bidi overrides, shown as their escapes.
_CONTROLS = {
    c: repr(chr(c))[1:-1]
    for c in [
        *range(0x20),
        0x7F,
        *range(0x80, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
    if chr(c) not in "\t\n\r"
}


def report_item(result: RowResult) -> dict[str, str | None]:
    """One row of a report (``status`` is the row's state: IMPORTED, ALREADY_PRESENT, FAILED ...;
    ``arn`` and ``uri`` those of its reference once it is in its store)."""
    address = address_of(result)
    return {
        "store_id": result.store_id,
        "name": result.name,
        "source_file": result.source_file,
        "status": result.state.value,
        "reference_id": result.reference_id,
        "md5": result.md5,
        "job_id": result.job_id,
        "message": result.message,
        "arn": address.arn if address else None,
        "uri": address.uri if address else None,
    }


@dataclass(slots=True)
class Tally:
    """What an import's rows come to, counted a row at a time: rows per store and state, the jobs
    of each store and the first failures. A run of 10^5 rows is summed up page by page, never
    held whole.

    Attributes:
        per_store: ``(store_id, region)`` -> rows per state.
        jobs: ``(store_id, region)`` -> the ids of the jobs its rows went in.
        failures: The first ``failures_kept`` failed rows, in the order added.
        failures_kept: How many failed rows to keep (the others are only counted).
    """

    per_store: dict[tuple[str, str], Counter[RowState]] = field(default_factory=dict)
    jobs: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    failures: list[RowResult] = field(default_factory=list)
    failures_kept: int = 100

    @classmethod
    def of(cls, results: Iterable[RowResult]) -> Tally:
        """A tally of ``results``."""
        tally = cls()
        tally.add(results)
        return tally

    def add(self, results: Iterable[RowResult]) -> None:
        """Count more rows (a page of a run's results)."""
        for r in results:
            key = (r.store_id, r.region)
            states = self.per_store.get(key)
            if states is None:
                states = self.per_store[key] = Counter()
            states[r.state] += 1
            if r.job_id:
                self.jobs.setdefault(key, set()).add(r.job_id)
            if r.state is RowState.FAILED and len(self.failures) < self.failures_kept:
                self.failures.append(r)

    @property
    def states(self) -> Counter[RowState]:
        """Rows per state, every store together."""
        total: Counter[RowState] = Counter()
        for states in self.per_store.values():
            total.update(states)
        return total

    @property
    def failed(self) -> int:
        """Rows that failed."""
        return self.states[RowState.FAILED]

    @property
    def pending(self) -> int:
        """Rows not final yet (staging, queued, or in a job)."""
        states = self.states
        return states[RowState.STAGING] + states[RowState.QUEUED] + states[RowState.SUBMITTED]

    def pending_stores(self) -> set[tuple[str, str]]:
        """``(store_id, region)`` of the stores with rows not final yet."""
        return {
            key
            for key, states in self.per_store.items()
            if states[RowState.STAGING] or states[RowState.QUEUED] or states[RowState.SUBMITTED]
        }

    def summary(self) -> dict[str, int]:
        """``total``, ``imported``, ``already_present``, ``failed`` (plus ``pending`` when not all
        final): the summary of the JSON document."""
        states = self.states
        summary = {
            "total": sum(states.values()),
            "imported": states[RowState.IMPORTED],
            "already_present": states[RowState.ALREADY_PRESENT],
            "failed": states[RowState.FAILED],
        }
        if self.pending:
            summary["pending"] = self.pending
        return summary


def summarize(results: Iterable[RowResult]) -> dict[str, int]:
    """``total``, ``imported``, ``already_present``, ``failed`` (plus ``pending`` when not all final)."""
    return Tally.of(results).summary()


def json_document(results: Sequence[RowResult]) -> dict[str, Any]:
    """The document of ``import --json`` and ``report --format json``, as one object.

    For many rows prefer :func:`write_json` or :class:`JsonReportWriter`, which never hold the
    whole document.
    """
    return {"summary": summarize(results), "items": [report_item(r) for r in results]}


class JsonReportWriter:
    """Writes the JSON document to ``out`` as its items come, a page at a time: the summary is
    known first (a :class:`Tally`), the rows need not be.

    The text is the same as ``json.dumps(json_document(results), indent=2, ensure_ascii=False)``
    plus a final newline, with the given summary.
    """

    def __init__(self, out: TextIO, summary: Mapping[str, int]) -> None:
        self._out = out
        self._items = 0
        head = json.dumps({"summary": dict(summary)}, indent=2, ensure_ascii=False)
        out.write(head[:-2] + ',\n  "items": [')

    def write(self, results: Iterable[RowResult]) -> None:
        """Write more rows (a page of results) to the document."""
        for result in results:
            item = json.dumps(report_item(result), indent=2, ensure_ascii=False)
            self._out.write(("\n" if not self._items else ",\n") + "    ")
            self._out.write(item.replace("\n", "\n    "))
            self._items += 1

    def close(self) -> None:
        """End the document (the stream is left open)."""
        self._out.write("\n  ]\n}\n" if self._items else "]\n}\n")


def iter_json(
    results: Sequence[RowResult], *, extra_summary: Mapping[str, int] | None = None
) -> Iterator[str]:
    """The JSON document in pieces, one item at a time (see :class:`JsonReportWriter`), with
    ``extra_summary`` (e.g. ``skipped_invalid``) added to the summary."""
    out = io.StringIO()
    writer = JsonReportWriter(out, {**summarize(results), **(extra_summary or {})})
    for result in results:
        yield _take(out)
        writer.write((result,))
    writer.close()
    yield _take(out)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def write_json(
    results: Sequence[RowResult],
    out: TextIO,
    *,
    extra_summary: Mapping[str, int] | None = None,
) -> None:
    """Write the JSON document to ``out`` item by item (see :class:`JsonReportWriter`)."""
    writer = JsonReportWriter(out, {**summarize(results), **(extra_summary or {})})
    writer.write(results)
    writer.close()


def render_json(results: Sequence[RowResult]) -> str:
    """The JSON report of ``results``, whole."""
    return "".join(iter_json(results))


def csv_cell(value: str | None) -> str:
    """``value`` as a CSV report shows it: never a formula a spreadsheet would run."""
    if value is None:
        return ""
    if not value.isprintable():
        # ESC and the other controls would drive the terminal a report is printed on; a tab or
        # a line break is data the quoting keeps.
        value = value.translate(_CONTROLS)
    if value.lstrip(" ").startswith(_FORMULA_STARTS):
        # A leading apostrophe makes spreadsheets show the cell as text; it is not data.
        return "'" + value
    return value


def render_csv(results: Sequence[RowResult]) -> str:
    """The CSV report of ``results``, whole."""
    out = io.StringIO()
    write_csv(results, out)
    return out.getvalue()


def write_csv(results: Iterable[RowResult], out: TextIO, *, header: bool = True) -> None:
    """Write the CSV report to ``out`` row by row, every cell neutralised (see :func:`csv_cell`);
    ``header=False`` for the pages after the first."""
    # The header is ours; every data cell is quoted, as OWASP advises: a carriage return inside a
    # value then stays inside it (minimal quoting leaves a lone "\r" bare, splitting the row).
    if header:
        out.write(",".join(ITEM_FIELDS) + "\n")
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for r in results:
        writer.writerow([csv_cell(v) for v in report_item(r).values()])


def write_report(path: str | os.PathLike[str], text: str) -> None:
    """Write a report file readable and writable by its owner only (0600), atomically (see
    :func:`report_file`)."""
    with report_file(path) as out:
        out.write(text)


@contextmanager
def report_file(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """``with report_file(path) as out:`` a report file readable and writable by its owner only
    (0600), written as it comes and appearing complete or not at all (a temporary file renamed
    over it when the block ends without an error). A link, or a path that is not a regular file
    (``/dev/stdout``, ``/dev/fd/1``, a pipe), is written to as it is: renaming over it would
    replace the link, not write where it points.
    """
    target = Path(path)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        with open(target, "w", encoding="utf-8") as f:
            yield f
        return
    # mkstemp creates the file with mode 0600 whatever the umask.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- HTML -----------------------------------------------------------------------------------------

_STATUS_COLOURS = {
    "COMPLETED": "#2e9e5b",
    "COMPLETED_WITH_FAILURES": "#e0a100",
    "FAILED": "#d64545",
    "CANCELLED": "#8a8a8a",
}
_RUNNING_COLOUR = "#3b82f6"


@dataclass(frozen=True, slots=True)
class _Bar:
    lane: str
    start: float
    end: float
    job: JobRecord
    rows: int


def _lane_name(store_id: str, region: str) -> str:
    return f"{store_id} ({region})"


def _bars(jobs: Sequence[JobRecord], results: Sequence[RowResult], now: float) -> list[_Bar]:
    rows_per_job = Counter(r.job_id for r in results if r.job_id)
    bars = []
    for job in jobs:
        start = job.started_at or job.written_at
        end = job.finished_at or now
        bars.append(
            _Bar(
                _lane_name(job.store.store_id, job.store.region),
                start,
                max(end, start),
                job,
                rows_per_job.get(job.job_id, 0) if job.job_id else 0,
            )
        )
    return bars


def _fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _timeline_svg(bars: Sequence[_Bar]) -> str:
    if not bars:
        return "<p class=muted>No import jobs were started.</p>"
    lanes = sorted({b.lane for b in bars})
    t0 = min(b.start for b in bars)
    t1 = max(b.end for b in bars)
    span = max(t1 - t0, 1e-3)
    label_w, plot_w, lane_h, top = 200, 800, 38, 24
    height = top + lane_h * len(lanes) + 10

    def x(t: float) -> float:
        return label_w + (t - t0) / span * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {label_w + plot_w + 30} {height}"'
        f' width="100%" role="img" aria-label="Import jobs per store over time">'
    ]
    for i in range(6):
        t = t0 + span * i / 5
        px = x(t)
        parts.append(
            f'<line x1="{px:.1f}" y1="{top - 6}" x2="{px:.1f}" y2="{height - 10}" class="grid"/>'
            f'<text x="{px:.1f}" y="{top - 10}" class="tick">+{_fmt_seconds(t - t0)}</text>'
        )
    for li, lane in enumerate(lanes):
        y = top + li * lane_h
        lane_bars = [b for b in bars if b.lane == lane]
        busy = sum(b.end - b.start for b in lane_bars)
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{plot_w}" height="{lane_h - 6}" class="lane"/>'
            f'<text x="4" y="{y + 16}" class="label">{escape(lane)}</text>'
            f'<text x="4" y="{y + 31}" class="sub">{len(lane_bars)} jobs · '
            f"busy {100 * busy / span:.0f}% of the run</text>"
        )
        for b in lane_bars:
            colour = _STATUS_COLOURS.get(b.job.status or "", _RUNNING_COLOUR)
            if b.job.finished_at is None:
                colour = _RUNNING_COLOUR
            w = max(x(b.end) - x(b.start), 1.5)
            tip = (
                f"job {b.job.job_id or '(not started)'} · {b.job.status or b.job.state.value}"
                f" · {b.rows} rows · {_fmt_seconds(b.end - b.start)}"
            )
            if b.job.message:
                tip += f" · {b.job.message}"
            parts.append(
                f'<rect x="{x(b.start):.2f}" y="{y + 5}" width="{w:.2f}" height="{lane_h - 10}"'
                f' fill="{colour}" rx="2"><title>{escape(tip)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}
.muted{color:#6e7781}.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #d0d7de;border-radius:8px;padding:.7rem 1.1rem;min-width:9rem}
.card b{display:block;font-size:1.6rem}.ok b{color:#2e9e5b}.present b{color:#3b82f6}.bad b{color:#d64545}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font-size:12px}
svg .grid{stroke:#d0d7de;stroke-width:1}svg .tick{font-size:11px;fill:#6e7781;text-anchor:middle}
svg .lane{fill:#f6f8fa}svg .label{font-size:12px;fill:#1f2328}svg .sub{font-size:11px;fill:#6e7781}
.legend span{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin:0 .3rem 0 1rem;vertical-align:middle}
"""


def _store_rows(results: Sequence[RowResult], bars: Sequence[_Bar]) -> str:
    """The per-store table's rows: counts by state, and the store's jobs."""
    per_store: dict[str, Counter[RowState]] = {}
    for r in results:
        per_store.setdefault(_lane_name(r.store_id, r.region), Counter())[r.state] += 1
    return "".join(
        f"<tr><td>{escape(store)}</td><td>{sum(c.values())}</td><td>{c[RowState.IMPORTED]}</td>"
        f"<td>{c[RowState.ALREADY_PRESENT]}</td><td>{c[RowState.FAILED]}</td>"
        f"<td>{c[RowState.STAGING] + c[RowState.QUEUED] + c[RowState.SUBMITTED]}</td>"
        f"<td>{sum(1 for b in bars if b.lane == store)}</td></tr>"
        for store, c in sorted(per_store.items())
    )


def _failures_html(failures: Sequence[RowResult]) -> str:
    """The failures' table, or a line saying there are none."""
    if not failures:
        return "<p class=muted>No failures.</p>"
    failure_rows = "".join(
        f"<tr><td>{escape(_lane_name(r.store_id, r.region))}</td><td>{escape(r.name)}</td>"
        f"<td><code>{escape(r.source_file)}</code></td><td>{escape(r.job_id or '')}</td>"
        f"<td>{escape(r.message or '')}</td></tr>"
        for r in failures
    )
    return (
        "<table><tr><th>Store</th><th>Name</th><th>Source</th><th>Job</th><th>Reason</th></tr>"
        f"{failure_rows}</table>"
    )


def _references_html(results: Sequence[RowResult]) -> str:
    """The references in their stores, each with its id, ARN and URI (folded: it may be long)."""
    rows = []
    for r in results:
        if r.ok and r.reference_id:
            item = report_item(r)
            rows.append(
                f"<tr><td>{escape(_lane_name(r.store_id, r.region))}</td><td>{escape(r.name)}</td>"
                f"<td>{escape(r.reference_id)}</td><td><code>{escape(item['arn'] or '')}"
                f"</code></td><td><code>{escape(item['uri'] or '')}</code></td></tr>"
            )
    if not rows:
        return "<h2>References (0)</h2><p class=muted>No reference is in its store yet.</p>"
    return (
        f"<h2>References ({len(rows)})</h2><details><summary>Each reference in its store, with "
        "its ARN and omics:// URI (<code>refimport catalog</code> lists them by name)</summary>"
        "<table><tr><th>Store</th><th>Name</th><th>Reference id</th><th>ARN</th><th>URI</th></tr>"
        f"{''.join(rows)}</table></details>"
    )


def _cards(summary: Mapping[str, int]) -> str:
    """The summary's cards: rows, imported, already present, failed (and pending, if any)."""
    pending = summary.get("pending", 0)
    pending_card = f"<div class=card><b>{pending}</b>pending</div>" if pending else ""
    return f"""<div class=cards>
<div class=card><b>{summary["total"]}</b>rows</div>
<div class="card ok"><b>{summary["imported"]}</b>imported</div>
<div class="card present"><b>{summary["already_present"]}</b>already present</div>
<div class="card bad"><b>{summary["failed"]}</b>failed</div>
{pending_card}
</div>"""


def render_html(
    results: Sequence[RowResult],
    jobs: Sequence[JobRecord],
    *,
    title: str = "refimport report",
    now: float | None = None,
) -> str:
    """A self-contained HTML page: summary, per-store job timeline, per-store table, failures.

    Args:
        results: Every row of the run.
        jobs: The run's import jobs (for the timeline).
        title: The page's title and heading.
        now: Epoch seconds the page is generated at (default: now); jobs still running end there.

    Returns:
        The page.
    """
    now = time.time() if now is None else now
    generated = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    bars = _bars(jobs, results, now)
    span = (max(b.end for b in bars) - min(b.start for b in bars)) if bars else 0.0
    failures = [r for r in results if r.state is RowState.FAILED]
    legend = "".join(
        f'<span style="background:{c}"></span>{escape(s.replace("_", " ").lower())}'
        for s, c in [*_STATUS_COLOURS.items(), ("RUNNING", _RUNNING_COLOUR)]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class=muted>Generated {generated} · {len(jobs)} import jobs · {_fmt_seconds(span)} from the first job to the last</p>
{_cards(summarize(results))}
<h2>Where the time went</h2>
<p class=muted>One lane per store, one bar per import job (hover for details). A store runs one job
at a time: gaps between bars are time the store sat idle.</p>
{_timeline_svg(bars)}
<p class="legend muted">{legend}</p>
<h2>Stores</h2>
<table><tr><th>Store</th><th>Rows</th><th>Imported</th><th>Already present</th><th>Failed</th><th>Pending</th><th>Jobs</th></tr>
{_store_rows(results, bars)}</table>
<h2>Failures ({len(failures)})</h2>
{_failures_html(failures)}
{_references_html(results)}
</body></html>
"""
