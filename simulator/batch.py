"""Many seeds at once: a pool of worker processes (forked, so a test's monkeypatches of the
engine reach them), one summary."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .world import REQUIRED_PATHS, Outcome, run_seed


@dataclass
class Failure:
    seed: int
    profile: str
    violations: list[str]
    history: list[str]
    behaviours: tuple[str, ...]

    @property
    def command(self) -> str:
        extra = "" if self.profile == "ci" else f" --profile {self.profile}"
        return f"python -m simulator --seed {self.seed}{extra}"


@dataclass
class Summary:
    profile: str
    seeds: int = 0
    simulated: float = 0.0
    elapsed: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)

    @property
    def missing(self) -> list[str]:
        return [p for p in REQUIRED_PATHS if not self.coverage[p]]

    def line(self) -> str:
        return (
            f"{self.seeds} seeds, {len(self.failures)} violations, "
            f"{self.simulated / 3600:.1f} simulated hours in {self.elapsed:.1f} s"
        )


def _one(
    args: tuple[int, str],
) -> tuple[int, list[str], set[str], float, list[str], tuple[str, ...]]:
    seed, profile = args
    o: Outcome = run_seed(seed, profile)
    history = o.history if o.violations else []
    return seed, o.violations, o.coverage, o.simulated, history, o.behaviours


def run_batch(
    seeds: Iterable[int],
    profile: str = "ci",
    *,
    jobs: int | None = None,
    stop_at_first: bool = False,
    on_result: Callable[[int, list[str]], None] | None = None,
) -> Summary:
    """Run ``seeds`` on ``jobs`` worker processes (default: the CPUs); with ``stop_at_first``,
    stop at the first seed that violates an invariant (a mutation test needs only one)."""
    todo = [(s, profile) for s in seeds]
    jobs = jobs or os.cpu_count() or 2
    summary = Summary(profile)
    began = time.perf_counter()
    if jobs <= 1:
        results: Iterable[tuple[int, list[str], set[str], float, list[str], tuple[str, ...]]]
        results = map(_one, todo)
        _collect(summary, results, stop_at_first, on_result)
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            _collect(summary, pool.imap(_one, todo, chunksize=4), stop_at_first, on_result)
            pool.terminate()
    summary.elapsed = time.perf_counter() - began
    summary.failures.sort(key=lambda f: f.seed)
    return summary


def _collect(
    summary: Summary,
    results: Iterable[tuple[int, list[str], set[str], float, list[str], tuple[str, ...]]],
    stop_at_first: bool,
    on_result: Callable[[int, list[str]], None] | None,
) -> None:
    for seed, violations, coverage, simulated, history, behaviours in results:
        summary.seeds += 1
        summary.simulated += simulated
        summary.coverage.update(coverage)
        if on_result is not None:
            on_result(seed, violations)
        if violations:
            summary.failures.append(Failure(seed, summary.profile, violations, history, behaviours))
            if stop_at_first:
                return


def ci_window(size: int, repo: Path | None = None) -> int:
    """The first seed of a CI batch: a window that rotates with the commit (from its hash), so
    each commit runs other seeds than the last."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 0
    return (int(head[:8], 16) % 100_000) * size


def show_failure(failure: Failure, *, tail: int = 60) -> str:
    lines = [f"seed {failure.seed} ({failure.profile}): {len(failure.violations)} violation(s)"]
    lines += [f"  - {v}" for v in failure.violations]
    lines.append(f"  behaviours: {', '.join(failure.behaviours)}")
    lines.append(f"  replay: {failure.command}")
    if failure.history:
        shown: Sequence[str] = failure.history[-tail:]
        lines.append(f"  history (last {len(shown)} of {len(failure.history)} lines):")
        lines += [f"    {h}" for h in shown]
    return "\n".join(lines)
