"""Helpers of the emulator tests (their fixtures are in tests/emulator/conftest.py)."""

from __future__ import annotations

import time
from importlib.metadata import entry_points
from typing import Any

# The plugin is normally loaded through its pytest11 entry point; until the package is
# reinstalled with it, take the fixtures from the module directly.
if not any(
    e.value == "async_refimport.emulator.pytest_plugin" for e in entry_points(group="pytest11")
):
    from async_refimport.emulator.pytest_plugin import (  # noqa: F401
        emulator,
        emulator_factory,
        emulator_session,
        s3_fasta,
    )


ROLE = "arn:aws:iam::123456789012:role/OmicsImport"


TERMINAL = {"COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED", "CANCELLED"}


def wait_job(omics: Any, store_id: str, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll until the job ends (jobs take milliseconds at time_scale 0.001)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = omics.get_reference_import_job(referenceStoreId=store_id, id=job_id)
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']}")
        time.sleep(0.01)
