"""Hostile manifests the other suites leave out, as a subprocess: each is refused with one line
naming the file, line and field, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_refimport.emulator import EmulatorThread

from .test_cli_inputs import args_for, assert_one_clean_error, no_call_was_made, refimport

# Under the CSV reader's field limit (131,072 characters), far over any JSON parser's depth.
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "deep-tags.csv",
            f'source_file,name,tags\ns3://bkt/a.fa,hg38,"{{""k"": {DEEP}}}"\n'.encode(),
            "deep-tags.csv:2: tags: JSON nested too deeply",
        ),
        (
            "huge-tags.csv",
            b"source_file,name,tags\ns3://bkt/a.fa,hg38," + b"x" * 100_000 + b"\n",
            "huge-tags.csv:2: tags: 'xxxx",
        ),
        (
            "huge-region.jsonl",
            b'{"source_file": "s3://bkt/a.fa", "name": "hg38", "region": "'
            + b"r" * 100_000
            + b'"}\n',
            "huge-region.jsonl:1: region: 'rrrr",
        ),
        (
            "arn-newline.jsonl",
            b'{"source_file": "s3://bkt/a.fa", "name": "hg38",'
            b' "role_arn": "arn:aws:iam::123456789012:role/x\\ny"}\n',
            "arn-newline.jsonl:1: role_arn:",
        ),
        (
            "name-newline.csv",
            b'source_file,name\ns3://bkt/a.fa,"hg\n38"\n',
            "name-newline.csv:2: name:",
        ),
        (
            "latin1.csv",
            b"source_file,name\ns3://bkt/a.fa,g\xe9nome\n",
            "latin1.csv",
        ),
        (
            "nul.csv",
            b"source_file,name\ns3://bkt/a.fa,hg\x0038\n",
            "nul.csv:2:",
        ),
    ],
)
def test_hostile_manifests_are_refused_in_one_line_each(
    emulator: EmulatorThread, store: str, journal_path: Path, tmp_path: Path,
    name: str, content: bytes, expected: str,
) -> None:  # fmt: skip
    manifest = tmp_path / name
    manifest.write_bytes(content)
    run = refimport("import", manifest, *args_for(emulator, store, journal_path))
    assert_one_clean_error(run)
    assert f"{tmp_path}/{expected}" in run.stderr, run.stderr
    assert "RecursionError" not in run.stderr
    # A huge value is quoted in part: every line stays short enough to read.
    assert max(len(line) for line in run.stderr.splitlines()) < 400 + len(str(tmp_path))
    assert no_call_was_made(emulator)


def test_a_line_break_in_the_role_arn_flag_is_refused(
    emulator: EmulatorThread, store: str, journal_path: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("source_file,name\ns3://bkt/a.fa,hg38\n")
    args = args_for(emulator, store, journal_path)
    args[args.index("--role-arn") + 1] += "\nx"
    run = refimport("import", manifest, *args)
    assert_one_clean_error(run)
    assert "role_arn:" in run.stderr
    assert no_call_was_made(emulator)
