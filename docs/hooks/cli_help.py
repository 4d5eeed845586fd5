"""MkDocs hook: every command's ``--help``, rendered into the CLI reference from the parsers.

``<!-- cli-help -->`` on a line of its own becomes one section per command and subcommand, each
with the text ``refimport COMMAND --help`` prints. The text comes from the same argparse parsers
that read the command line (``refimport completion`` uses them too), so the page lists every
option there is and cannot lag behind them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-help -->"
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
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _sections())
