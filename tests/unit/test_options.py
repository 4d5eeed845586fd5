"""The names of option defaults: one variable and one key per option, the same for every command
that has it, and the config file's tables are the commands that read defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from async_refimport._options import (
    ENV_PREFIX,
    PER_RUN,
    SECTIONS,
    SHARED_KEYS,
    ConfigError,
    configurable,
    default_rows,
    defaultable,
    option_name,
    parse_with_defaults,
)
from async_refimport._shell_completion import completion_parser


def tables() -> dict[str, argparse.ArgumentParser]:
    return dict(configurable(completion_parser()))


def test_the_commands_that_read_defaults_are_the_config_tables() -> None:
    found = tables()
    assert {"import", "report", "status", "journal-init", "events-init", "worker"} <= set(found)
    assert set(found) <= SECTIONS
    assert "demo" not in found  # the demo runs against its own emulator: nothing to default


def test_each_option_has_one_variable_and_one_meaning() -> None:
    rows = default_rows(tables())
    by_flag = {row.flag for row in rows if not row.key.startswith("[")}
    assert {"--store-id", "--role-arn", "--region", "--journal"} <= by_flag
    for row in rows:
        assert row.env == ENV_PREFIX + row.flag[2:].upper().replace("-", "_"), row
    # A shared (top-level) key is an option of several commands; per-run options are none.
    for key in SHARED_KEYS:
        having = [name for name, p in tables().items() if key in map(option_name, defaultable(p))]
        assert len(having) >= 2, (key, having)
    for parser in tables().values():
        assert not {a.dest for a in defaultable(parser)} & PER_RUN


def worker_like() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--allow-store", action="append", default=[])
    parser.add_argument("--trusted-network", action="store_true")
    parser.add_argument("--log-level", choices=("debug", "info"))
    return parser


def test_values_are_parsed_as_the_option_would_and_flags_replace_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no refimport.toml or pyproject.toml but the test's
    config = tmp_path / "c.toml"
    config.write_text('[worker]\nallow-store = ["a", "b"]\ntrusted-network = true\ngrace = 5\n')
    args = parse_with_defaults(
        worker_like(), ["--config", str(config)], section="worker", environ={}
    )
    assert (args.allow_store, args.trusted_network, args.grace) == (["a", "b"], True, 5.0)
    # A flag replaces the file's list (it does not add to it); the environment's list is split.
    flag = parse_with_defaults(
        worker_like(), ["--config", str(config), "--allow-store", "c"], section="worker", environ={}
    )
    assert flag.allow_store == ["c"]
    env = parse_with_defaults(
        worker_like(), [], section="worker", environ={"REFIMPORT_ALLOW_STORE": "x, y"}
    )
    assert env.allow_store == ["x", "y"] and env.grace == 30.0 and env.trusted_network is False
    # An empty variable is not set: the file's value (here none: the built-in default) applies.
    empty = parse_with_defaults(
        worker_like(), [], section="worker", environ={"REFIMPORT_GRACE": ""}
    )
    assert empty.grace == 30.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"REFIMPORT_GRACE": "soon"}, "REFIMPORT_GRACE: 'soon' is not a valid float"),
        (
            {"REFIMPORT_TRUSTED_NETWORK": "sure"},
            "REFIMPORT_TRUSTED_NETWORK: 'sure' is not a boolean",
        ),
        ({"REFIMPORT_LOG_LEVEL": "loud"}, "REFIMPORT_LOG_LEVEL: 'loud' is not one of debug, info"),
    ],
)
def test_a_refused_value_names_its_variable(
    environ: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        parse_with_defaults(worker_like(), [], section="worker", environ=environ)
    assert str(caught.value).startswith(message)


def test_the_cli_reference_renders_every_default_from_the_parsers() -> None:
    import importlib.util

    root = Path(__file__).parents[2]
    assert "<!-- cli-defaults -->" in (root / "docs" / "reference" / "cli.md").read_text()
    spec = importlib.util.spec_from_file_location(
        "cli_help", root / "docs" / "hooks" / "cli_help.py"
    )
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    table = hook.defaults_table()
    for row in default_rows(tables()):
        assert f"| `{row.flag}` | `{row.env}` | `{row.key}` |" in table, row
    assert "| `--store-id` | `REFIMPORT_STORE_ID` | `store-id` | import, worker |" in table
