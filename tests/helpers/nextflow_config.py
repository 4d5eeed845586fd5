"""A strict parser of the Nextflow config subset ``refimport catalog --format nextflow`` writes.

No ``nextflow`` or ``groovy`` binary is on the test machines, so the snippet is read by this
parser instead: the grammar is Nextflow's own config grammar (``ConfigParser.g4``: a config file
is assignments ``a.b = EXPR`` whose option names are identifiers, and blocks ``NAME { ... }``
whose name is an identifier or a string literal), restricted to the expressions the catalog
writes: single-quoted Groovy strings (with Groovy's escapes) and map literals with string keys
(``[:]`` empty, a trailing comma allowed). Anything else, including what Groovy would accept
but the catalog never writes (a double-quoted string, a list, a number), raises
:class:`ConfigSyntaxError` naming the line: a malformed snippet fails the test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<nl>\n)
  | (?P<space>[ \t\r]+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<string>'(?:[^'\\\n]|\\.)*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]:,=.])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b",
            "f": "\f", "$": "$"}  # fmt: skip
# Groovy's keywords: none may be an option's name.
_KEYWORDS = frozenset(
    "as assert break case catch class const continue def default do else enum extends false "
    "finally for goto if implements import in instanceof interface new null package return "
    "super switch this throw throws trait true try var while".split()
)


class ConfigSyntaxError(ValueError):
    """The text is not in the config subset (the message names the line)."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    line: int


def _decode(literal: str, line: int) -> str:
    """The value of a single-quoted Groovy string (its quotes included)."""
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u":
            digits = body[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ConfigSyntaxError(f"line {line}: bad \\u escape in {literal!r}")
            out.append(chr(int(digits, 16)))
            i += 6
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise ConfigSyntaxError(f"line {line}: unknown escape \\{nxt} in {literal!r}")
    # \\u escapes are UTF-16 units: a surrogate pair is one character.
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _tokens(text: str) -> list[_Token]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConfigSyntaxError(f"line {line}: unexpected {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        if kind in ("nl", "ident", "punct", "string"):
            tokens.append(_Token(kind, match[0], line))
        line += match[0].count("\n")
        pos = match.end()
    tokens.append(_Token("eof", "", line))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token.kind != kind or (text is not None and token.text != text):
            want = text or kind
            raise ConfigSyntaxError(f"line {token.line}: expected {want}, got {token.text!r}")
        self.pos += 1
        return token

    def newlines(self) -> int:
        count = 0
        while self.peek().kind == "nl":
            self.pos += 1
            count += 1
        return count

    def statements(self, into: dict[str, Any], *, end: str) -> None:
        """Statements up to ``end`` (``}`` or the end of the file), one a line."""
        self.newlines()
        while not (self.peek().kind == end or self.peek().text == end):
            self.statement(into)
            if self.peek().text == end or self.peek().kind == end:
                break
            if not self.newlines():
                token = self.peek()
                raise ConfigSyntaxError(f"line {token.line}: two statements on one line")

    def statement(self, into: dict[str, Any]) -> None:
        first = self.peek()
        if first.kind == "string":  # a block named by a string literal
            self.pos += 1
            self.block(into, _decode(first.text, first.line))
            return
        path = [self.name()]
        while self.peek().text == ".":
            self.pos += 1
            path.append(self.name())
        if self.peek().text == "{" and len(path) == 1:
            self.block(into, path[0])
            return
        self.take("punct", "=")
        self.newlines()
        target = into
        for part in path[:-1]:
            target = target.setdefault(part, {})
        if path[-1] in target:
            raise ConfigSyntaxError(f"line {first.line}: {'.'.join(path)} assigned twice")
        target[path[-1]] = self.expression()

    def name(self) -> str:
        token = self.take("ident")
        if token.text in _KEYWORDS:
            raise ConfigSyntaxError(f"line {token.line}: {token.text!r} is a keyword")
        return token.text

    def block(self, into: dict[str, Any], name: str) -> None:
        self.take("punct", "{")
        scope = into.setdefault(name, {})
        self.statements(scope, end="}")
        self.take("punct", "}")

    def expression(self) -> Any:
        token = self.peek()
        if token.kind == "string":
            self.pos += 1
            return _decode(token.text, token.line)
        if token.text == "[":
            return self.map()
        raise ConfigSyntaxError(
            f"line {token.line}: expected a string or a map, got {token.text!r}"
        )

    def map(self) -> dict[str, Any]:
        self.take("punct", "[")
        self.newlines()
        if self.peek().text == ":":
            self.pos += 1
            self.newlines()
            self.take("punct", "]")
            return {}
        result: dict[str, Any] = {}
        while True:
            key_token = self.take("string")
            key = _decode(key_token.text, key_token.line)
            if key in result:
                raise ConfigSyntaxError(f"line {key_token.line}: key {key!r} given twice")
            self.newlines()
            self.take("punct", ":")
            self.newlines()
            result[key] = self.expression()
            self.newlines()
            if self.peek().text == "]":
                break
            self.take("punct", ",")
            self.newlines()
            if self.peek().text == "]":  # a trailing comma
                break
        self.take("punct", "]")
        return result


def parse_config(text: str) -> dict[str, Any]:
    """The settings of a config snippet in the catalog's subset, as nested dicts.

    Args:
        text: The snippet.

    Returns:
        ``{"params": {"refimport": {...}, ...}}``: blocks and dotted names as nested dicts.

    Raises:
        ConfigSyntaxError: the text is not in the subset.
    """
    parser = _Parser(text)
    settings: dict[str, Any] = {}
    parser.statements(settings, end="eof")
    parser.take("eof")
    return settings
