"""Settings for what AWS does not document: each unknown is a choice a test can flip.

The real service's answer is unknown in each of these cases, so the emulator does not pick one
silently: it exposes each as a setting, and the engine's tests run under every alternative so
that no guess is load-bearing. The defaults are the emulator's historical choices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._checks import check_number

__all__ = ["BUSY_CODES", "CANCEL_STATUSES", "PROGRESS_MODES", "Unknowns"]

#: How a second StartReferenceImportJob on a busy store may be refused, with the wire message.
BUSY_CODES: Mapping[str, str] = {
    "ServiceQuotaExceededException": (
        "Reference store {store} already has an active import job ({job})"
    ),
    "ConflictException": "An import job ({job}) is already in progress for reference store {store}",
    "ValidationException": (
        "Cannot start an import job while import job {job} is in progress in reference store {store}"
    ),
}

#: Job statuses of a cancellation: AWS's EventBridge page lists no event for them.
CANCEL_STATUSES = frozenset({"CANCELLING", "CANCELLED"})
#: Longest ``busy_message`` accepted (the wire message is whatever the setting says).
BUSY_MESSAGE_MAX = 1000

#: How per-source statuses evolve inside a running job.
PROGRESS_MODES = ("sequential", "together")


@dataclass(frozen=True)
class Unknowns:
    """The emulator's answers where the service's behaviour is not documented.

    Attributes:
        busy_code: error code refusing a Start while the store has an active job:
            ``ServiceQuotaExceededException`` (402), ``ConflictException`` (409) or
            ``ValidationException`` (400, with a message about a job in progress).
        busy_message: the message of that refusal, in any words (``{store}`` and ``{job}`` are
            replaced by the store's and the active job's ids); ``None``: the code's own wording
            (:data:`BUSY_CODES`). AWS documents none, so code under test must not read it.
        get_lag: emulated seconds (scaled by ``time_scale``) after a Start during which
            GetReferenceImportJob answers 404 ResourceNotFoundException for the new job
            (read-after-write lag).
        list_lag: emulated seconds (scaled) after their creation during which a job is missing from
            ListReferenceImportJobs and a reference from ListReferences (a lagging index).
        progress: ``"sequential"``: sources go NOT_STARTED → IN_PROGRESS → FINISHED one after
            another; ``"together"``: every source is IN_PROGRESS until the job's end, when all
            finish (and their references appear) at once.
        p_cancel: probability that a job is cancelled from outside (as from the console) half-way
            through its sources.
        seed: seed of the ``p_cancel`` draws.
        cancel_events: send EventBridge events for CANCELLING and CANCELLED. Off by default:
            AWS's EventBridge page lists reference import events for SUBMITTED, IN_PROGRESS,
            COMPLETED, FAILED and COMPLETED_WITH_FAILURES only, so a cancelled job is assumed to
            send no final event.
        taken_message: the failure message of a source whose name the store already holds, in any
            words (``{name}`` and ``{reference}`` are replaced by the name and the holding
            reference's id); ``None``: the emulator's own wording. AWS documents none.
    """

    busy_code: str = "ServiceQuotaExceededException"
    get_lag: float = 0.0
    list_lag: float = 0.0
    progress: str = "sequential"
    p_cancel: float = 0.0
    seed: int = 0
    busy_message: str | None = None
    cancel_events: bool = False
    taken_message: str | None = None

    def __post_init__(self) -> None:
        if self.busy_code not in BUSY_CODES:
            raise ValueError(
                f"busy_code must be one of {sorted(BUSY_CODES)}, got {self.busy_code!r}"
            )
        for name in ("busy_message", "taken_message"):
            words = getattr(self, name)
            if words is not None and (
                not isinstance(words, str) or not words.strip() or len(words) > BUSY_MESSAGE_MAX
            ):
                raise ValueError(
                    f"{name} must be null or a non-blank string of at most {BUSY_MESSAGE_MAX} "
                    f"characters, got {words!r}"
                )
        if not isinstance(self.cancel_events, bool):
            raise ValueError(f"cancel_events must be true or false, got {self.cancel_events!r}")
        for name in ("get_lag", "list_lag"):
            check_number(name, getattr(self, name), low=0.0)
        if self.progress not in PROGRESS_MODES:
            raise ValueError(
                f"progress must be one of {list(PROGRESS_MODES)}, got {self.progress!r}"
            )
        check_number("p_cancel", self.p_cancel, low=0.0, high=1.0)
        check_number("seed", self.seed, integer=True)

    def busy_refusal(self, *, store: str, job: str) -> str:
        """The message refusing a Start while ``job`` is active in ``store``."""
        if self.busy_message is None:
            return BUSY_CODES[self.busy_code].format(store=store, job=job)
        # Plain replacement, not str.format: a message may hold braces of its own.
        return self.busy_message.replace("{store}", store).replace("{job}", job)

    def name_taken(self, *, name: str, reference: str) -> str:
        """The failure message of a source whose ``name`` is held by ``reference``."""
        if self.taken_message is None:
            return f"Reference name {name!r} already exists in the store (reference {reference})"
        return self.taken_message.replace("{name}", name).replace("{reference}", reference)

    def replace(self, **changes: Any) -> Unknowns:
        """Return a copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values (as ``/_emulator/config`` accepts them under ``unknowns``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: Unknowns | None = None) -> Unknowns:
        """Build from JSON values; keys left out keep ``base``'s (or the default) values."""
        if not isinstance(data, Mapping):
            raise ValueError("unknowns must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown settings in unknowns: {sorted(unknown)}")
        return dataclasses.replace(base or cls(), **data)
