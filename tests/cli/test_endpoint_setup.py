"""A HealthOmics endpoint that is not a URL is a set-up mistake said once, naming where it comes
from (the environment variable or the option), never a problem blamed on every row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import ROLE_ARN, run_cli


@pytest.mark.parametrize(
    ("env", "option", "code", "named"),
    [
        ({"AWS_ENDPOINT_URL_OMICS": "garbage"}, [], 3, "AWS_ENDPOINT_URL_OMICS"),
        ({"AWS_ENDPOINT_URL": "not a url"}, [], 3, "AWS_ENDPOINT_URL"),
        ({}, ["--endpoint-url", "ftp://host"], 2, "--endpoint-url"),
    ],
)
def test_a_bad_endpoint_is_one_line_naming_its_source(
    tmp_path: Path, env: dict[str, str], option: list[str], code: int, named: str
) -> None:
    manifest = tmp_path / "m.csv"
    rows = "".join(f"ref-{i},s3://genomes/ref-{i}.fa\n" for i in range(3))
    manifest.write_text("name,source_file\n" + rows)
    journal = tmp_path / "j.sqlite"
    run = run_cli(
        "import", manifest, "--store-id", "1234567890", "--role-arn", ROLE_ARN,
        "--journal", journal, *option, env=env,
    )  # fmt: skip
    assert run.code == code, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}: "), run.stderr
    assert "m.csv:" not in run.stderr and "Traceback" not in run.stderr
    assert not journal.exists()  # nothing journaled


def test_one_ctrl_c_stops_a_run_whose_first_call_keeps_failing(tmp_path: Path) -> None:
    """Every ListReferences answers 500 (an answer: retried, not a set-up error). One Ctrl-C
    must end the run, with nothing journaled or sent, not wait for a second one."""
    import signal
    import subprocess
    import sys
    import time

    from async_refimport.emulator import EmulatorThread, Faults
    from tests.helpers.cli import create_store

    with EmulatorThread(time_scale=0.01) as emu:
        store = create_store(emu)
        emu.configure(faults=Faults(tps=None, p_500=1.0, operations=frozenset({"ListReferences"})))
        manifest = tmp_path / "m.csv"
        manifest.write_text("name,source_file\nref-a,s3://genomes/ref-a.fa\n")
        journal = tmp_path / "j.sqlite"
        command = [
            sys.executable, "-m", "async_refimport", "import", str(manifest),
            "--store-id", store, "--role-arn", ROLE_ARN,
            "--endpoint-url", emu.omics_endpoint_url, "--journal", str(journal),
        ]  # fmt: skip
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while emu.stats()["calls"].get("ListReferences", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=60)  # one Ctrl-C is enough
        finally:
            proc.kill()
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert emu.stats()["calls"].get("StartReferenceImportJob", 0) == 0
