"""Validation of the emulator's settings: a bad value is refused with a reason, never stored.

A setting stored unchecked (``time_scale: -1``, ``tps: "x"``) would make every later call fail
with a 500; checking at the door turns it into one clear 400 (HTTP) or ``ValueError`` (Python).
"""

from __future__ import annotations

import math


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    integer: bool = False,
) -> float:
    """Return ``value`` as a number, or raise ``ValueError`` naming ``name`` and the reason.

    Args:
        name: The setting's name, for the message.
        value: What was given.
        low: Smallest allowed value (inclusive).
        high: Largest allowed value (inclusive).
        above: The value must be strictly greater than this.
        integer: Only integers are allowed.
    """
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if above is not None and value <= above:
        raise ValueError(f"{name} must be > {above}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value
