"""Helpers of the common tests (their fixtures are in tests/conftest.py)."""

from __future__ import annotations

import pytest

STORE_ID = "1234567890"


ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"


def expected_length(item: pytest.Item) -> tuple[int, float]:
    """Sort key: tests marked slow first, longest declared timeout first among them."""
    timeout = item.get_closest_marker("timeout")
    declared = float(timeout.args[0]) if timeout is not None and timeout.args else 0.0
    return (0 if item.get_closest_marker("slow") else 1, -declared)
