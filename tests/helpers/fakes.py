"""The in-memory HealthOmics for unit tests of the engine's logic: the library's public
:class:`~async_refimport.MemoryGateway` (integration tests use the emulator over HTTP)."""

from __future__ import annotations

from async_refimport import TransientServiceError
from async_refimport.testing import MemoryGateway, MemoryJob

# The names the engine's unit tests were written with.
FakeOmics = MemoryGateway
FakeJob = MemoryJob

__all__ = ["FakeJob", "FakeOmics", "transient"]


def transient(
    code: str = "RequestTimeoutException", ambiguous: bool = True
) -> TransientServiceError:
    return TransientServiceError("boom", code=code, operation="Start", ambiguous=ambiguous)
