"""One seed and one commit give one history, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from simulator.world import run_seed

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (3, 535, 1234)


def test_a_seed_replayed_gives_the_same_history_byte_for_byte() -> None:
    for seed in SEEDS:
        first = run_seed(seed).history_text().encode()
        second = run_seed(seed).history_text().encode()
        assert first == second, f"seed {seed}: two runs differ"
        assert len(first) > 1000


def test_the_history_does_not_depend_on_the_process(tmp_path: Path) -> None:
    """Another interpreter, with other string hashes (set order), replays the same history."""
    code = (
        "import sys; from simulator.world import run_seed; "
        "sys.stdout.write(run_seed(int(sys.argv[1])).history_text())"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code, "535"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=True,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0] == run_seed(535).history_text().encode()


def test_a_replay_prints_its_history_and_the_summary_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--seed", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("0:00:00.000 world    seed 7 (ci):")
    assert any(" Start [" in line for line in lines)
    assert any(" journal: job #1 written ahead" in line for line in lines)
    assert lines[-1].startswith("1 seeds, 0 violations, ")
    assert lines[-1].endswith(" s")
