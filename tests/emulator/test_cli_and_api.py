"""The command-line entry, the public face, and the FASTA helpers."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

import async_refimport.emulator as emulator_pkg
from async_refimport.emulator import (
    Emulator,
    FastaError,
    FastaScanner,
    Faults,
    bgzip,
    gzip_bytes,
    make_fasta,
)
from async_refimport.emulator._cli import build_parser, main


def test_public_names_are_curated() -> None:
    assert emulator_pkg.__all__ == sorted(
        emulator_pkg.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n)
    )
    for name in emulator_pkg.__all__:
        obj = getattr(emulator_pkg, name)
        if not name.isupper():
            assert obj.__module__.startswith("async_refimport.emulator")
    public = {n for n in dir(emulator_pkg) if not n.startswith("_")}
    assert public - set(emulator_pkg.__all__) <= {"pytest_plugin"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_endpoints_and_exits_0_on_signal(sig: signal.Signals) -> None:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "async_refimport.emulator",
            "--time-scale",
            "0.001",
            "--tps",
            "0",
            "--seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        assert set(info) == {
            "omics_endpoint_url",
            "s3_endpoint_url",
            "events_endpoint_url",
            "region",
        }
        assert info["events_endpoint_url"] == info["s3_endpoint_url"]  # the embedded moto
        assert info["omics_endpoint_url"].startswith("http://127.0.0.1:")
        client = boto3.client(
            "omics",
            **emulator_pkg.client_kwargs(info, max_attempts=1),
        )
        assert client.list_reference_stores()["referenceStores"] == []
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_cli_parser_options() -> None:
    args = build_parser().parse_args(
        [
            "--latency",
            "0.1:0.3",
            "--p-timeout",
            "0.2",
            "--fault-operations",
            "StartReferenceImportJob",
        ]
    )
    assert args.latency == (0.1, 0.3) and args.p_timeout == 0.2
    assert main(["--p-500", "3"]) == 2


async def test_emulator_runs_once_and_reports_when_closed() -> None:
    emu = Emulator(time_scale=0.001, faults=Faults.none())
    with pytest.raises(RuntimeError):
        _ = emu.omics_endpoint_url
    async with emu:
        assert emu.omics_endpoint_url.startswith("http://127.0.0.1:")
        assert emu.client_kwargs("s3")["endpoint_url"] == emu.s3_endpoint_url
        assert (await emu.stats())["jobs"] == []
    with pytest.raises(RuntimeError):
        async with emu:
            pass


def test_faults_validation_and_json_round_trip() -> None:
    with pytest.raises(ValueError):
        Faults(p_500=1.5)
    f = Faults(tps=3, latency=(0.1, 0.2), operations=frozenset({"GetReferenceStore"}))
    assert Faults.from_json(json.loads(json.dumps(f.to_json()))) == f


def test_make_fasta_is_deterministic() -> None:
    a = make_fasta("chr1", 130, seed=1)
    assert a == make_fasta("chr1", 130, seed=1) != make_fasta("chr1", 130, seed=2)
    lines = a.splitlines()
    assert lines[0] == ">chr1" and [len(x) for x in lines[1:]] == [60, 60, 10]


def test_bgzip_is_valid_gzip_with_bc_blocks(tmp_path: Path) -> None:
    text = make_fasta("big", 200_000, 4)
    data = bgzip(text)
    assert gzip.decompress(data).decode() == text
    # Every member carries the BGZF "BC" extra field; the file ends with the EOF block.
    assert data[12:14] == b"BC" and data.endswith(
        bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
    )
    assert gzip.decompress(gzip_bytes(text)).decode() == text


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_scanner_handles_any_chunking(chunk: int) -> None:
    data = bgzip(make_fasta("a", 1000, 1) + ">b desc\n\nacgtn\n")
    scanner = FastaScanner()
    for i in range(0, len(data), chunk):
        scanner.feed(data[i : i + chunk])
    scanner.finish()
    assert scanner.names == ["a", "b"] and scanner.bases == 1005 and scanner.compressed


def test_scanner_errors() -> None:
    scanner = FastaScanner()
    with pytest.raises(FastaError, match="without a sequence name"):
        scanner.feed(b">\nACGT\n")
        scanner.finish()
