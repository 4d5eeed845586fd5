"""Fixtures for the CLI tests: run ``refimport`` as a subprocess against the test emulator."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from async_refimport.emulator import EmulatorThread, make_fasta
from tests.helpers.cli import (
    Run,
    create_store,
    run_cli,
)


@pytest.fixture
def cli() -> Callable[..., Run]:
    return run_cli


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
