"""RESULTS.md and the PNG charts from the figures of one run."""

from __future__ import annotations

import math
import os
import platform
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs installed

from ._common import Figure

HERE = Path(__file__).resolve().parent
CHARTS = HERE / "charts"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} logical CPUs, "
        f"{mem:.0f} GiB RAM, Python {platform.python_version()}"
    )


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.3f}"


def write_results(
    figures: Sequence[Figure],
    *,
    quick: bool,
    elapsed: float,
    headline: Sequence[str],
    charts: Sequence[Path],
    path: Path = HERE / "RESULTS.md",
) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        + (" — **quick mode** (smaller workloads, one repeat)" if quick else ""),
        f"- Machine: {machine()}",
        f"- Suite run time: {elapsed / 60:.1f} min (`make bench`; `make bench-quick` for the short run)",
        "- Emulator: `async_refimport.emulator` in its own process, real HTTP, real boto3/aioboto3;"
        " time compressed by `time_scale` (job = (30 s + bases / 20 Mbases/s) x time_scale)."
        " Overhead figures use a fake service at the gateway seam, each in a fresh process.",
        "",
        "## Headline",
        "",
        *[f"- {h}" for h in headline],
        "",
        "## Goals",
        "",
        *[
            f"- {f.section} — {f.name}: median {_fmt(f.median)} {f.unit}, goal {f.goal}: "
            + ("**holds**" if f.holds else "**missed**")
            for f in figures
            if f.goal and f.holds is not None
        ],
        "",
        "Every figure below is min / median / max over the repeats (n).",
    ]
    section = None
    for f in figures:
        if f.section != section:
            section = f.section
            notes = sorted({g.note for g in figures if g.section == section and g.note})
            lines += ["", f"## {section}", ""]
            lines += [f"*{n}*" for n in notes] + [""] if notes else []
            lines += [
                "| figure | unit | min | median | max | n | goal |",
                "|---|---|---:|---:|---:|---:|---|",
            ]
        values = f.values or [float("nan")]
        goal = ""
        if f.goal:
            verdict = {True: " ✅ holds", False: " ❌ missed", None: ""}[f.holds]
            goal = f"{f.goal}{verdict}"
        lines.append(
            f"| {f.name} | {f.unit} | {_fmt(min(values))} | {_fmt(f.median)} | "
            f"{_fmt(max(values))} | {len(f.values)} | {goal} |"
        )
    # Sections this run did not measure (fleet, completion, memory ...: written by benchmarks of
    # their own with splice_section) are kept as they were.
    ours = {"Headline", "Goals", "Charts", *(f.section for f in figures)}
    for title, block in _sections(path):
        if title not in ours:
            lines += ["", *block.rstrip("\n").split("\n")]
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{c.stem}](charts/{c.name})" for c in charts]
    path.write_text("\n".join(lines) + "\n")


def _sections(path: Path) -> list[tuple[str, str]]:
    """The ``## `` sections of a RESULTS.md: (title, text from the heading on)."""
    if not path.exists():
        return []
    pattern = re.compile(r"^## ([^\n]+)\n.*?(?=^## |\Z)", re.S | re.M)
    return [(m.group(1).strip(), m.group(0)) for m in pattern.finditer(path.read_text())]


def chart_timelines(timelines: dict[str, dict[str, list[tuple[float, float]]]], name: str) -> Path:
    """One panel per peer: each store's jobs as bars over time since that peer's first job."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = list(timelines)
    fig, axes = plt.subplots(len(peers), 1, figsize=(10, 1.2 + 1.3 * len(peers)), squeeze=False)
    for ax, peer in zip(axes[:, 0], peers, strict=True):
        lanes = timelines[peer]
        t0 = min(jobs[0][0] for jobs in lanes.values())
        end = max(jobs[-1][1] for jobs in lanes.values()) - t0
        for i, (_store, jobs) in enumerate(sorted(lanes.items())):
            bars = [(s - t0, e - s) for s, e in jobs]
            ax.broken_barh(bars, (i - 0.4, 0.8), facecolors=f"C{i % 10}", edgecolors="white")
        ax.set_yticks(range(len(lanes)))
        ax.set_yticklabels([f"store {i + 1}" for i in range(len(lanes))])
        ax.set_title(f"{peer}: {end:.1f} s", loc="left", fontsize=10)
        ax.set_xlim(left=0)
    axes[-1, 0].set_xlabel("seconds since the first job started (white gaps: store idle)")
    fig.tight_layout()
    out = CHARTS / f"{name}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def chart_scaling(points: list[dict[str, Any]]) -> Path:
    """Makespan / lower bound, CPU and peak memory per row against rows, one line per store count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for stores in sorted({p["stores"] for p in points}):
        pts = sorted((p for p in points if p["stores"] == stores), key=lambda p: p["rows"])
        rows = [p["rows"] for p in pts]
        label = f"{stores} store{'s' if stores > 1 else ''}"
        axes[0].plot(rows, [p["makespan_s"] / p["lower_bound_s"] for p in pts], "o-", label=label)
        axes[1].plot(rows, [p["cpu_s"] for p in pts], "o-", label=label)
        axes[2].plot(rows, [p["peak_bytes_per_row"] for p in pts], "o-", label=label)
    titles = ("makespan / lower bound", "CPU seconds", "peak memory growth per row (bytes)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("rows")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].axhline(1024, color="grey", linestyle="--", linewidth=1)
    axes[0].legend()
    fig.suptitle(f"Scaling (fake service, jobs of {points[0]['job_seconds']} s)", fontsize=10)
    fig.tight_layout()
    out = CHARTS / "scaling.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def chart_bars(values: dict[str, list[float]], title: str, unit: str, name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    labels = list(values)
    med = [sorted(v)[len(v) // 2] for v in values.values()]
    ax.barh(labels, med, color=[f"C{i}" for i in range(len(labels))])
    for i, v in enumerate(med):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    fig.tight_layout()
    out = CHARTS / f"{name}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
