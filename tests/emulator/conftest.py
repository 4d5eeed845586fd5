from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from async_refimport.emulator import EmulatorThread, make_fasta


@pytest.fixture
def omics(emulator: EmulatorThread) -> Any:
    """A sync boto3 omics client that never retries, so every fault is visible."""
    return boto3.client("omics", **emulator.client_kwargs(max_attempts=1))


@pytest.fixture
def store_id(omics: Any) -> str:
    return str(omics.create_reference_store(name="test-store")["id"])


@pytest.fixture
def fasta_uri(s3_fasta: Callable[..., str]) -> Callable[[str, int], str]:
    """Upload a synthetic FASTA named after ``key`` and return its URI."""

    def make(key: str, seed: int = 0) -> str:
        return s3_fasta(f"{key}.fa", make_fasta(key, 500, seed))

    return make
