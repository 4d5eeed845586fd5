"""The journal in one DynamoDB table, shared by every worker of a fleet: :class:`DynamoJournal`.

It implements every role of :mod:`async_refimport.journal.base` (and the optional outbox) with the
same invariants as the SQLite journal, enforced by DynamoDB itself rather than by one file's locks:

* **Write ahead** and **one active job per store**: see :mod:`.jobs`.
* **Leases with fencing.** The store's item holds the lease (owner, expiry). Every write that
  changes a store's rows or jobs is a transaction that includes a condition on that lease, so a
  worker that lost it (a paused process, a partition) has every such write refused
  (:class:`~async_refimport.LeaseLostError`).
* **Compaction by TTL.** Final rows, done jobs and sent outbox entries carry a ``ttl`` attribute
  (settlement time plus the retention): DynamoDB's TTL compacts the table, so
  :meth:`DynamoJournal.compact` has nothing to do.

The table's layout is in :mod:`.items`, its DDL in :mod:`.schema`, the roles in :mod:`.queue`,
:mod:`.jobs` and :mod:`.reading`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import botocore.exceptions

from async_refimport._errors import JournalError
from async_refimport._models import RowState, StoreRef, is_region_name, quoted
from async_refimport.aws.clients import ClientPool
from async_refimport.journal._common import enum_of, holder_is_gone
from async_refimport.journal.base import OutboxEntry
from async_refimport.journal.dynamo.items import (
    BATCH_GET,
    TTL_ATTRIBUTE,
    get_n,
    get_s,
    item_key,
    item_name,
    nv,
    ordered,
    parse_url,
    row_ids_of,
    row_keys,
    store_item_key,
    sv,
)
from async_refimport.journal.dynamo.jobs import JobLogRole
from async_refimport.journal.dynamo.queue import RowQueueRole


class DynamoJournal(RowQueueRole, JobLogRole):
    """The journal in a DynamoDB table (see :mod:`async_refimport.journal.dynamo.items` for the
    layout). Every method keeps the guarantee its role Protocol states
    (:mod:`async_refimport.journal.base`).

    Args:
        table: The table's name (create it with :func:`~async_refimport.journal.dynamo.create_table`).
        region: The table's Region (default: ``AWS_REGION``, then the AWS SDK's configuration).
        profile: An AWS profile (default: the standard credentials chain).
        retention: Seconds a final row, a done job or a sent result document is kept (TTL).
        retry: Backoff for throttling, transaction conflicts and lost connections.
        clock: Wall-clock seconds, injectable for tests.
        sleep: Async sleep used by backoff, injectable for tests.
        pool: The AWS client pool to take the client from (default: the journal's own, closed
            with it); a given pool is left open.

    The endpoint comes from botocore's configuration chain (``AWS_ENDPOINT_URL_DYNAMODB``,
    ``AWS_ENDPOINT_URL``, the profile): moto, DynamoDB Local.
    """

    @classmethod
    def from_url(
        cls, url: str, *, region: str | None = None, pool: ClientPool | None = None
    ) -> DynamoJournal:
        """A journal for ``dynamodb://TABLE[?region=R]``.

        Args:
            url: The journal's URL.
            region: The fallback Region (the URL's wins).
            pool: The AWS client pool to take the client from (default: the journal's own).

        Returns:
            The journal, not yet open.

        Raises:
            JournalError: ``url`` is not a DynamoDB journal URL, or the Region is not a Region
                name.
        """
        table, url_region = parse_url(url)
        region = url_region or region
        if region is not None and not is_region_name(region):
            # Before the AWS SDK refuses it with a traceback (InvalidRegionError).
            raise JournalError(
                f"{quoted(url)}: region {quoted(region)} is not an AWS "
                "Region name (such as us-east-1)"
            )
        return cls(table, region=region, pool=pool)

    async def acquire_lease(self, store: StoreRef, owner: str, ttl: float) -> bool:
        """Take or renew the right to drive ``store`` for ``ttl`` seconds; atomic (a conditional
        write on the store's item), idempotent for the holder. Expiry is judged by this host's
        clock: keep hosts NTP-synchronised and ``ttl`` well above their skew.

        Returns:
            True if ``owner`` holds the lease now, False if another owner holds a live one.

        Raises:
            JournalError: the table cannot be written.
        """
        now = self._clock()
        try:
            await self._call(
                "update_item",
                TableName=self.table,
                Key=store_item_key(store.key),
                UpdateExpression="SET lease_owner = :o, lease_expires = :exp, #store = :k,"
                " gpk = :g, gsk = :k",
                ConditionExpression="attribute_not_exists(lease_owner) OR lease_owner = :o"
                " OR lease_expires < :now",
                ExpressionAttributeNames={"#store": "store"},
                ExpressionAttributeValues={
                    ":o": sv(owner),
                    ":exp": nv(now + ttl),
                    ":now": nv(now),
                    ":k": sv(store.key),
                    ":g": sv("STORES"),
                },
            )
        except botocore.exceptions.ClientError:
            held = await self.lease_holder(store)
            if held is None or not holder_is_gone(held[0]):
                return False
            # The holder was a process on this host that no longer exists (kill -9): take over
            # from exactly that holder rather than idle the store until its lease lapses.
            try:
                await self._call(
                    "update_item",
                    TableName=self.table,
                    Key=store_item_key(store.key),
                    UpdateExpression="SET lease_owner = :o, lease_expires = :exp",
                    ConditionExpression="lease_owner = :dead",
                    ExpressionAttributeValues={
                        ":o": sv(owner),
                        ":exp": nv(now + ttl),
                        ":dead": sv(held[0]),
                    },
                )
            except botocore.exceptions.ClientError:
                return False
        return True

    async def release_lease(self, store: StoreRef, owner: str) -> None:
        """Give up ``owner``'s lease on ``store``; atomic (a conditional write) and idempotent
        (another owner's lease is left alone).

        Raises:
            JournalError: the table cannot be written.
        """
        try:
            await self._call(
                "update_item",
                TableName=self.table,
                Key=store_item_key(store.key),
                UpdateExpression="REMOVE lease_owner, lease_expires",
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeValues={":o": sv(owner)},
            )
        except botocore.exceptions.ClientError:
            pass  # not ours any more

    async def lease_holder(self, store: StoreRef) -> tuple[str, float] | None:
        """Read-only: who holds the store's lease and until when (epoch seconds), if anyone
        (a consistent read).

        Raises:
            JournalError: the table cannot be read.
        """
        item = await self._get(store_item_key(store.key))
        owner = get_s(item, "lease_owner") if item else None
        if item is None or owner is None:
            return None
        return owner, get_n(item, "lease_expires") or 0.0

    async def compact(self, older_than: float) -> int:
        """Nothing to do (idempotent, writes nothing): DynamoDB's TTL deletes final rows, done
        jobs and sent result documents ``retention`` seconds after they settled.

        Returns:
            0.
        """
        return 0

    async def add_outbox(self, submission: str, reply_to: str, row_ids: Sequence[int]) -> None:
        """Owe ``reply_to`` one result document for ``submission`` once its rows are final;
        atomic (one conditional put) and idempotent: a submission already owed keeps its first
        entry.

        Raises:
            JournalError: the table cannot be written.
        """
        now = self._clock()
        try:
            await self._call(
                "put_item",
                TableName=self.table,
                Item={
                    **item_key(f"OUTBOX#{submission}", "OUTBOX"),
                    "submission": sv(submission),
                    "reply_to": sv(reply_to),
                    "row_ids": sv(json.dumps(list(row_ids))),
                    "created_at": nv(now),
                    "gpk": sv("OUTBOX"),
                    "gsk": sv(ordered(now, submission)),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except botocore.exceptions.ClientError:
            pass  # owed already (a redelivered message): the first entry stands

    async def due_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """Read-only: unsent result documents whose rows are all final (or forgotten by the TTL).

        Every worker looks often, so a look must not read every row of every open document: one
        pending row decides that a document is not due. Rows are read in order, one per document
        in the first round and four times more in each next one, and those seen IMPORTED or
        ALREADY_PRESENT are remembered (they never change again); a FAILED row may be queued
        again by a re-run, so it is read every time.

        Raises:
            JournalError: the table cannot be read.
        """
        entries = {
            get_s(item, "submission") or "": (get_s(item, "reply_to") or "", row_ids_of(item))
            for item in await self._query("OUTBOX")
        }
        self._outbox_done = {k: v for k, v in self._outbox_done.items() if k in entries}
        final_now: set[int] = set()  # FAILED (or compacted) in this look
        undecided = list(entries)
        due: list[OutboxEntry] = []
        probe = 1
        while undecided and len(due) < limit:
            wanted: dict[str, list[int]] = {}
            for submission in undecided:
                done = self._outbox_done.setdefault(submission, set())
                rest = [i for i in entries[submission][1] if i not in done and i not in final_now]
                if rest:
                    wanted[submission] = rest[:probe]
                else:
                    reply_to, ids = entries[submission]
                    due.append(OutboxEntry(submission, reply_to, tuple(ids)))
            read = await self._batch_get(row_keys(i for ids in wanted.values() for i in ids))
            states = {
                int(get_n(r, "id") or 0): enum_of(
                    RowState, get_s(r, "state") or "QUEUED", item_name(r), "state"
                )
                for r in read
            }
            undecided = []
            probe = min(probe * 4, BATCH_GET)
            for submission, ids in wanted.items():
                for row_id in ids:
                    state = states.get(row_id)
                    if state in (RowState.IMPORTED, RowState.ALREADY_PRESENT):
                        self._outbox_done[submission].add(row_id)
                    elif state is None or state is RowState.FAILED:
                        final_now.add(row_id)
                    else:
                        break  # pending: not due
                else:
                    undecided.append(submission)
        return due[:limit]

    async def close_outbox(self, submission: str) -> bool:
        """Mark a result document sent; atomic (a conditional write) and idempotent.

        Returns:
            True if this call marked it, False if it was already (by another worker).

        Raises:
            JournalError: the table cannot be written.
        """
        now = self._clock()
        try:
            await self._call(
                "update_item",
                TableName=self.table,
                Key=item_key(f"OUTBOX#{submission}", "OUTBOX"),
                UpdateExpression="SET sent_at = :now, #ttl = :ttl REMOVE gpk, gsk",
                ConditionExpression="attribute_exists(gpk)",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":now": nv(now),
                    ":ttl": nv(int(now + self.retention)),
                },
            )
        except botocore.exceptions.ClientError:
            return False
        return True
