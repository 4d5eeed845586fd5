"""Helpers of the journal tests (their fixtures are in tests/journal/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

from async_refimport import ImportRequest, Journal, StoreRef
from tests.helpers.common import ROLE_ARN, STORE_ID

STORE = StoreRef(STORE_ID, "us-east-1")


JournalFactory = Callable[..., Journal]


"""``factory(clock=None)``: a new, unopened journal on the test's shared storage."""


def reqs(
    n: int, prefix: str = "ref", store: StoreRef = STORE
) -> list[tuple[StoreRef, ImportRequest]]:
    return [
        (
            store,
            ImportRequest(store.store_id, ROLE_ARN, f"s3://genomes/{prefix}{i}.fa", f"{prefix}{i}"),
        )
        for i in range(n)
    ]
