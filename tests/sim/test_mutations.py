"""Mutations prove the simulator can fail: each known-bad change to the engine, applied at run
time (monkeypatched in this process, inherited by the forked workers; no engine file is
touched), must make a seed of the CI batch violate the invariant expected."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from simulator import _engine_imports as eng
from simulator.batch import run_batch, show_failure
from tests.sim.test_ci_batch import ci_seeds


def _402_is_permanent(mp: pytest.MonkeyPatch) -> None:
    original = eng.start_module.classify

    def classify(error: Any, *, maybe_sent: bool) -> Any:
        if error.code == "ServiceQuotaExceededException":
            return eng.StartAction.REJECT
        return original(error, maybe_sent=maybe_sent)

    mp.setattr(eng.start_module, "classify", classify)


def _no_lookup_after_ambiguous(mp: pytest.MonkeyPatch) -> None:
    original = eng.start_module.classify

    def classify(error: Any, *, maybe_sent: bool) -> Any:
        action = original(error, maybe_sent=maybe_sent)
        if action is eng.StartAction.LOOKUP and isinstance(error, eng.TransientServiceError):
            return eng.StartAction.RETRY  # just send it again
        return action

    mp.setattr(eng.start_module, "classify", classify)


def _leases_not_honoured(mp: pytest.MonkeyPatch) -> None:
    async def acquire_lease(self: Any, store: Any, owner: str, ttl: float) -> bool:
        return True

    mp.setattr(eng.SQLiteJournal, "acquire_lease", acquire_lease)
    mp.setattr(eng.SQLiteJournal, "_check_lease", staticmethod(lambda conn, store, owner: None))
    schema = eng.schema_module.SCHEMA
    start = schema.index("CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active_per_store")
    end = schema.index(";", start) + 1
    mp.setattr(eng.schema_module, "SCHEMA", schema[:start] + schema[end:])


def _written_ahead_job_forgotten(mp: pytest.MonkeyPatch) -> None:
    """As if the clientToken were not written before the Start: after a crash the job whose
    Start was in flight is unknown (nothing to look up, nothing to send again)."""
    original = eng.SQLiteJournal.unfinished_jobs

    async def unfinished_jobs(self: Any, store: Any) -> Any:
        return [j for j in await original(self, store) if j.job_id is not None]

    mp.setattr(eng.SQLiteJournal, "unfinished_jobs", unfinished_jobs)


def _settled_before_it_ends(mp: pytest.MonkeyPatch) -> None:
    async def wait(self: Any, store: Any, job_id: str, *args: Any, **kwargs: Any) -> Any:
        await self._sleep(5.0)
        return await self._gateway.get_import(store, job_id)  # the first answer, final or not

    mp.setattr(eng.PollingWatcher, "wait", wait)


MUTATIONS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], tuple[str, ...]]] = {
    "a 402 treated as a permanent refusal": (_402_is_permanent, ("inv3",)),
    "no lookup after an ambiguous Start": (_no_lookup_after_ambiguous, ("inv3", "inv4")),
    "leases not honoured": (_leases_not_honoured, ("inv1", "inv5")),
    "a job settled before it ends": (_settled_before_it_ends, ("inv3", "inv1", "inv4")),
    "the token not written ahead": (_written_ahead_job_forgotten, ("inv2", "inv3", "inv4")),
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_the_ci_batch_catches_the_mutation(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mutate, expected = MUTATIONS[name]
    mutate(monkeypatch)
    seeds = ci_seeds()
    summary = run_batch(seeds, "ci", jobs=2, stop_at_first=True)
    assert summary.failures, f"{name}: no seed of {seeds.start}..{seeds.stop - 1} caught it"
    failure = summary.failures[0]
    caught = [v for v in failure.violations if v.startswith(expected)]
    assert caught, f"{name}: caught, but not by {expected}:\n{show_failure(failure)}"
    print(f"{name}: caught by seed {failure.seed} after {summary.seeds} seeds: {caught[0]}")


def test_a_mutation_is_undone_after_its_test() -> None:
    """The mutations patch the engine for one test only."""
    assert eng.start_module.classify.__module__ == eng.start_module.__name__
    assert "jobs_one_active_per_store" in eng.schema_module.SCHEMA
    assert dataclasses.is_dataclass(eng.ImporterSettings)
