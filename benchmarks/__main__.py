"""``python -m benchmarks [--quick] [--only peers,throughput,overhead]``: run the suite, write
``benchmarks/RESULTS.md`` and ``benchmarks/charts/*.png``."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from . import overhead, peers, report, throughput
from ._common import Figure, isolate_aws_environment, quiet_logs

SUITES = {"peers": peers.bench, "throughput": throughput.bench, "overhead": overhead.bench}


def _find(figures: list[Figure], section: str, name: str) -> Figure | None:
    for f in figures:
        if f.section.startswith(section) and f.name == name:
            return f
    return None


def _m(figures: list[Figure], section: str, name: str, fmt: str = "{:.2f}") -> str:
    f = _find(figures, section, name)
    return fmt.format(f.median) if f and f.values else "n/a"


def headline(figures: list[Figure]) -> list[str]:
    p = peers.PROJECT
    out = []
    if _find(figures, "Peers", f"makespan ratio script (a) / {p}"):
        out.append(
            "Against the script people write (boto3, one source per job, stock waiter): "
            f"**{_m(figures, 'Peers', f'makespan ratio script (a) / {p}', '{:.0f}')}x the time** and "
            f"**{_m(figures, 'Peers', f'API calls ratio script (a) / {p}', '{:.0f}')}x the API calls** "
            "of this project on the same workload."
        )
        out.append(
            "The same script packed to 100 sources per job: "
            f"{_m(figures, 'Peers', f'makespan ratio packed (b) / {p}')}x the time; "
            "packed and polling every second: "
            f"{_m(figures, 'Peers', f'makespan ratio packed+1s poll (c) / {p}')}x the time with "
            f"{_m(figures, 'Peers', f'API calls ratio packed+1s poll (c) / {p}', '{:.1f}')}x the API calls."
        )
    if _find(figures, "Throughput (quiet)", "lane utilization (all lanes)"):
        q, f = "Throughput (quiet)", "Throughput (faults)"
        out.append(
            f"Thousands of references over several stores: lane utilization "
            f"{_m(figures, q, 'lane utilization (all lanes)', '{:.3f}')} (goal ≥ 0.99), "
            f"{_m(figures, q, 'API calls per imported reference', '{:.3f}')} API calls per reference "
            f"(goal ≤ 0.04), makespan {_m(figures, q, 'makespan / lower bound')}x the service's "
            f"lower bound; with throttling shared with a noisy neighbour and ambiguous 408s: "
            f"{_m(figures, f, 'makespan / lower bound')}x and "
            f"{_m(figures, f, 'API calls per imported reference', '{:.3f}')} calls per reference."
        )
    if _find(figures, "Overhead", "memory retained per queued row"):
        o = "Overhead"
        cpu = next((f for f in figures if f.name.startswith("CPU seconds,")), None)
        out.append(
            f"Overhead: {_m(figures, o, 'memory retained per queued row', '{:.0f}')} bytes per "
            f"queued row (goal < 1 KB), {_m(figures, o, 'CPU seconds per 1,000 rows', '{:.3f}')} CPU s "
            f"per 1,000 rows ({cpu.name.split(',')[1].strip() if cpu else ''}: "
            f"{cpu.median if cpu else float('nan'):.1f} s), resume from the journal in "
            f"{_m(figures, o, 'resume: open → first new Start', '{:.2f}')} s (goal < 2 s), "
            f"{_m(figures, o, 'journal: row transitions per second (job cycle)', '{:,.0f}')} "
            "journal row transitions per second."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workloads, one repeat")
    parser.add_argument(
        "--only", default=",".join(SUITES), help=f"comma-separated subset of {', '.join(SUITES)}"
    )
    args = parser.parse_args()
    quiet_logs()
    t0 = time.perf_counter()
    figures: list[Figure] = []
    charts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        isolate_aws_environment(tmp)
        for name in args.only.split(","):
            print(f"== {name}", flush=True)
            figs, chart = SUITES[name](args.quick)
            figures += figs
            charts[name] = chart
    report.CHARTS.mkdir(exist_ok=True)
    pngs: list[Path] = []
    if "peers" in charts:
        pngs.append(report.chart_timelines(charts["peers"]["timelines"], "timelines_peers"))
        pngs.append(
            report.chart_bars(
                charts["peers"]["makespans"],
                "Makespan per peer, same workload (log scale)",
                "seconds",
                "makespan_peers",
            )
        )
    if "throughput" in charts:
        pngs.append(report.chart_timelines(charts["throughput"], "timelines_throughput"))
    if "overhead" in charts:
        pngs.append(report.chart_scaling(charts["overhead"]["scaling"]))
    elapsed = time.perf_counter() - t0
    lines = headline(figures)
    report.write_results(figures, quick=args.quick, elapsed=elapsed, headline=lines, charts=pngs)
    print("\n".join(lines))
    print(f"wrote {report.HERE / 'RESULTS.md'} and {len(pngs)} charts in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
