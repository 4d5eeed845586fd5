"""MkDocs hook: every command's ``--help``, rendered into the CLI reference from the parsers.

``<!-- cli-help -->`` on a line of its own becomes one section per command and subcommand, each
with the text ``refimport COMMAND --help`` prints; ``<!-- cli-defaults -->`` the table of every
option that takes a default from the environment or the config file. The text comes from the
same argparse parsers that read the command line (``refimport completion`` uses them too), so
the page lists every option there is and cannot lag behind them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-help -->"
#: Where the table of option defaults (flag, environment variable, config key) goes.
DEFAULTS_MARKER = "<!-- cli-defaults -->"
# argparse wraps to $COLUMNS: a fixed width makes the page the same on every machine.
WIDTH = "100"


def _commands(
    parser: argparse.ArgumentParser, prog: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Each command's name and parser, depth first, ``refimport`` itself first."""
    yield prog, parser
    for action in parser._actions:  # argparse keeps its subcommands here only
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prog} {name}")


def _sections() -> str:
    """The Markdown of every command's help."""
    from async_refimport._shell_completion import completion_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parts = []
        for prog, parser in _commands(completion_parser(), "refimport"):
            parser.prog = prog
            parts.append(f"### `{prog}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(parts)


def defaults_table() -> str:
    """The Markdown table of every option that takes a default: flag, variable, config key."""
    from async_refimport._options import configurable, default_rows
    from async_refimport._shell_completion import completion_parser

    rows = default_rows(dict(configurable(completion_parser())))
    lines = ["| option | environment variable | config key | commands |", "|---|---|---|---|"]
    for row in rows:
        commands = ", ".join(c.replace("-", " ") for c in row.commands)
        lines.append(f"| `{row.flag}` | `{row.env}` | `{row.key}` | {commands} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put every command's help in place of the marker.

    Args:
        markdown: The page's Markdown.
        page: The page being built.
        config: The MkDocs configuration.
        files: Every file of the site.

    Returns:
        The Markdown, the marker replaced (pages without it unchanged).
    """
    if DEFAULTS_MARKER in markdown:
        markdown = markdown.replace(DEFAULTS_MARKER, defaults_table())
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _sections())
