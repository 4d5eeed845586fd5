"""A compact set of row ids: which of a run's rows are still pending.

A run of 200,000 rows waits on each of them; a Python ``set`` of their ids takes about 60 bytes a
row (an int object and a hash slot). :class:`RowIdSet` knows its universe (the run's ids, sorted,
8 bytes each) and marks members in one byte each: 9 bytes a row, membership by binary search.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import pairwise


class RowIdSet:
    """A set of row ids drawn from a fixed universe (a run's rows); starts empty."""

    __slots__ = ("_ids", "_marks", "_size")

    def __init__(self, universe: Iterable[int]) -> None:
        ids = array("q", universe)
        if not all(a < b for a, b in pairwise(ids)):
            # Out of order or repeated (a re-run's ids are its first run's): sorted through a list
            # for a moment. A fresh run's ids ascend, and are copied as they are.
            ids = array("q", sorted(set(ids)))
        self._ids = ids
        self._marks = bytearray(len(self._ids))
        self._size = 0

    def _index(self, row_id: int) -> int | None:
        i = bisect_left(self._ids, row_id)
        return i if i < len(self._ids) and self._ids[i] == row_id else None

    def add(self, row_id: int) -> None:
        """Add ``row_id``; it must belong to the universe."""
        i = self._index(row_id)
        if i is None:
            raise KeyError(row_id)
        if not self._marks[i]:
            self._marks[i] = 1
            self._size += 1

    def update(self, row_ids: Iterable[int]) -> None:
        for row_id in row_ids:
            self.add(row_id)

    def discard(self, row_id: int) -> None:
        """Remove ``row_id`` if present (an id outside the universe is ignored)."""
        i = self._index(row_id)
        if i is not None and self._marks[i]:
            self._marks[i] = 0
            self._size -= 1

    def __contains__(self, row_id: object) -> bool:
        if not isinstance(row_id, int):
            return False
        i = self._index(row_id)
        return i is not None and bool(self._marks[i])

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[int]:
        """The members, in ascending order."""
        marks = self._marks
        for i, row_id in enumerate(self._ids):
            if marks[i]:
                yield row_id
