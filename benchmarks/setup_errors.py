"""``python -m benchmarks.setup_errors [--quick]``: how soon a set-up mistake ends a run.

Runs ``refimport import`` as a user would (a subprocess, a 3-row manifest) with each set-up
mistake and measures the wall time to its exit, the exit code and that its one error line names
the mistake; a correct run of the same manifest is the baseline. The default ``--setup-timeout``
(20 s) bounds a store that never answers: a refused connection (a closed port) and a black hole
(a port that accepts connections and never answers, where every request hangs).

Writes ``benchmarks/results/setup_errors.json`` and the "Set-up mistakes" section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import (
    ROLE_ARN,
    EmulatorProcess,
    Figure,
    isolate_aws_environment,
    section_lines,
    splice_section,
)

HERE = Path(__file__).parent
SECTION = "Set-up mistakes (time to fail)"
EXIT_SETUP = 3
NOTE = (
    "refimport import of a 3-row manifest as a subprocess (interpreter start-up included); "
    "default --setup-timeout 20 s; the emulator at time_scale 0.01"
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport", "import", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    if not errors and proc.returncode:
        errors = proc.stderr.splitlines()[-3:]
    return time.monotonic() - began, proc.returncode, errors[0] if errors else ""


def bench(quick: bool) -> list[Figure]:
    repeats = 1 if quick else 3
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorProcess(time_scale=0.01) as emu,
        socket.socket() as black_hole,
    ):
        # Listening, never accepting: the kernel completes the handshakes, nothing ever answers.
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(128)
        hole = black_hole.getsockname()[1]
        store = emu.create_stores(1)["us-east-1"]
        uris = emu.upload_genomes(3, bases=1000)
        manifest = Path(tmp) / "refs.csv"
        manifest.write_text(
            "name,source_file\n" + "".join(f"genome-{i},{u}\n" for i, u in enumerate(uris))
        )
        s3 = {"AWS_ENDPOINT_URL_S3": emu.endpoints["s3_endpoint_url"]}
        cases: list[tuple[str, list[str], dict[str, str], str, int]] = [
            ("a correct run (baseline)", [], s3, "", 0),
            (
                "unreachable endpoint (connection refused)",
                ["--endpoint-url", f"http://127.0.0.1:{_closed_port()}"],
                {},
                "no answer from",
                EXIT_SETUP,
            ),
            (
                "black-hole endpoint (connections hang)",
                ["--endpoint-url", f"http://127.0.0.1:{hole}"],
                {},
                "no answer from",
                EXIT_SETUP,
            ),
            (
                "no credentials",
                [],
                {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
                "no AWS credentials",
                EXIT_SETUP,
            ),
            ("unknown profile", ["--profile", "nope"], {}, "unknown AWS profile", EXIT_SETUP),
            (
                "access denied",
                [],
                {"AWS_ACCESS_KEY_ID": "AKIADENIED0000000000"},
                "access denied",
                EXIT_SETUP,
            ),
            ("no such store", ["--store-id", "9999999999"], {}, "no such reference store", 3),
        ]
        for label, extra, env, words, code in cases:
            figure = Figure(SECTION, f"{label}: time to exit {code}", "s", note=NOTE)
            for rep in range(repeats):
                args = [
                    str(manifest), "--store-id", store, "--role-arn", ROLE_ARN,
                    "--endpoint-url", emu.omics_endpoint_url,
                    "--journal", str(Path(tmp) / f"{label[:12]}-{rep}.sqlite"),
                    "--no-check-sources", *extra,
                ]  # fmt: skip
                if code == 0:
                    names = f"r{rep}-g"
                    manifest_rep = Path(tmp) / f"ok-{rep}.csv"
                    manifest_rep.write_text(
                        "name,source_file\n"
                        + "".join(f"{names}{i},{u}\n" for i, u in enumerate(uris))
                    )
                    args[0] = str(manifest_rep)
                elapsed, exit_code, line = _run(args, env)
                if exit_code != code or words not in line:
                    raise RuntimeError(f"{label}: exit {exit_code}, {line!r}")
                figure.add(elapsed)
                print(f"  {label}: {elapsed:.1f} s, exit {exit_code}", flush=True)
            figures.append(figure)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.setup_errors", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        isolate_aws_environment(tmp)
        figures = bench(args.quick)
    saved = HERE / "results" / "setup_errors.json"
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(
        json.dumps({"figures": [f.to_json() for f in figures], "quick": args.quick}, indent=2)
        + "\n"
    )
    lines = section_lines(SECTION, figures)
    splice_section(HERE / "RESULTS.md", SECTION, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
