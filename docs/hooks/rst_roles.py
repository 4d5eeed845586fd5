"""Griffe extension: the reST inline markup of the docstrings, rendered as Markdown by mkdocstrings.

The docstrings are Google style (their ``Args:``/``Returns:`` sections parse as they are), but
their inline markup is reST, as Sphinx and the Python docs write it: ``:class:`~pkg.Name```,
````literal````, a paragraph ending ``::`` before a code block. The API reference renders them
with Markdown, so this extension rewrites them once the package is loaded: a role becomes a
cross-reference to the object's entry (a plain code span when the object has none: the
reference is optional, so no warning), a double-backtick literal a code span, ``::`` a colon.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):`(?P<text>[^`]+)`")
LITERAL = re.compile(r"``(?P<text>[^`]+?)``")
FENCE = re.compile(r"^\s*```")


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as written in ``obj``'s docstring, resolved in its scope."""
    head, _, rest = name.partition(".")
    if name.startswith("async_refimport"):
        return name
    try:
        resolved = obj.resolve(head)
    except (griffe.NameResolutionError, ValueError, AttributeError):
        return name
    return f"{resolved}.{rest}" if rest else resolved


def _role(obj: griffe.Object, match: re.Match[str]) -> str:
    """One role as an optional cross-reference (``~`` shows the last component only)."""
    text = match["text"].strip()
    if (m := re.fullmatch(r"(?P<title>.+?)\s*<(?P<name>[^>]+)>", text)) is not None:
        title, name = m["title"], m["name"]
    else:
        name = text.lstrip("~")
        title = name.rsplit(".", 1)[-1] if text.startswith("~") else name
    identifier = _target(obj, name.removesuffix("()"))
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def _inline(obj: griffe.Object, line: str) -> str:
    """One line's roles and literals in Markdown."""
    line = ROLE.sub(lambda m: _role(obj, m), line)
    return LITERAL.sub(lambda m: f"`{m['text']}`", line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def markdown(obj: griffe.Object, text: str) -> str:
    """A docstring's reST inline markup rewritten as Markdown (fenced code left alone).

    A paragraph ending ``::`` ends with a colon, and the indented block after it becomes a
    fenced code block (inside a list, an indented block would read as the item's text).

    Args:
        obj: The object whose docstring it is (names are resolved in its scope).
        text: The docstring.

    Returns:
        The docstring in Markdown.
    """
    lines, out, i, fenced = text.splitlines(), [], 0, False
    while i < len(lines):
        line = lines[i]
        i += 1
        if FENCE.match(line):
            fenced = not fenced
        if fenced or FENCE.match(line) or not line.rstrip().endswith("::"):
            out.append(line if fenced or FENCE.match(line) else _inline(obj, line))
            continue
        base = _indent(line)
        out.append("" if line.strip() == "::" else _inline(obj, line.rstrip()[:-1]))
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        while block and not block[0].strip():
            block.pop(0)
        if not block:
            continue
        cut = min(_indent(b) for b in block if b.strip())
        body = [b[cut:] if b.strip() else "" for b in block]
        out += [
            "",
            " " * base + "```python",
            *(" " * base + b for b in body),
            " " * base + "```",
            "",
        ]
    return "\n".join(out)


class RestRoles(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module's docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and everything in it, aliases aside.

        Args:
            pkg: The package, loaded whole.
            **kwargs: What else griffe passes.
        """
        todo: list[griffe.Object] = [pkg]
        while todo:
            obj = todo.pop()
            if obj.docstring is not None:
                obj.docstring.value = markdown(obj, obj.docstring.value)
            todo.extend(m for m in obj.members.values() if not m.is_alias)  # type: ignore[misc]
