"""Helpers of the cli tests (their fixtures are in tests/cli/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from async_refimport.emulator import EmulatorThread

ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> Run:
    """``refimport ARGS`` (``python -m async_refimport``) with the test's environment (dummy
    credentials), in ``cwd`` if given (where it looks for refimport.toml and pyproject.toml)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "async_refimport", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def create_store(emu: EmulatorThread, region: str = "us-east-1") -> str:
    kwargs = emu.client_kwargs()
    # The CLI signs with the environment's credentials: create the store in that account.
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    kwargs["region_name"] = region
    omics = boto3.client("omics", **kwargs)
    return str(omics.create_reference_store(name="refs")["id"])


def starts(emu: EmulatorThread) -> int:
    return int(emu.stats()["calls"]["StartReferenceImportJob"])
