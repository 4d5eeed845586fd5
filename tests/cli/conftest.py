"""Fixtures for the CLI tests: run ``refimport`` as a subprocess against the test emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from async_refimport.emulator import EmulatorThread, make_fasta

ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """``refimport ARGS`` (``python -m async_refimport``) with the test's environment (dummy
    credentials)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Callable[..., Run]:
    return run_cli


def create_store(emu: EmulatorThread, region: str = "us-east-1") -> str:
    kwargs = emu.client_kwargs()
    # The CLI signs with the environment's credentials: create the store in that account.
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    kwargs["region_name"] = region
    omics = boto3.client("omics", **kwargs)
    return str(omics.create_reference_store(name="refs")["id"])


@pytest.fixture
def store(emulator: EmulatorThread) -> str:
    return create_store(emulator)


@pytest.fixture
def genomes(s3_fasta: Callable[..., str]) -> Callable[..., list[tuple[str, str]]]:
    """``genomes(n, prefix)`` uploads n small FASTA files; returns (name, s3 uri) pairs."""

    def upload(n: int, prefix: str) -> list[tuple[str, str]]:
        return [
            (
                f"{prefix}-{i:03d}",
                s3_fasta(f"cli/{prefix}-{i:03d}.fa", make_fasta(f"chr{i}", 200, seed=i)),
            )
            for i in range(n)
        ]

    return upload


def starts(emu: EmulatorThread) -> int:
    return int(emu.stats()["calls"]["StartReferenceImportJob"])
