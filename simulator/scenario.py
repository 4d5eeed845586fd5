"""What one seed draws: the service's behaviour, the faults, the fleet, the crash points.

Everything random in a history comes from ``random.Random(seed)`` here (and from the engine's own
jitter, whose global ``random`` the world seeds with the same seed), so one seed and one commit
give one history.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: Behaviours the engine does not survive yet, each with the engine change it waits for (see
#: ENGINE_CHANGES.md). The default profile ("ci") leaves them out; the profile "full" draws them.
#: When a change lands, delete its entry here (one edit) and every profile draws the behaviour.
GATED: dict[str, str] = {}
#: Once gated, now drawn by every profile (their engine changes landed): "quota_idle" and
#: "odd_busy_wording" (issue 19, commit e11b56f), "overlapping_pauses" (E4) and
#: "lapse_during_name_check" (E5, both commit abdabdd), "forgotten_token_race" (E3, commit
#: 77d4df5), "ambiguous_start_storm" (E9: sparse lookups while the List settles). A new one reads, e.g.:
#:     "forgotten_token_race": "E3",  # what the engine does wrong, what it waits for


def allows(behaviour: str, profile: str) -> bool:
    """Whether ``profile`` draws ``behaviour`` (every profile draws what is not gated)."""
    return profile == "full" or behaviour not in GATED


PROFILES = ("ci", "full")

#: (code, HTTP status, message) of a refusal of a Start while the store runs a job.
BUSY_REFUSALS: tuple[tuple[str, int, str], ...] = (
    (
        "ServiceQuotaExceededException",
        402,
        "Maximum number of concurrent import jobs reached for this reference store",
    ),
    ("ServiceQuotaExceededException", 402, "Service quota exceeded"),
    ("ConflictException", 409, "Another import job is in progress for this reference store"),
    ("ConflictException", 409, "The resource is busy; retry later"),
    ("ValidationException", 400, "An import job is already running in this reference store"),
    ("ValidationException", 400, "The reference store has an active import job"),
)
#: Busy refusals in words an engine matching messages by regex would not know ("odd_busy_wording").
ODD_BUSY_REFUSALS: tuple[tuple[str, int, str], ...] = (
    (
        "ValidationException",
        400,
        "Only one reference import job may run at a time in a reference store",
    ),
    ("ValidationException", 400, "The reference store is currently importing; try again later"),
)
QUOTA_REFUSAL = (
    "ServiceQuotaExceededException",
    402,
    "You have reached the maximum number of concurrent import jobs for this account",
)
START_FAULTS = ("408", "500", "drop")


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class StorePlan:
    store_id: str
    names: tuple[str, ...]
    bad: frozenset[str]
    preexisting: frozenset[str]
    taken: tuple[tuple[float, str], ...]
    """(time, name): another client imports one of our names."""
    foreign_jobs: tuple[tuple[float, float], ...]
    """(time, duration): another client runs a job on the store."""


@dataclass(frozen=True, slots=True)
class ProcessPlan:
    index: int
    start: float
    skew: float
    submits: tuple[tuple[int, str], ...]
    """(store index, name) rows this process submits when it starts (and again on restart)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int
    profile: str
    stores: tuple[StorePlan, ...]
    processes: tuple[ProcessPlan, ...]
    max_sources_per_job: int
    durations: dict[str, float]
    progress: str
    startup: float
    busy_refusal: tuple[str, int, str]
    quota_windows: tuple[Window, ...]
    get_lag: float
    list_lag: float
    ref_lag: float
    token_ttl: float
    p_cancel: float
    p_lose: float
    tps: float
    p_start_before: float
    p_start_after: float
    p_read_fault: float
    cred_windows: tuple[Window, ...]
    crashes: tuple[tuple[float, int, float], ...]
    """(time, process index, restart delay)."""
    pauses: tuple[tuple[float, int, float], ...]
    """(time, process index, duration): SIGSTOP, then SIGCONT."""
    write_pauses: tuple[tuple[float, int, float], ...]
    """(time, process, duration): SIGSTOP on the process's first journal write after time."""
    start_crashes: tuple[tuple[float, int, str, float], ...]
    """(time, process, "before"|"after", restart delay): kill -9 on its first Start after
    time, before the request reaches the service or after the service acted on it."""
    latency: tuple[float, float]
    calm_at: float
    """No fault, crash or pause after this (liveness is measured from here)."""
    behaviours: tuple[str, ...] = field(default=())

    @property
    def rows(self) -> int:
        return sum(len(s.names) for s in self.stores)

    def work(self) -> float:
        """Seconds the service needs to import every row, one store after another (a bound)."""
        return sum(self.durations.values()) + self.startup * self.rows


def _windows(rng: random.Random, n: int, horizon: float, lo: float, hi: float) -> list[Window]:
    out = []
    for _ in range(n):
        start = rng.uniform(0, max(1.0, horizon - hi))
        out.append(Window(start, start + rng.uniform(lo, hi)))
    return sorted(out, key=lambda w: w.start)


def _blips(rng: random.Random, n: int, horizon: float) -> list[Window]:
    """Quota refusals of 5..45 s, at least 90 s apart: each shorter than consistency_grace."""
    out, at = [], rng.uniform(0, horizon / 3)
    for _ in range(n):
        length = rng.uniform(5, 45)
        out.append(Window(at, at + length))
        at += length + rng.uniform(90, horizon / 2)
    return out


def draw(seed: int, profile: str = "ci") -> Scenario:
    """The scenario of ``seed`` under ``profile`` ("ci": gated behaviours left out; "full")."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}")
    rng = random.Random(seed)
    startup = rng.uniform(1, 10)
    behaviours: list[str] = []
    calm_at = rng.choice([600.0, 1200.0, 2400.0, 3600.0])
    n_stores = 1 if rng.random() < 0.7 else 2
    stores = []
    durations: dict[str, float] = {}
    fast = rng.random() < 0.4  # short genomes: jobs of seconds, races with lags and tokens
    for s in range(n_stores):
        n = rng.randint(3, 24)
        names = tuple(f"ref{s}_{i:02d}" for i in range(n))
        for name in names:
            durations[name] = rng.uniform(2, 20) if fast else rng.uniform(20, 240)
        bad = frozenset(rng.sample(names, rng.randint(0, min(2, n - 1))))
        pre = frozenset(rng.sample(names, rng.randint(0, min(2, n - 1))))
        taken = tuple(
            sorted((rng.uniform(0, calm_at), rng.choice(names)) for _ in range(rng.randint(0, 2)))
        )
        foreign = tuple(
            sorted(
                (rng.uniform(0, calm_at), rng.uniform(30, 400)) for _ in range(rng.randint(0, 2))
            )
        )
        stores.append(StorePlan(f"{1000000000 + 111 * (s + 1)}", names, bad, pre, taken, foreign))
        if taken:
            behaviours.append("names_taken")
        if foreign:
            behaviours.append("foreign_jobs")
    n_proc = rng.choice([1, 1, 2, 2, 3, 4])
    all_rows = [(si, name) for si, st in enumerate(stores) for name in st.names]
    processes = []
    how = rng.choice(["first", "all", "split"])
    for p in range(n_proc):
        if how == "first":
            submits = all_rows if p == 0 else []
        elif how == "all":
            submits = all_rows
        else:
            submits = all_rows[p::n_proc]
        processes.append(
            ProcessPlan(
                p,
                0.0 if p == 0 else rng.uniform(0, 60),
                rng.uniform(-5, 5) if n_proc > 1 else 0.0,
                tuple(submits),
            )
        )
    if rng.random() < 0.6:
        busy = rng.choice(BUSY_REFUSALS)
    elif allows("odd_busy_wording", profile):
        busy = rng.choice(ODD_BUSY_REFUSALS)
        behaviours.append("odd_busy_wording")
    else:
        busy = BUSY_REFUSALS[0]
    quota = []
    if rng.random() < 0.5:
        # Short quota blips (under consistency_grace) are ordinary; a full account quota for
        # minutes while the store runs nothing is gated until the issue-19 fix.
        if allows("quota_idle", profile) and rng.random() < 0.6:
            quota = _windows(rng, rng.randint(1, 2), calm_at, 120, 900)
            behaviours.append("quota_idle")
        else:
            quota = _blips(rng, rng.randint(1, 4), calm_at)
            behaviours.append("quota_blip")
    lags = rng.random() < 0.7
    get_lag = rng.uniform(0, 40) if lags else 0.0
    list_lag = rng.uniform(0, 40) if lags else 0.0
    ref_lag = rng.uniform(0, 40) if lags else 0.0
    token_ttl = rng.choice([0.5, 0.5, 1.0, 2.0, 5.0, 30.0, 600.0, 8 * 3600.0, math.inf])
    shortest = startup + min(durations.values())
    if token_ttl < 60 and list_lag > shortest - 5:
        if allows("forgotten_token_race", profile):
            behaviours.append("forgotten_token_race")
        else:
            # Gated: the job list may lag, but never longer than a job lasts (a lookup lists
            # ended jobs too, so a job listed before a Start is sent again is found).
            list_lag = max(0.0, shortest - 5)
    p_cancel = rng.choice([0.0, 0.0, 0.1, 0.3])
    p_lose = rng.choice([0.0, 0.0, 0.0, 0.1])
    tps = rng.choice([5.0, 5.0, 4.0, 3.0, 2.0])
    faulty = rng.random() < 0.7
    p_before = rng.choice([0.05, 0.15, 0.3]) if faulty else 0.0
    p_after = rng.choice([0.1, 0.2, 0.4]) if faulty else 0.0
    p_read = rng.choice([0.0, 0.02, 0.1]) if faulty else 0.0
    creds = _windows(rng, rng.choice([0, 0, 1, 2]), calm_at, 30, 600)
    crashes = []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
        crashes.append((rng.uniform(1, calm_at), rng.randrange(n_proc), rng.uniform(0, 90)))
    crashes.sort()
    pauses = []
    if n_proc > 1:
        for _ in range(rng.choice([0, 0, 1, 2])):
            pauses.append((rng.uniform(1, calm_at), rng.randrange(n_proc), rng.uniform(20, 150)))
    pauses.sort()
    write_pauses = []
    if n_proc > 1:
        for _ in range(rng.choice([0, 0, 1, 2])):
            write_pauses.append(
                (rng.uniform(1, calm_at), rng.randrange(n_proc), rng.uniform(35, 150))
            )
    write_pauses.sort()
    start_crashes = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        start_crashes.append(
            (
                rng.uniform(0, calm_at),
                rng.randrange(n_proc),
                rng.choice(["before", "after"]),
                rng.uniform(0, 90),
            )
        )
    start_crashes.sort()
    if lags:
        behaviours.append("lag")
    if token_ttl < 60:
        behaviours.append("short_token_memory")
    if p_cancel:
        behaviours.append("external_cancel")
    if p_lose:
        behaviours.append("lost_jobs")
    if tps < 5:
        behaviours.append("throttled")
    if faulty:
        behaviours.append("ambiguous_faults")
    if creds:
        behaviours.append("credentials_lapse")
    if crashes or start_crashes:
        behaviours.append("crashes")
    if pauses or write_pauses:
        behaviours.append("pauses")
    if n_proc > 1:
        behaviours.append(f"fleet_{n_proc}")
    return Scenario(
        seed=seed,
        profile=profile,
        stores=tuple(stores),
        processes=tuple(processes),
        max_sources_per_job=rng.choice([1, 2, 3, 5, 8, 20, 100]),
        durations=durations,
        progress=rng.choice(["sequential", "together"]),
        startup=startup,
        busy_refusal=busy,
        quota_windows=tuple(quota),
        get_lag=get_lag,
        list_lag=list_lag,
        ref_lag=ref_lag,
        token_ttl=token_ttl,
        p_cancel=p_cancel,
        p_lose=p_lose,
        tps=tps,
        p_start_before=p_before,
        p_start_after=p_after,
        p_read_fault=p_read,
        cred_windows=tuple(creds),
        crashes=tuple(crashes),
        pauses=tuple(pauses),
        write_pauses=tuple(write_pauses),
        start_crashes=tuple(start_crashes),
        latency=(0.01, rng.choice([0.05, 0.2, 1.0])),
        calm_at=calm_at,
        behaviours=tuple(behaviours),
    )
