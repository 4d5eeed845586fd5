"""What the shells' command lines share: the log options, and the defaults of every option.

``refimport import``, ``report``, ``status``, ``journal init``, ``events init`` and ``worker``
read their options' defaults from the same places, in this order (the first wins):

1. the option on the command line;
2. the environment: ``REFIMPORT_<OPTION>``, the long option's name in capitals with ``_`` for
   ``-`` (``--store-id`` is ``REFIMPORT_STORE_ID``, ``--check-sources`` is
   ``REFIMPORT_CHECK_SOURCES=false``); a repeatable option takes a comma-separated list; an
   empty variable is not set;
3. the config file: ``--config FILE``, else ``$REFIMPORT_CONFIG``, else ``refimport.toml`` in
   the working directory, else the ``[tool.refimport]`` table of ``./pyproject.toml``. Its
   top-level keys are the options several commands share (:data:`SHARED_KEYS`); any option of
   one command goes in that command's table (``[import]``, ``[worker]``, ``[journal-init]``);
   a key is the long option without ``--`` (``store-id``; ``store_id`` is read the same);
4. the option's built-in default.

An unknown key or section in the config file, or a value an option would refuse, is a
:class:`ConfigError` naming the file (or variable) and the key; the shells print it as one line
and exit 2. Options that say what one run reads, writes or does (the manifest, ``--format``,
``--output``, ``--json``, ``--dry-run``, ``--skip-invalid``, ``-v``, ``-q``) have no default
from the environment or a file (:data:`PER_RUN`).
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from async_refimport._log import get_logger
from async_refimport._logconfig import LEVELS, LogFormat

#: Environment variables of option defaults start with this.
ENV_PREFIX = "REFIMPORT_"
#: The environment variable naming the config file (as ``--config`` does).
CONFIG_ENV = "REFIMPORT_CONFIG"
#: The config file read from the working directory.
CONFIG_FILE = "refimport.toml"

#: Destinations of options that say what one run reads, writes or does: never defaulted.
PER_RUN = frozenset(
    {"help", "version", "config", "verbose", "quiet", "format", "output", "json", "dry_run"}
    | {"skip_invalid"}
)

#: Top-level keys of the config file: options that several commands share, meaning the same for
#: each. Every other option goes in its command's table.
SHARED_KEYS = frozenset(
    {"store-id", "role-arn", "region", "profile", "endpoint-url", "journal", "events-queue-url"}
    | {"max-sources-per-job", "log-format", "log-level"}
)

#: The tables of the config file: one per command that reads defaults (``journal init`` is
#: ``journal-init``).
SECTIONS = frozenset(
    {"import", "report", "status", "catalog", "journal-init", "events-init", "worker"}
)

log = get_logger(__name__)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A default that cannot be used: an unknown key, a bad value, an unreadable file.

    The message names where it comes from (the file and key, or the variable); the shells print
    it as one line and exit 2.
    """


class _Unset:
    """The default of an option while the command line is read to learn what it gives."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


# -- options every shell adds ----------------------------------------------------------------


def add_log_options(
    parser: argparse.ArgumentParser,
    *,
    log_format: LogFormat = LogFormat.CONSOLE,
    default_verbosity: int = 0,
) -> None:
    """Add ``--log-format``, ``-v``, ``-q`` and ``--log-level``, meaning the same in every shell.

    ``-v`` is info, ``-vv`` debug, ``-vvv`` also the AWS SDK's and aiohttp's debug lines, ``-q``
    errors only; a shell's own default may be higher than warnings (the worker logs info), and
    ``-v`` never lowers it. Read back with :func:`verbosity`.

    Args:
        parser: A command's parser.
        log_format: The default of ``--log-format``.
        default_verbosity: The verbosity without ``-v`` or ``-q`` (0 warnings, 1 info).
    """
    parser.add_argument(
        "--log-format",
        choices=tuple(f.value for f in LogFormat),
        default=log_format.value,
        help="log lines on stderr as console text or JSON (default: %(default)s)",
    )
    default = "info" if default_verbosity >= 1 else "warnings"
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=f"more logging: -v info, -vv debug, -vvv also botocore (default: {default}); "
        "secrets are always masked",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="errors only: no warnings, no progress display"
    )
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        help="level of refimport's own log lines (overrides -v and -q)",
    )
    parser.set_defaults(default_verbosity=default_verbosity)


def verbosity(args: argparse.Namespace, *, shift: int = 0) -> int:
    """The verbosity of the options of :func:`add_log_options`, as
    :func:`~async_refimport._logconfig.configure_logging` takes it.

    Args:
        args: The parsed command line.
        shift: Added to the verbosity of ``-v`` (the demo's is one lower).

    Returns:
        -1 with ``-q``; else the count of ``-v``, at least the shell's default, plus ``shift``.
    """
    if args.quiet:
        return -1
    return max(int(args.verbose), int(args.default_verbosity)) + shift


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE``: the command reads its options' defaults (see the module).

    Args:
        parser: A command's parser (:func:`parse_with_defaults` fills in only commands that
            have this option).
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=f"defaults of the options from this TOML file (default: ${CONFIG_ENV}, else "
        f"./{CONFIG_FILE}, else [tool.refimport] in ./pyproject.toml); every option's default "
        f"can also be set as {ENV_PREFIX}<OPTION>, e.g. {ENV_PREFIX}STORE_ID",
    )


# -- which options, under which names --------------------------------------------------------


def defaultable(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``parser`` that take a default from the environment or a config file.

    Args:
        parser: One command's parser.

    Returns:
        Its optional, not required, not per-run options, in ``--help`` order.
    """
    return [
        action
        for action in parser._actions
        if action.option_strings
        and not action.required
        and action.dest not in PER_RUN
        and action.dest != argparse.SUPPRESS
        and not isinstance(action, argparse._SubParsersAction | argparse._CountAction)
    ]


def option_name(action: argparse.Action) -> str:
    """An option's long name without ``--`` (``store-id``): its config key."""
    return next(o for o in action.option_strings if o.startswith("--"))[2:]


def env_name(action: argparse.Action) -> str:
    """The environment variable of an option's default (``REFIMPORT_STORE_ID``)."""
    return ENV_PREFIX + option_name(action).upper().replace("-", "_")


@dataclass(frozen=True, slots=True)
class DefaultRow:
    """One option that takes a default, as the CLI reference lists it.

    Attributes:
        flag: The option (``--store-id``).
        env: Its environment variable.
        key: Its config key, ``section.key`` unless it is a top-level key.
        commands: The commands that have it.
    """

    flag: str
    env: str
    key: str
    commands: tuple[str, ...]


def default_rows(parsers: Mapping[str, argparse.ArgumentParser]) -> list[DefaultRow]:
    """Every option that takes a default, once, with the commands that have it.

    Args:
        parsers: Each configurable command's parser, by its section name.

    Returns:
        The rows, shared keys first, then by section and option.
    """
    commands: dict[str, list[str]] = {}
    for section, parser in parsers.items():
        for action in defaultable(parser):
            commands.setdefault(option_name(action), []).append(section)
    rows = []
    for name, sections in commands.items():
        shared = name in SHARED_KEYS
        keys = [name] if shared else [f"[{s}] {name}" for s in sections]
        env = ENV_PREFIX + name.upper().replace("-", "_")
        for key in keys:
            rows.append(DefaultRow(f"--{name}", env, key, tuple(sections)))
    return sorted(rows, key=lambda r: (r.key.startswith("["), r.key))


# -- reading the defaults --------------------------------------------------------------------


def parse_with_defaults(
    parser: argparse.ArgumentParser,
    argv: list[str],
    *,
    section: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """Parse ``argv``, then fill every option it leaves out from the environment or the config
    file (see the module); the options' built-in defaults come last.

    Args:
        parser: The shell's parser (``refimport``'s, its commands under it, or the worker's).
        argv: The arguments after the program's name.
        section: The config table of ``parser`` itself (``worker``); None: the table is the
            chosen command's path (``import``, ``journal-init``).
        environ: The environment (default: ``os.environ``).

    Returns:
        The namespace; a command without ``--config`` (``demo``) gets no defaults.

    Raises:
        ConfigError: a key or value of the config file, or a variable's value, is refused.
        SystemExit: a usage error or ``--help``, as ``parse_args`` raises it.
    """
    env = os.environ if environ is None else environ
    first = parser.parse_args(argv)
    chosen, path = _chosen(parser, first)
    if not any(a.dest == "config" for a in chosen._actions):
        return first
    if section is not None:
        known = {section: frozenset(option_name(a) for a in defaultable(parser))}
    else:
        known = {
            name: frozenset(option_name(a) for a in defaultable(sub))
            for name, sub in configurable(parser)
        }
    label, values = _config_values(first.config, env, section or "-".join(path), known)
    actions = defaultable(chosen)
    given, unset = _given(parser, argv, actions)
    sources: dict[str, str] = {}
    for action in actions:
        if action.dest not in unset:
            continue  # the command line gave it
        raw = env.get(env_name(action))
        if raw:  # set and not empty (REFIMPORT_X= is unset, as AWS_PROFILE= is)
            where, value = env_name(action), raw
        elif option_name(action) in values:
            where, value = values[option_name(action)]
        else:
            setattr(given, action.dest, getattr(first, action.dest))
            continue
        setattr(given, action.dest, _convert(action, value, where))
        sources["--" + option_name(action)] = where
    given.option_sources = OptionSources(label, sources)
    return given


@dataclass(frozen=True, slots=True)
class OptionSources:
    """Where :func:`parse_with_defaults` found the defaults it used (``args.option_sources``),
    for :func:`log_option_sources`.

    Attributes:
        config_file: The config file read, as messages name it (None: none).
        defaults: Each option given by a variable or the file, with where (never its value).
    """

    config_file: str | None
    defaults: Mapping[str, str]


def log_option_sources(args: argparse.Namespace) -> None:
    """Log, once logging is configured, the config file read (info) and where each option's
    default came from (debug): what ``-v`` and ``-vv`` show in every shell. Values are not
    logged (a role ARN or endpoint is the user's own business; a URL may carry a password).

    Args:
        args: What :func:`parse_with_defaults` returned.
    """
    sources: OptionSources | None = getattr(args, "option_sources", None)
    if sources is None:
        return
    if sources.config_file is not None:
        log.info("options.config_file", file=sources.config_file)
    for option, where in sources.defaults.items():
        log.debug("options.default", option=option, source=where)


def _given(
    parser: argparse.ArgumentParser, argv: list[str], actions: list[argparse.Action]
) -> tuple[argparse.Namespace, frozenset[str]]:
    """``argv`` parsed again, the defaults of ``actions`` put aside, and the destinations of
    those it did not give."""
    saved = {id(a): a.default for a in actions}
    for action in actions:
        # An appended option copies its default list: None marks "not given" instead.
        action.default = None if isinstance(action, argparse._AppendAction) else _UNSET
    try:
        second = parser.parse_args(argv)
    finally:
        for action in actions:
            action.default = saved[id(action)]
    unset = frozenset(
        a.dest
        for a in actions
        if getattr(second, a.dest) is (None if isinstance(a, argparse._AppendAction) else _UNSET)
    )
    return second, unset


def _chosen(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the command ``args`` chose (subcommands followed down), and its path."""
    path: list[str] = []
    current = parser
    while True:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subs[0].dest, None) if subs else None
        if not subs or name is None:
            return current, path
        path.append(name)
        current = subs[0].choices[name]


def _config_values(
    explicit: Path | None,
    environ: Mapping[str, str],
    section: str,
    known: Mapping[str, frozenset[str]],
) -> tuple[str | None, dict[str, tuple[str, Any]]]:
    """The config file's name and its values for ``section``: each key (the option's name) with
    where it is written and its value; the section's own keys win over the top-level ones.

    ``known`` holds the option names of each table this shell can check (``refimport``'s
    commands, or the worker); the keys of the others' tables are checked by their shell."""
    found = _config_file(explicit, environ)
    if found is None:
        return None, {}
    label, table = found
    values: dict[str, tuple[str, Any]] = {}
    for key, value in _keys(table, label, ""):
        if isinstance(value, dict):
            if key not in SECTIONS:
                raise ConfigError(
                    f"{label}: unknown table [{key}]: the tables are "
                    f"{', '.join(f'[{s}]' for s in sorted(SECTIONS))}"
                )
            for name, inner in _keys(value, label, f"[{key}] "):
                if key in known and name not in known[key]:
                    raise ConfigError(
                        f"{label}: unknown key {name!r} in [{key}]: its keys are "
                        f"{', '.join(sorted(known[key]))}"
                    )
                if key == section:
                    values[name] = (f"{label}: [{key}] {name}", inner)
        elif key not in SHARED_KEYS:
            raise ConfigError(
                f"{label}: unknown key {key!r}: the top-level keys are "
                f"{', '.join(sorted(SHARED_KEYS))}; other options go in their command's table "
                "([import], [worker], ...)"
            )
        else:
            values.setdefault(key, (f"{label}: {key}", value))
    return label, values


def configurable(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Each command under ``parser`` (itself included) that reads defaults: its table's name
    (``import``, ``journal-init``) and its parser.

    Args:
        parser: A shell's parser.
        path: The commands above ``parser``.

    Yields:
        ``(table, parser)`` for each parser with ``--config``, depth first.
    """
    if any(a.dest == "config" for a in parser._actions):
        yield "-".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from configurable(sub, (*path, name))


def _keys(table: Mapping[str, Any], label: str, where: str) -> Iterator[tuple[str, Any]]:
    """The keys of a config table, ``store_id`` read as ``store-id``; one written both ways is
    refused."""
    seen: set[str] = set()
    for raw, value in table.items():
        key = raw.replace("_", "-")
        if key in seen:
            raise ConfigError(f"{label}: {where}{key} is written twice ({raw!r})")
        seen.add(key)
        yield key, value


def _config_file(
    explicit: Path | None, environ: Mapping[str, str]
) -> tuple[str, dict[str, Any]] | None:
    """The config file's name as messages show it and its table; None when there is none."""
    named = explicit or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    if named is not None:
        return str(named), _read_toml(named, str(named))
    if Path(CONFIG_FILE).is_file():
        return CONFIG_FILE, _read_toml(Path(CONFIG_FILE), CONFIG_FILE)
    if Path("pyproject.toml").is_file():
        tool = _read_toml(Path("pyproject.toml"), "pyproject.toml").get("tool", {})
        table = tool.get("refimport") if isinstance(tool, dict) else None
        if isinstance(table, dict):
            return "pyproject.toml [tool.refimport]", table
        if table is not None:
            raise ConfigError("pyproject.toml: [tool.refimport] must be a table")
    return None


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config file {label}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {label} is not valid TOML: {exc}") from None


# -- one value, as the option would take it --------------------------------------------------


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` (a variable's text or a TOML value) as the option would have parsed it."""
    if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
        return _boolean(value, where)
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, str):
            items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            items = value if isinstance(value, list) else [value]
        return [_scalar(action, item, where) for item in items]
    return _scalar(action, value, where)


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{where}: {value!r} is not a boolean (true or false)")


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: {value!r} is not a value {'--' + option_name(action)} takes")
    text = value if isinstance(value, str) else str(value)
    convert = action.type
    try:
        result = convert(text) if callable(convert) else text
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError):
        kind = getattr(convert, "__name__", "value")
        raise ConfigError(f"{where}: {text!r} is not a valid {kind}") from None
    if action.choices is not None and result not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {text!r} is not one of {choices}")
    return result
