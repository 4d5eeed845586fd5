"""Fuzzing the manifest readers: whatever the input, the answer is rows or errors that read
``FILE:LINE: field: reason`` (``FILE: field: reason`` for the whole file), never an exception."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from async_refimport._errors import FieldError
from async_refimport._models import validate_request
from async_refimport.manifest.reader import (
    COLUMNS,
    CheckedManifest,
    Manifest,
    ManifestDefaults,
    check_manifest,
    check_objects,
    format_error,
    parse_manifest,
    read_manifest,
)

DEFAULTS = ManifestDefaults(
    store_id="1234567890",
    role_arn="arn:aws:iam::123456789012:role/OmicsImport",
    region="us-east-1",
)
FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,  # no .hypothesis directory in the worktree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Text that breaks naive readers: separators, quotes, line breaks of every kind, controls,
# a BOM, surrogate-escaped bytes, emoji, and values that are almost valid.
_TRICKY = st.sampled_from(
    [
        ",",
        "\t",
        '"',
        "'",
        "\n",
        "\r",
        "\r\n",
        "\x85",
        "\u2028",
        "\x00",
        "\x1b[31m",
        "\ufeff",
        "\U0001f9ec",
        "{",
        "}",
        "[",
        '{"a":',
        "=",
        ";",
        "|",
        " ",
        "s3://bkt/a.fa",
        "s3://Bad_Bucket/x.fa",
        "arn:aws:iam::123456789012:role/OmicsImport",
        "arn:aws:iam:123:role/x",
        "1234567890",
        "us-east-1",
        "http://127.0.0.1:1",
        "9" * 5000,
    ]
)
_TEXT = st.lists(st.one_of(_TRICKY, st.text(max_size=12)), max_size=6).map("".join)
_COLUMN = st.one_of(
    st.sampled_from(COLUMNS), st.sampled_from(["sourceFile", "roleArn", "x"]), _TEXT
)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)
        ),
        max_leaves=8,
    )


def _check(manifest: Manifest, source: str, lines: int) -> None:
    for error in manifest.errors:
        assert isinstance(error, FieldError)
        text = format_error(error)
        assert len(text.splitlines()) == 1, text
        if error.line is None:
            assert text == f"{source}: {error.field}: {error.reason}"
        else:
            assert text == f"{source}:{error.line}: {error.field}: {error.reason}"
            assert 1 <= error.line <= max(lines, 1)
        assert error.field and error.reason
    for row in manifest.rows:
        assert 1 <= row.line <= lines
        assert validate_request(row.request) == []
        assert row.line not in manifest.invalid_lines
    assert manifest.requests or manifest.errors  # a manifest without rows is refused
    # Every row that is not valid is counted once, whatever its line.
    assert manifest.invalid_rows == len(manifest.invalid_lines)


def _line_count(data: bytes) -> int:
    # Upper bound on the lines a reader can name: every kind of line break counts.
    return len(data.decode("utf-8", "replace").splitlines()) + data.count(b"\r") + 1


@FUZZ
@given(data=st.binary(max_size=400), fmt=st.sampled_from(["csv", "tsv", "jsonl"]))
def test_any_bytes(tmp_path: Path, data: bytes, fmt: str) -> None:
    path = tmp_path / f"m.{fmt}"
    path.write_bytes(data)
    whole = read_manifest(path, DEFAULTS)
    _check(whole, str(path), _line_count(data))
    _same_rows(whole, check_manifest(path, DEFAULTS))
    sniffed = read_manifest("-", DEFAULTS, stdin=io.BytesIO(data))
    _check(sniffed, "-", _line_count(data))
    _same_rows(sniffed, check_manifest("-", DEFAULTS, stdin=io.BytesIO(data)))


def _same_rows(whole: Manifest, checked: CheckedManifest) -> None:
    """A manifest checked without keeping its rows finds the same problems, and reads the same
    rows again, whatever the chunk size."""
    assert checked.errors == whole.errors
    assert checked.manifest.invalid_lines == whole.invalid_lines
    assert checked.valid_rows == len(whole.requests)
    assert [r for chunk in checked.chunks(2) for r in chunk] == whole.requests
    stores = {(r.store_id, r.region, r.endpoint_url, r.profile) for r in whole.requests}
    assert {(r.store_id, r.region, r.endpoint_url, r.profile) for r in checked.stores} == stores


@FUZZ
@given(
    header=st.lists(_COLUMN, min_size=1, max_size=6),
    rows=st.lists(st.lists(_TEXT, max_size=7), max_size=6),
    delimiter=st.sampled_from([",", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]),
    ignore=st.booleans(),
)
def test_delimited_text(
    header: list[str], rows: list[list[str]], delimiter: str, quoting: int, ignore: bool
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, escapechar="\\")
    try:
        writer.writerow(header)
        writer.writerows(rows)
    except csv.Error:
        return  # not writable without quoting: the raw-bytes test covers such input
    data = out.getvalue().encode("utf-8", "surrogatepass")
    source = "m.tsv" if delimiter == "\t" else "m.csv"
    manifest = parse_manifest(data, source, DEFAULTS, ignore_unknown_columns=ignore)
    _check(manifest, source, _line_count(data))


_ROW = st.dictionaries(
    st.one_of(st.sampled_from(COLUMNS), _TEXT),
    st.one_of(_TEXT, _json_values()),
    max_size=8,
)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            _ROW.map(json.dumps),
            _ROW.map(lambda r: json.dumps(r, ensure_ascii=False)),
            _json_values().map(json.dumps),
            _TEXT,
            st.integers(1, 3000).map(lambda n: '{"tags":' + "[" * n + "]" * n + "}"),
            st.just('{"name": "aaa", "name": "bbb", "source_file": "s3://bkt/a.fa"}'),
        ),
        max_size=8,
    ),
    ignore=st.booleans(),
)
def test_json_lines(lines: list[str], ignore: bool) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    manifest = parse_manifest(data, "m.jsonl", DEFAULTS, ignore_unknown_columns=ignore)
    _check(manifest, "m.jsonl", _line_count(data))
    from_stdin = parse_manifest(data, "-", DEFAULTS, ignore_unknown_columns=ignore, format="jsonl")
    checked = check_manifest(
        "-", DEFAULTS, format="jsonl", ignore_unknown_columns=ignore, stdin=io.BytesIO(data)
    )
    _same_rows(from_stdin, checked)


@FUZZ
@given(items=st.lists(st.one_of(_ROW, _json_values()), max_size=6))
def test_decoded_objects(items: list[Any]) -> None:
    manifest = check_objects(items, DEFAULTS)
    for error in manifest.errors:
        assert error.line is not None and 1 <= error.line <= len(items)
        assert len(format_error(error).splitlines()) == 1
    assert len(manifest.requests) + manifest.invalid_rows == len(items)


@pytest.mark.parametrize("depth", [10, 1000, 100_000])
def test_nesting_at_any_depth(depth: int) -> None:
    deep = "[" * depth + "]" * depth
    for data in (
        f'{{"source_file": "s3://bkt/a.fa", "name": "aaa", "tags": {deep}}}\n'.encode(),
        f'source_file,name,tags\ns3://bkt/a.fa,aaa,"{{""a"": {deep}}}"\n'.encode(),
    ):
        manifest = parse_manifest(data, "m.jsonl" if data.startswith(b"{") else "m.csv", DEFAULTS)
        assert manifest.requests == [] and len(manifest.errors) == 1
