"""Waiting for rows to become final: :class:`RowWaiter`, behind ``Importer.wait``.

A wait listens to the Importer's events (a row settles in the journal before its event is sent)
and re-reads the journal only now and then: rows may settle in another process sharing it.
Row ids are held in a :class:`~async_refimport._rowset.RowIdSet` and read a page at a time, so a
wait on 10^5 rows stays small.
"""

from __future__ import annotations

from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from async_refimport._errors import SetupError
from async_refimport._events import Event, RowSettled
from async_refimport._models import RowResult
from async_refimport._rowset import RowIdSet
from async_refimport.journal.base import Journal

# Seconds without a locally settled row before a wait re-reads the journal: rows may settle in
# another process sharing it. Long enough that a 100k-row wait costs little.
_QUIET_RECHECK = 10.0
_QUIET_RECHECK_MAX = 30.0


def buffered_events(events: MemoryObjectReceiveStream[Event]) -> Iterator[Event]:
    """The events already buffered in a subscription (``Importer.subscribe``), taken without
    waiting.

    Args:
        events: The subscription.

    Yields:
        Each event buffered now, oldest first.
    """
    while True:
        try:
            yield events.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return


def parked_error(row: RowResult, setup_failures: Mapping[str, SetupError]) -> SetupError | None:
    """The set-up error of the store the row waits on, if that store is parked.

    Args:
        row: The row.
        setup_failures: The set-up errors of parked stores, by store key.

    Returns:
        That store's error, or None.
    """
    for error in setup_failures.values():
        if error.store_id == row.store_id and error.region == row.region:
            return error
    return None


class RowWaiter:
    """One wait for rows of an Importer to become final.

    Args:
        journal: The Importer's journal.
        subscribe: ``Importer.subscribe``.
        results: ``Importer.iter_results`` (the rows' results, a page at a time, in order).
        stopping: Whether the Importer is stopping (the wait then ends).
        setup_failures: The set-up errors of stores that cannot be used, by store key (live).
        parked_version: Counts stores parked so far (a parked store's rows never settle).
        parks_on_setup: Whether a store that cannot be used is parked (its rows wait).
        page: Rows read back from the journal at a time.
    """

    def __init__(
        self,
        journal: Journal,
        subscribe: Callable[[], AbstractAsyncContextManager[MemoryObjectReceiveStream[Event]]],
        results: Callable[[Sequence[int]], AsyncIterator[list[RowResult]]],
        *,
        stopping: Callable[[], bool],
        setup_failures: Mapping[str, SetupError],
        parked_version: Callable[[], int],
        parks_on_setup: bool,
        page: int,
    ) -> None:
        self._journal = journal
        self._subscribe = subscribe
        self._results = results
        self._stopping = stopping
        self._setup_failures = setup_failures
        self._parked_version = parked_version
        self._parks = parks_on_setup
        self._page = page

    async def until_final(self, row_ids: Sequence[int]) -> None:
        """Return once every row is final, or the Importer stops.

        Args:
            row_ids: The rows.

        Raises:
            SetupError: a row waits on a parked store (raised once every other row is final).
        """
        async with self._subscribe() as events:
            pending = await self._first_read(row_ids, events)
            await self._listen(pending, events)
        if self._parks and self._setup_failures:
            async for page in self._results(row_ids):
                for result in page:
                    error = parked_error(result, self._setup_failures)
                    if not result.state.is_final and error:
                        raise error

    async def _first_read(
        self, row_ids: Sequence[int], events: MemoryObjectReceiveStream[Event]
    ) -> RowIdSet:
        """The rows not final yet, read a page at a time."""
        # Read a page at a time, taking in the rows settled meanwhile as it goes: a run's first
        # read of 10^5 rows takes seconds, and its events must not pile up (a row settles in the
        # journal before its event is sent, so one settled before its page is read is read as
        # final).
        pending = RowIdSet(row_ids)  # 9 bytes a row, not a set's 60
        async for page in self._results(row_ids):
            if self._stopping():
                break
            pending.update(r.row_id for r in page if not r.state.is_final)
            for event in buffered_events(events):
                if isinstance(event, RowSettled):
                    pending.discard(event.result.row_id)
        return pending

    async def _listen(self, pending: RowIdSet, events: MemoryObjectReceiveStream[Event]) -> None:
        """Take settled rows out of ``pending`` as their events arrive, re-reading when quiet."""
        quiet, recheck = 0.0, _QUIET_RECHECK
        parked = 0
        while pending and not self._stopping():
            if self._parks and self._parked_version() != parked:
                # A store was parked: its rows will not settle in this run.
                parked = self._parked_version()
                await self._drop_final(pending, drop_parked=True)
                continue
            heard = False
            with anyio.move_on_after(1.0):
                async for event in events:
                    if isinstance(event, RowSettled):
                        heard = True
                        pending.discard(event.result.row_id)
                        if not pending:
                            break
                    elif self._stopping():
                        break
            if heard:
                quiet, recheck = 0.0, _QUIET_RECHECK
            else:
                quiet += 1.0
            if pending and quiet >= recheck:
                # Quiet here: the rows may be settling in another process sharing the journal.
                # Each quiet re-read waits twice as long as the last: a job of several minutes
                # costs a few reads of the pending rows, not one every 10 seconds (each read is
                # billed per row on a DynamoDB journal).
                quiet, recheck = 0.0, min(recheck * 2, _QUIET_RECHECK_MAX)
                await self._drop_final(pending)

    async def _drop_final(self, pending: RowIdSet, *, drop_parked: bool = False) -> None:
        """Take out of ``pending`` the rows final now (and, with ``drop_parked``, those of parked
        stores), and any the journal no longer has; read a page at a time."""
        ids = array("q", pending)
        for start in range(0, len(ids), self._page):
            chunk = ids[start : start + self._page]
            still = {
                r.row_id
                for r in await self._journal.results(chunk)
                if not r.state.is_final
                and not (drop_parked and parked_error(r, self._setup_failures))
            }
            for row_id in chunk:
                if row_id not in still:
                    pending.discard(row_id)
