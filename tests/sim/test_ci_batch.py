"""The CI batch: a window of seeds that rotates with the commit, plus the regression seeds.

Every seed's history must keep every invariant, and the batch must reach every rare path of
``REQUIRED_PATHS``. A failure prints the seed, the command that replays it and its history.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.batch import ci_window, run_batch, show_failure
from simulator.regressions import REGRESSIONS, Regression
from simulator.scenario import GATED
from simulator.world import REQUIRED_PATHS, run_seed

ROOT = Path(__file__).resolve().parents[2]
#: Seeds per CI batch (at least 200; about a minute on two cores).
CI_SEEDS = int(os.environ.get("REFIMPORT_SIM_CI_SEEDS", "300"))


def ci_seeds() -> range:
    first = ci_window(CI_SEEDS, ROOT)
    return range(first, first + CI_SEEDS)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_ci_batch_keeps_every_invariant_and_reaches_every_rare_path() -> None:
    seeds = ci_seeds()
    print(f"CI batch: seeds {seeds.start}..{seeds.stop - 1} (rotating with the commit)")
    summary = run_batch(seeds, "ci", jobs=2)
    report = "\n".join(show_failure(f) for f in summary.failures)
    print(summary.line())
    assert not summary.failures, f"seeds {seeds.start}..{seeds.stop - 1}:\n{report}"
    assert not summary.missing, (
        f"seeds {seeds.start}..{seeds.stop - 1} never reached {summary.missing}: "
        f"{dict(summary.coverage)}"
    )
    assert set(REQUIRED_PATHS) <= set(summary.coverage)


@pytest.mark.parametrize(
    "case", [r for r in REGRESSIONS if r.fixed], ids=lambda r: f"{r.profile}-{r.seed}"
)
def test_a_regression_seed_keeps_every_invariant(case: Regression) -> None:
    outcome = run_seed(case.seed, case.profile)
    assert not outcome.violations, f"{case.why}: {outcome.violations}"


def test_an_open_engine_bug_still_shows_until_its_change_lands() -> None:
    """Not an expected failure: the simulator must still catch each bug it found and the engine
    has not fixed yet (none open today). When this fails, the change has landed: set
    ``fixed=True`` in simulator/regressions.py and delete the entry from GATED."""
    for case in (r for r in REGRESSIONS if not r.fixed):
        assert case.shows is not None and case.engine_change is not None
        outcome = run_seed(case.seed, case.profile)
        shown = [v for v in outcome.violations if case.shows in v]
        assert shown, (
            f"seed {case.seed} ({case.profile}) no longer shows {case.engine_change} "
            f"({case.why}): has the change landed? Violations now: {outcome.violations}"
        )


def test_every_gated_behaviour_waits_for_a_listed_engine_change() -> None:
    changes = (ROOT / "simulator" / "ENGINE_CHANGES.md").read_text()
    for behaviour, change in GATED.items():
        assert f"`{behaviour}`" in changes and change in changes, behaviour


def test_the_command_line_batch_ends_with_the_summary_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--seeds", "6", "--from", "40", "--jobs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    last = done.stdout.splitlines()[-1]
    assert last.startswith("6 seeds, 0 violations, "), done.stdout[-3000:]
    assert " simulated hours in " in last
    assert done.returncode == 0
