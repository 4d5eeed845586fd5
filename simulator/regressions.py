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
    # Bugs the simulator found (ENGINE_CHANGES.md), on the profile "full" (its draws do not
    # depend on what is gated). Open ones show their bug until the change lands.
    Regression(
        22418496,
        "full",
        "ambiguous Starts again and again on a store: lookups at the retry backoff's pace for "
        "minutes (a hot loop of ListReferenceImportJobs and Gets)",
        fixed=True,
        engine_change="E9",
        shows="inv6 hot loop",
    ),
    Regression(
        2067,
        "full",
        "an ambiguous Start sent again before the List shows the job, the token forgotten: a "
        "duplicate job, rows ALREADY_PRESENT with our own reference",
        fixed=True,
        engine_change="E3",
    ),
    Regression(2520, "full", "E3 again (another history)", fixed=True, engine_change="E3"),
    Regression(769, "full", "where E3 was first seen", fixed=True, engine_change="E3"),
    Regression(
        8632,
        "full",
        "a lane takes its lease back after losing it unseen (overlapping pauses): stuck for ever",
        fixed=True,
        engine_change="E4",
    ),
    Regression(
        1355,
        "full",
        "credentials lapse while a taken name is looked up: the row FAILED 'already exists'",
        fixed=True,
        engine_change="E5",
    ),
    Regression(
        2,
        "full",
        "a full account quota (402) while the store is idle for minutes: rows FAILED",
        fixed=True,
        engine_change="issue 19",
    ),
    Regression(
        0,
        "full",
        "a busy refusal in words the engine's regex did not know: rows FAILED at once",
        fixed=True,
        engine_change="issue 19",
    ),
    # Rare paths kept whatever window the CI batch runs.
    Regression(10, "full", "a job lost by the service, its rows requeued", fixed=True),
    Regression(
        19, "full", "a paused process's write fenced off (its lease is another's)", fixed=True
    ),
    Regression(
        4, "full", "token forgotten, the job found by a lookup; cancelled outside", fixed=True
    ),
    Regression(535, "ci", "where E3 was first seen (gated in ci)", fixed=True),
)
