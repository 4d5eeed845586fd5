"""Option defaults from ``REFIMPORT_<OPTION>`` and the config file, for every command and the
worker: flags > environment > config file > built-in defaults; a bad key or value is exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run, create_store, run_cli, starts


def refimport(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """``refimport ARGS`` run in ``cwd`` (where it looks for refimport.toml and pyproject.toml)."""
    return run_cli(*args, env=env, cwd=cwd)


def journal_named(run: Run) -> str:
    """The journal ``refimport status`` looked for: its 'no journal at PATH' line."""
    assert run.code == 2, run.stderr
    line = next(line for line in run.stderr.splitlines() if "no journal at" in line)
    return line.split("no journal at ", 1)[1].split(" (")[0]


def test_flags_win_over_the_environment_over_the_file_over_the_built_in_default(
    tmp_path: Path,
) -> None:
    # The built-in default: the user's journal under XDG_STATE_HOME (the tests' own).
    state = os.environ["XDG_STATE_HOME"]
    assert journal_named(refimport("status", cwd=tmp_path)).startswith(state)
    (tmp_path / "refimport.toml").write_text('journal = "from-file.sqlite"\n')
    assert journal_named(refimport("status", cwd=tmp_path)) == "from-file.sqlite"
    env = {"REFIMPORT_JOURNAL": "from-env.sqlite"}
    assert journal_named(refimport("status", cwd=tmp_path, env=env)) == "from-env.sqlite"
    flag = refimport("status", "--journal", "from-flag.sqlite", cwd=tmp_path, env=env)
    assert journal_named(flag) == "from-flag.sqlite"


def test_a_command_table_wins_over_the_top_level_for_that_command_only(tmp_path: Path) -> None:
    (tmp_path / "refimport.toml").write_text(
        'journal = "shared.sqlite"\n\n[report]\njournal = "report.sqlite"\n'
    )
    assert journal_named(refimport("report", cwd=tmp_path)) == "report.sqlite"
    assert journal_named(refimport("status", cwd=tmp_path)) == "shared.sqlite"


def test_where_the_config_file_is_found(tmp_path: Path) -> None:
    # The [tool.refimport] table of ./pyproject.toml.
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.refimport]\njournal = "pyproject.sqlite"\n'
    )
    assert journal_named(refimport("status", cwd=tmp_path)) == "pyproject.sqlite"
    # refimport.toml wins over pyproject.toml ...
    (tmp_path / "refimport.toml").write_text('journal = "toml.sqlite"\n')
    assert journal_named(refimport("status", cwd=tmp_path)) == "toml.sqlite"
    # ... $REFIMPORT_CONFIG over both, and --config over $REFIMPORT_CONFIG.
    (tmp_path / "a.toml").write_text('journal = "a.sqlite"\n')
    (tmp_path / "b.toml").write_text('journal = "b.sqlite"\n')
    env = {"REFIMPORT_CONFIG": "a.toml"}
    assert journal_named(refimport("status", cwd=tmp_path, env=env)) == "a.sqlite"
    both = refimport("status", "--config", "b.toml", cwd=tmp_path, env=env)
    assert journal_named(both) == "b.sqlite"
    # A pyproject.toml without the table is no config file.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pyproject.toml").write_text('[project]\nname = "y"\n')
    assert journal_named(refimport("status", cwd=elsewhere)).startswith(
        os.environ["XDG_STATE_HOME"]
    )


def test_an_unknown_key_names_the_file_and_the_key_and_exits_2(tmp_path: Path) -> None:
    cases = {
        'stor-id = "1"\n': ("refimport.toml", "'stor-id'"),
        "[import]\nmax-sources = 3\n": ("refimport.toml", "max-sources"),
        '[imprt]\nstore-id = "1"\n': ("refimport.toml", "[imprt]"),
        # A per-run option has no default: --dry-run in a file is refused, not obeyed.
        "[import]\ndry-run = true\n": ("refimport.toml", "dry-run"),
        '[import]\nmax-sources-per-job = "many"\n': ("[import] max-sources-per-job", "'many'"),
        '[import]\ncheck-sources = "perhaps"\n': ("check-sources", "not a boolean"),
        # log_level is read as log-level.
        'log_level = "loud"\n': ("log-level", "'loud'"),
        "store-id = \n": ("refimport.toml", "not valid TOML"),
    }
    for text, (where, what) in cases.items():
        (tmp_path / "refimport.toml").write_text(text)
        run = refimport("import", "m.csv", cwd=tmp_path)
        assert run.code == 2, (text, run.stderr)
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and where in last and what in last, (text, last)
        assert "Traceback" not in run.stderr
    (tmp_path / "refimport.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.refimport]\nregoin = "eu-west-1"\n')
    run = refimport("status", cwd=tmp_path)
    assert run.code == 2 and "pyproject.toml [tool.refimport]" in run.stderr, run.stderr
    assert "'regoin'" in run.stderr
    missing = refimport("status", "--config", "nowhere.toml", cwd=tmp_path)
    assert missing.code == 2 and "nowhere.toml" in missing.stderr, missing.stderr


def test_a_bad_value_in_the_environment_names_the_variable_and_exits_2(tmp_path: Path) -> None:
    for name, value in (
        ("REFIMPORT_MAX_SOURCES_PER_JOB", "lots"),
        ("REFIMPORT_CHECK_SOURCES", "maybe"),
        ("REFIMPORT_LOG_FORMAT", "xml"),
    ):
        run = refimport("import", "m.csv", cwd=tmp_path, env={name: value})
        assert run.code == 2 and f"error: {name}: {value!r}" in run.stderr, run.stderr


def test_an_import_takes_its_store_role_endpoint_and_packing_from_file_and_environment(
    emulator: EmulatorThread,
    genomes: Callable[..., list[tuple[str, str]]],
    tmp_path: Path,
) -> None:
    store = create_store(emulator)
    items = genomes(4, "defaults")
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,source_file\n" + "".join(f"{n},{u}\n" for n, u in items))
    (tmp_path / "refimport.toml").write_text(
        f'store-id = "{store}"\nrole-arn = "{ROLE_ARN}"\nendpoint-url = '
        f'"{emulator.omics_endpoint_url}"\njournal = "j.sqlite"\n\n'
        "[import]\nmax-sources-per-job = 1\ncheck-sources = false\n"
    )
    # The environment wins over the file: two rows a job, not one.
    env = {"REFIMPORT_MAX_SOURCES_PER_JOB": "2"}
    run = refimport("import", manifest, "--json", cwd=tmp_path, env=env)
    assert run.code == 0, run.stderr
    assert run.json()["summary"]["imported"] == 4
    assert starts(emulator) == 2
    assert {r["name"] for r in emulator.stats()["references"][store]} == {n for n, _ in items}
    assert (tmp_path / "j.sqlite").is_file()


def test_the_worker_reads_the_same_sources(emulator: EmulatorThread, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (tmp_path / "refimport.toml").write_text(
        f'journal = "w.sqlite"\nendpoint-url = "{emulator.omics_endpoint_url}"\n\n'
        '[worker]\nspool = "spool"\nscan-interval = 0.2\n'
    )
    env = {**os.environ, "REFIMPORT_HTTP_PORT": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "async_refimport", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        announced = json.loads(proc.stdout.readline() or "{}")
        assert announced.get("http", "").startswith("http://127.0.0.1:"), announced
        assert (tmp_path / announced["spool"]).resolve() == spool.resolve()
        assert (spool / "incoming").is_dir() and (tmp_path / "w.sqlite").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    # An unknown key of its table is the same one line and exit 2 as for any command.
    (tmp_path / "refimport.toml").write_text('[worker]\nspol = "spool"\n')
    bad = refimport("worker", cwd=tmp_path)
    assert bad.code == 2 and "refimport.toml" in bad.stderr and "spol" in bad.stderr, bad.stderr
    (tmp_path / "refimport.toml").unlink()
    env_bad = refimport("worker", "--spool", "s", cwd=tmp_path, env={"REFIMPORT_GRACE": "soon"})
    assert env_bad.code == 2 and "REFIMPORT_GRACE" in env_bad.stderr, env_bad.stderr
