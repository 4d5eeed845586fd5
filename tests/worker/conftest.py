"""Fixtures for worker tests: the worker runs as a subprocess against the emulator over HTTP."""

from __future__ import annotations

import pytest

from async_refimport.emulator import EmulatorThread
from tests.helpers.integration import create_store

# A fixture defined with the worker helpers (other suites use it too), registered here for these.
from tests.helpers.worker import start_worker as start_worker


@pytest.fixture
def store_id(emulator: EmulatorThread) -> str:
    return create_store(emulator, emulator.region)
