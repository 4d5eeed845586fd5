"""Seeds kept as regression cases: each once showed a bug (or a gated behaviour) the simulator
found, or reaches a rare path worth keeping whatever window the CI batch runs.

``fixed`` cases must keep every invariant (``tests/sim`` runs them on every commit). An open case
names its ENGINE_CHANGES.md entry and a fragment of the violation it shows until that change
lands; ``tests/sim`` checks that it still shows it, so that the fix is noticed: then set
``fixed=True`` (and delete the behaviour's entry from ``scenario.GATED``).

Seeds are tied to the generator (``scenario.draw``): a change to the generator that alters their
histories must re-find them (``python -m simulator --profile full --seeds ...``).
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


REGRESSIONS: tuple[Regression, ...] = (
    # Open: they show their bug until the engine change lands (ENGINE_CHANGES.md).
    Regression(
        769,
        "full",
        "ambiguous Start sent again before the List shows the job, token forgotten: duplicate",
        fixed=False,
        engine_change="E3",
        shows="was imported by our job",
    ),
    Regression(
        1355,
        "full",
        "credentials lapse while a taken name is looked up: the row FAILED 'already exists'",
        fixed=False,
        engine_change="E5",
        shows="FAILED for a reason not its own: A reference named ref0_03 already exists",
    ),
    Regression(
        8632,
        "full",
        "a lane takes its lease back after losing it unseen (overlapping pauses): stuck for ever",
        fixed=False,
        engine_change="E4",
        shows="inv2 liveness",
    ),
    Regression(
        2,
        "full",
        "a full account quota (402) while the store is idle for minutes: rows FAILED",
        fixed=False,
        engine_change="issue 19",
        shows="ServiceQuotaExceededException: You have reached the maximum number",
    ),
    Regression(
        0,
        "full",
        "a busy refusal in words the engine's regex does not know: rows FAILED at once",
        fixed=False,
        engine_change="issue 19",
        shows="ValidationException: The reference store is currently importing",
    ),
    # Fixed, or rare paths kept whatever the CI window: they keep every invariant.
    Regression(535, "ci", "where E3 was first seen (gated in ci since)", fixed=True),
    Regression(1355, "ci", "where E5 was found (gated in ci)", fixed=True),
    Regression(20, "ci", "token forgotten, then the job found by a lookup", fixed=True),
    Regression(30, "ci", "token forgotten, then the job found by a lookup", fixed=True),
    Regression(31, "ci", "a job lost by the service, its rows requeued", fixed=True),
    Regression(2, "ci", "a paused process's write fenced off (its lease is another's)", fixed=True),
    Regression(3, "ci", "a quota blip waited out; a job cancelled from outside", fixed=True),
)
