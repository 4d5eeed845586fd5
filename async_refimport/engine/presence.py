"""Which names a store holds, for one lane: only what the run needs, read at the service's pace.

A row whose name the store holds ends ALREADY_PRESENT and is never sent. Knowing that used to cost
one whole ListReferences per store before the first Start: 1,000 pages (200 s at 5 TPS) for a
store of 100,000 references, whatever the run. :class:`StoreNames` decides a pack's names with as
few paced calls as it can, never by a guess:

* The store's first page (the set-up check, :func:`~async_refimport.engine.setup.first_page`) is
  often the whole store: then every name is decided by it.
* Otherwise a name seen on a page read so far is present; the others are asked by name
  (ListReferences filtered on ``name``: one call each), unless the listing settles them first.
* The rest of the store is listed only while more rows are queued than this pack (a run of a few
  rows costs its few filtered calls and no listing). It runs in the background, while the store
  works, and yields to the name checks of the pack about to be sent, so that the first Start waits
  for the names of its own rows only. Before a pack's names are asked one by one, the listing may
  run ahead for as many pages as they are (and as rows follow): a store that small is read
  whole for less, and those pages serve the packs after this one.
* A listing older than ``existence_ttl`` is dropped and read again the same way.

Whether a reference was made by one of our jobs is asked (GetReferenceMetadata's
``creationJobId``, :meth:`StoreNames.made_by`), not inferred.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

import anyio
import anyio.abc

from async_refimport._errors import CredentialsError, ServiceError, TransientServiceError
from async_refimport._log import get_logger
from async_refimport._models import StoreRef
from async_refimport._settings import ImporterSettings
from async_refimport.gateway.base import (
    PAGE_SIZE,
    ExistingReference,
    OmicsGateway,
    ReferencePage,
)

__all__ = ["LIVE", "StoreNames", "held_references"]

log = get_logger(__name__)

LIVE = (None, "ACTIVE")
"""The reference statuses that hold a name (a deleting or failed reference does not)."""

# Filtered calls in flight at once: enough to keep the pacer's slots filled, no more.
_CHECKS_AT_ONCE = 10


class StoreNames:
    """The names one store holds, as far as this lane knows, and the calls that tell the rest.

    Args:
        gateway: The HealthOmics seam (every call paced and retried there).
        store: The store.
        settings: ``existence_ttl`` and ``busy_wait`` are used.
        clock: Monotonic seconds.
        sleep: Async sleep.
        pause: Told when a lookup is refused for credentials (the store waits, paused).
    """

    def __init__(
        self,
        gateway: OmicsGateway,
        store: StoreRef,
        settings: ImporterSettings,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        pause: Callable[[BaseException], None],
    ) -> None:
        self._gateway = gateway
        self._store = store
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._pause = pause
        self.md5: dict[str, str] = {}
        """The md5 the service reported for references seen in any call, by reference id."""
        self._present: dict[str, str] = {}
        self.seeded = False
        self.complete = False
        self._token: str | None = None
        self._listed_at = 0.0
        self._generation = 0
        self.pages = 0
        """Pages of the current listing read so far."""
        self._listing = False
        # The last page read failed (the listing retries it): a pack waits for it no longer.
        self._stalled = False
        # Pages of the last complete listing: a store known to be that small is listed again
        # rather than asked name by name when that costs fewer calls.
        self._last_pages: int | None = None
        self._checking = 0
        self._progress = anyio.Event()
        self._checks_done = anyio.Event()

    # -- what is known --------------------------------------------------------------------------

    def seed(self, page: ReferencePage, at: float) -> None:
        """Start from the store's first page (read at ``at``, the lane's clock).

        Args:
            page: The first page of the store's listing.
            at: When it was read.
        """
        self._restart(at)
        self._take(page)

    def add(self, name: str, reference_id: str) -> None:
        """Note a reference made by one of our jobs (or found by a lookup)."""
        self._present[name] = reference_id

    @property
    def listing(self) -> bool:
        """Whether the background listing is under way (it calls the service meanwhile)."""
        return self._listing

    @property
    def references(self) -> int:
        """Live names known so far (the store's size once the listing is complete)."""
        return len(self._present)

    def _restart(self, at: float) -> None:
        # A listing under way belongs to the generation it began in: it stops at its next page.
        self._present, self._token, self.complete, self.pages = {}, None, False, 0
        self._listed_at, self.seeded, self._listing, self._stalled = at, True, False, False
        self._generation += 1

    def _take(self, page: ReferencePage) -> None:
        self._present.update(self._live(page.references))
        self._token, self.pages = page.next_token, self.pages + 1
        self.complete, self._stalled = page.last, False
        if page.last:
            self._last_pages = self.pages
        self._moved()

    def _moved(self) -> None:
        """Wake whoever waits on the listing (a page read, failed, or the listing ended)."""
        self._progress.set()
        self._progress = anyio.Event()

    def _live(self, refs: Sequence[ExistingReference]) -> dict[str, str]:
        """Live references by name; their md5s are noted on the way."""
        self.md5.update((r.reference_id, r.md5) for r in refs if r.md5)
        return {r.name: r.reference_id for r in refs if r.status in LIVE}

    # -- a pack's names -------------------------------------------------------------------------

    async def present(
        self,
        names: Sequence[str],
        *,
        queued: Callable[[], Awaitable[int]],
        spawn: anyio.abc.TaskGroup | None,
    ) -> dict[str, str]:
        """Which of ``names`` (the pack about to be sent) the store holds, with reference ids.

        Args:
            names: The pack's names.
            queued: How many rows of the store are queued now (this pack's included).
            spawn: Where the background listing runs (the lane's task group; ``None``: none).

        Returns:
            The names held, by name.

        Raises:
            JournalError: ``queued`` failed.
        """
        if self._clock() - self._listed_at > self._settings.existence_ttl:
            # Listed too long ago: names may have come (or gone) since. Read it again, as needed.
            log.info("store.listing_expired", references=len(self._present))
            self._restart(self._clock())
        unknown = [] if self.complete else [n for n in names if n not in self._present]
        if unknown:
            following = max(0, await queued() - len(names))
            ahead = min(len(unknown), following)
            if self._last_pages is not None and self._last_pages <= len(unknown):
                ahead = len(unknown)  # listed whole before in fewer calls than these names
            if (following or ahead) and spawn is not None and not self._listing:
                self._listing = True
                spawn.start_soon(self._list_rest, self._generation)
            await self._list_ahead(ahead)
        if not self.complete:
            unknown = [n for n in unknown if n not in self._present]
            found = await self._checked(unknown)
            self._present.update(found)
        return {n: self._present[n] for n in names if n in self._present}

    async def _list_ahead(self, pages: int) -> None:
        """Let the background listing read up to ``pages`` more pages (or finish) first."""
        until = self.pages + pages
        while self._listing and not (self.complete or self._stalled) and self.pages < until:
            await self._progress.wait()

    async def _checked(self, names: list[str]) -> dict[str, str]:
        """``names`` asked by name, the background listing held back meanwhile."""
        if not names:
            return {}
        found: dict[str, str] = {}
        limit = anyio.CapacityLimiter(_CHECKS_AT_ONCE)
        self._checking += 1

        async def one(name: str) -> None:
            async with limit:
                found.update(await self.lookup([name], pages=1))

        try:
            log.info("store.names_checked", names=len(names), pages_listed=self.pages)
            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(one, name)
        finally:
            self._checking -= 1
            if not self._checking:
                self._checks_done.set()
                self._checks_done = anyio.Event()
        return found

    async def _list_rest(self, generation: int) -> None:
        """Read the rest of the store's listing, a page at a time, yielding to name checks."""
        try:
            while generation == self._generation and not self.complete:
                if self._checking:
                    await self._checks_done.wait()
                    continue
                try:
                    page = await self._gateway.list_references_page(self._store, self._token)
                except ServiceError as exc:
                    # Names are still decided by their own calls meanwhile; try the page again.
                    log.warning("store.list_failed", error=str(exc), pages=self.pages)
                    self._stalled = True
                    self._moved()
                    await self._sleep(self._settings.busy_wait)
                    continue
                if generation == self._generation:
                    self._take(page)
            if generation == self._generation:
                log.info("store.listed", references=len(self._present), pages=self.pages)
        finally:
            if generation == self._generation:
                self._listing = False
                self._moved()

    # -- lookups --------------------------------------------------------------------------------

    async def lookup(self, names: Collection[str], *, pages: int | None = None) -> dict[str, str]:
        """Which of ``names`` the store holds now, asked until the service answers.

        One filtered call per name when they are no more than the store's pages, else one
        listing of the whole store. A failed call (lapsed credentials, throttling past the
        retries) is not an answer: counting it as "not there" would send, or fail, a name the
        store holds. The store waits instead (paused on credentials, ``busy_wait`` between tries).

        Args:
            names: The names.
            pages: The store's size in pages, if known better than by the names seen so far.

        Returns:
            The names held, by name, with their reference ids.
        """
        pages = pages or len(self._present) // PAGE_SIZE + 1
        if not self.complete:
            # The store's size is not known yet (it holds at least what was read): a whole
            # listing could cost any number of pages, the names cost one call each.
            pages = max(pages, len(names))
        while True:
            try:
                if len(names) <= pages:
                    return await self._by_name(names)
                wanted = set(names)
                live = self._live(await self._gateway.list_references(self._store))
                return {n: ref for n, ref in live.items() if n in wanted}
            except ServiceError as exc:
                log.warning("store.name_check_failed", error=str(exc))
                if isinstance(exc, CredentialsError):
                    self._pause(exc)
                await self._sleep(self._settings.busy_wait)

    async def _by_name(self, names: Collection[str]) -> dict[str, str]:
        """One ListReferences filtered on each name (the service's filter is exact)."""
        found: dict[str, str] = {}
        for name in names:
            refs = await self._gateway.list_references(self._store, name=name)
            found.update((n, ref) for n, ref in self._live(refs).items() if n == name)
        return found

    async def made_by(self, reference_id: str, jobs: Collection[str]) -> bool:
        """Whether one of ``jobs`` made the reference: its ``creationJobId``, asked.

        Asked once (paced on GetReferenceMetadata's own budget); a failed ask is no answer, and
        then the reference counts as someone else's, as it did before anyone asked.

        Args:
            reference_id: The reference's id.
            jobs: Our job ids (the journal's for this store).

        Returns:
            Whether its creation job is one of them.
        """
        try:
            job = await self._gateway.reference_creation_job(self._store, reference_id)
        except ServiceError as exc:
            log.warning("store.creation_job_unknown", reference_id=reference_id, error=str(exc))
            return False
        return job is not None and job in jobs


async def held_references(
    gateway: OmicsGateway,
    store: StoreRef,
    page: ReferencePage,
    names: Collection[str],
    wait: float,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> list[ExistingReference]:
    """The store's references that a dry run needs to see: those among ``names``, at least.

    The store is listed from its first page on for at most as many pages as there are names (a
    store that small costs no more read whole); a bigger one has the names not seen yet asked by
    name, one call each. Pages and calls failing transiently are tried again ``wait`` apart.

    Args:
        gateway: The HealthOmics seam.
        store: The store.
        page: Its first page (the set-up check's).
        names: The names to look for.
        wait: Seconds between tries of a call whose gateway retries ran out.
        sleep: Async sleep (injectable).

    Returns:
        References of the store, every one of ``names`` it holds among them.

    Raises:
        PermanentServiceError: a call was refused for good.
    """
    refs, pages = list(page.references), 1
    while not page.last and pages <= len(names):
        try:
            page = await gateway.list_references_page(store, page.next_token)
        except TransientServiceError as exc:
            log.warning("store.list_failed", error=str(exc), pages=pages)
            await sleep(wait)
            continue
        refs.extend(page.references)
        pages += 1
    seen = {r.name for r in refs}
    todo = [] if page.last else [n for n in dict.fromkeys(names) if n not in seen]
    while todo:
        try:
            refs.extend(await gateway.list_references(store, name=todo[-1]))
        except TransientServiceError as exc:
            log.warning("store.name_check_failed", error=str(exc))
            await sleep(wait)
            continue
        todo.pop()
    return refs
