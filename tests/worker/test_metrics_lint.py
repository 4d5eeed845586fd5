"""A real worker's ``/metrics``, held to Prometheus's conventions (issue 24).

``promtool check metrics`` cannot be installed here, so :func:`lint` mirrors promtool's
``check metrics`` lint (the rules of client_golang's ``promlint``) itself: every family has HELP
and TYPE, and no family is given twice; names match ``[a-zA-Z_:][a-zA-Z0-9_:]*``, are snake_case
and hold no ``:`` (kept for recording rules) nor their type's name; counters end in ``_total``;
other metrics do not end in ``_total``, nor (unless histograms or summaries) in ``_count``,
``_sum`` or ``_bucket``, nor carry ``le`` or ``quantile`` labels that are not theirs; units are
base units (``_seconds``, ``_bytes``), never abbreviated (``_ms``) nor scaled
(``_milliseconds``, ``_minutes``); an info-style ``_info`` metric is a gauge whose every sample is 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import genomes
from tests.helpers.worker import WorkerProcess, wait_for

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CAMEL = re.compile(r"[a-z][A-Z]")
# promlint's abbreviated units, its units that are not base units, and the prefixes of scaled ones.
_ABBREVIATED = {"s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"}
_NOT_BASE = {
    "minutes": "seconds", "hours": "seconds", "days": "seconds", "weeks": "seconds",
    "kelvins": "kelvin", "fahrenheit": "celsius", "rankine": "celsius",
    "inches": "meters", "yards": "meters", "miles": "meters", "bits": "bytes",
    "calories": "joules", "pounds": "grams", "ounces": "grams", "amps": "amperes",
}  # fmt: skip
_BASE = {"amperes", "bytes", "celsius", "grams", "joules", "kelvin", "meters", "metres",
         "seconds", "volts"}  # fmt: skip
_PREFIXES = ("pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi",
             "mega", "mebi", "giga", "gibi", "tera", "tebi", "peta", "pebi")  # fmt: skip
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
_RESERVED = ("_total", "_count", "_sum", "_bucket")


def lint(text: str) -> list[str]:
    """The problems promtool's ``check metrics`` would report in ``text`` (empty: none).

    Args:
        text: A ``/metrics`` body in Prometheus's text format (0.0.4).

    Returns:
        One line per problem, naming the metric.
    """
    problems: list[str] = []
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, name, *rest = line.split(" ", 3)
            seen = helps if kind == "HELP" else types
            if name in seen:
                problems.append(f"{name}: {kind} given twice (a duplicate metric family)")
            seen[name] = rest[0] if rest else ""
    for name in sorted(set(helps) | set(types)):
        if not helps.get(name, "").strip():
            problems.append(f"{name}: no help text")
        if name not in types:
            problems.append(f"{name}: no TYPE")
    for name, kind in sorted(types.items()):
        problems += _lint_name(name, kind)
    for family in text_string_to_metric_families(text):
        kind = family.type
        for sample in family.samples:
            if "le" in sample.labels and kind != "histogram":
                problems.append(f"{sample.name}: an 'le' label on a {kind}")
            if "quantile" in sample.labels and kind != "summary":
                problems.append(f"{sample.name}: a 'quantile' label on a {kind}")
            for label in sample.labels:
                if not _LABEL.fullmatch(label) or label.startswith("__"):
                    problems.append(f"{sample.name}: label {label!r} is not a valid label name")
            if family.name.endswith("_info") and sample.value != 1:
                problems.append(f"{sample.name}: an info metric whose value is {sample.value}")
    return problems


def _lint_name(name: str, kind: str) -> list[str]:
    """promlint's rules on one family's name, as its TYPE line gives it."""
    out = []
    if not _NAME.fullmatch(name):
        out.append(f"{name}: not a valid metric name")
    if _CAMEL.search(name):
        out.append(f"{name}: not snake_case")
    if ":" in name:
        out.append(f"{name}: ':' is reserved for recording rules")
    tokens = name.split("_")
    if kind in tokens or any(t in _TYPES for t in tokens[1:]):
        out.append(f"{name}: the name holds a metric type")
    if kind == "counter" and not name.endswith("_total"):
        out.append(f"{name}: a counter without the '_total' suffix")
    if kind != "counter" and name.endswith("_total"):
        out.append(f"{name}: a {kind} with the '_total' suffix")
    if kind not in ("histogram", "summary") and name.endswith(_RESERVED[1:]):
        out.append(f"{name}: a {kind} with a histogram's or summary's suffix")
    for token in tokens:
        if token in _ABBREVIATED:
            out.append(f"{name}: abbreviated unit {token!r}")
        if token in _NOT_BASE:
            out.append(f"{name}: use the base unit {_NOT_BASE[token]!r}, not {token!r}")
        scaled = [u for u in _BASE for p in _PREFIXES if token == p + u]
        if scaled:
            out.append(f"{name}: use the base unit {scaled[0]!r}, not {token!r}")
    if name.endswith("_info") and kind != "gauge":
        out.append(f"{name}: an info metric must be a gauge, not a {kind}")
    return out


def test_the_lint_finds_what_promtool_would() -> None:
    """The rules themselves: each bad family is reported, a good one is not."""
    bad = "\n".join(
        [
            "# HELP jobs Jobs", "# TYPE jobs counter", "jobs 1",
            "# HELP size_total Size", "# TYPE size_total gauge", "size_total 1",
            "# HELP latency_ms Latency", "# TYPE latency_ms gauge", "latency_ms 3",
            "# HELP wait_minutes Wait", "# TYPE wait_minutes gauge", "wait_minutes 3",
            "# HELP took_milliseconds Took", "# TYPE took_milliseconds gauge", "took_milliseconds 3",
            "# TYPE no_help gauge", "no_help 1",
            "# HELP fooBar Foo", "# TYPE fooBar gauge", "fooBar 1",
            "# HELP build_info Build", "# TYPE build_info gauge", 'build_info{version="1"} 2',
            "# HELP rows_count Rows", "# TYPE rows_count gauge", "rows_count 2",
            "# HELP twice Twice", "# TYPE twice gauge", "# HELP twice Twice", "# TYPE twice gauge",
            "# HELP ok_seconds Fine", "# TYPE ok_seconds gauge", "ok_seconds 1",
            "",
        ]
    )  # fmt: skip
    problems = lint(bad)
    for name in ("jobs:", "size_total:", "latency_ms:", "wait_minutes:", "took_milliseconds:",
                 "no_help:", "fooBar:", "build_info", "rows_count:", "twice:"):  # fmt: skip
        assert any(p.startswith(name) for p in problems), (name, problems)
    assert not [p for p in problems if p.startswith("ok_seconds")]


def test_a_real_workers_metrics_pass_promtools_lint(
    start_worker: Callable[..., WorkerProcess],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store_id: str,
    tmp_path: Path,
) -> None:
    """Scrape a worker that imported rows (counters, the histogram and the per-store gauges hold
    samples) and check every family: the process, Python and build families included."""
    worker = start_worker(
        "--http-port", "0", "--journal", str(tmp_path / "j.sqlite"), "--store-id", store_id
    )
    items = genomes(s3_fasta, 3, "lint")
    body = {"requests": [{"name": n, "source_file": u} for n, u in items]}
    status, answer, _ = worker.request("POST", "/v1/imports", body)
    assert status == 202, answer
    assert worker.request("POST", "/v1/imports", {"requests": []})[0] == 400

    def imported() -> bool:
        rows = [worker.request("GET", f"/v1/imports/{i}")[1] for i in answer["ids"]]
        return all(r["final"] for r in rows)

    wait_for(imported, 90)
    status, text, _ = worker.request("GET", "/metrics")
    assert status == 200
    assert lint(text) == []
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "python_info",
        "python_gc_collections",
        "refimport_jobs_started",
        "refimport_job_duration_seconds",
    ):
        assert name in families, name
    [build] = families["refimport_build_info"].samples
    assert build.labels == {"version": metadata.version("async-refimport")}
    assert build.value == 1
