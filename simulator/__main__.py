"""``python -m simulator``: run seeds (``--seeds N --from K``) or replay one (``--seed S``).

The last line reads ``N seeds, M violations, H simulated hours in T s`` (M counts the seeds that
violated an invariant); the exit code is 0 only when none did (and, for a batch of at least
``--coverage-from`` seeds, every rare path of ``REQUIRED_PATHS`` was reached).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .batch import ci_window, run_batch, show_failure
from .scenario import PROFILES
from .world import REQUIRED_PATHS, run_seed


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    p.add_argument("--seeds", type=int, default=1000, help="how many seeds (default 1000)")
    p.add_argument("--from", dest="first", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--ci", action="store_true", help="start at the commit's rotating window")
    p.add_argument("--seed", type=int, help="replay this one seed and print its history")
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default=os.environ.get("REFIMPORT_SIM_PROFILE", "ci"),
        help="ci: leave out the behaviours gated until the engine handles them (default; "
        "$REFIMPORT_SIM_PROFILE); full: draw everything",
    )
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--history-out", type=Path, help="with --seed: write the history here")
    p.add_argument(
        "--coverage-from",
        type=int,
        default=200,
        help="a batch of at least this many seeds must reach every rare path (default 200)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seed is not None:
        began = time.perf_counter()
        outcome = run_seed(args.seed, args.profile)
        text = outcome.history_text()
        if args.history_out:
            args.history_out.write_text(text)
        else:
            sys.stdout.write(text)
        for v in outcome.violations:
            print(f"violation: {v}")
        print(f"covered: {', '.join(sorted(outcome.coverage))}")
        print(
            f"1 seeds, {1 if outcome.violations else 0} violations, "
            f"{outcome.simulated / 3600:.1f} simulated hours in {time.perf_counter() - began:.1f} s"
        )
        return 1 if outcome.violations else 0
    first = ci_window(args.seeds) if args.ci else args.first
    print(f"seeds {first}..{first + args.seeds - 1}, profile {args.profile}", flush=True)
    summary = run_batch(range(first, first + args.seeds), args.profile, jobs=args.jobs)
    for failure in summary.failures:
        print(show_failure(failure))
    print("rare paths reached (seeds):")
    for path in REQUIRED_PATHS:
        print(f"  {path:<28} {summary.coverage[path]}")
    others = sorted(k for k in summary.coverage if k not in REQUIRED_PATHS)
    print("  also: " + ", ".join(f"{k} {summary.coverage[k]}" for k in others))
    ok = not summary.failures
    if summary.seeds >= args.coverage_from and summary.missing:
        print(f"never reached: {', '.join(summary.missing)} (the generator must reach them)")
        ok = False
    rate = summary.seeds / summary.elapsed * 60 if summary.elapsed else 0.0
    ratio = summary.simulated / summary.elapsed if summary.elapsed else 0.0
    print(f"{rate:.0f} seeds/min, {ratio:,.0f} simulated seconds per real second")
    print(summary.line())
    return 0 if ok else 1


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Same seed, same history across processes too: string hashes (set order) fixed.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "simulator", *sys.argv[1:]])
    sys.exit(main())
