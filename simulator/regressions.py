"""Seeds kept as regression cases: each once showed a bug (or a gated behaviour) the simulator
found. ``fixed`` cases must keep every invariant (tests/sim runs them on every commit); an
``open`` case names its ENGINE_CHANGES.md entry and the violation it shows until that change
lands; tests/sim checks that it still shows it, so the fix is noticed: then set ``fixed=True``.

Seeds are tied to the generator (``scenario.draw``): a change to the generator that alters
their histories must re-find them (``python -m simulator --profile full --seeds ...``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Regression:
    seed: int
    profile: str
    why: str
    fixed: bool
    engine_change: str | None = None
    shows: str | None = None
    """A fragment of the violation an open case shows until its engine change lands."""


REGRESSIONS: tuple[Regression, ...] = ()
