"""The DynamoDB journal's job log: jobs written ahead, their ids recorded, their rows settled.

* **Write ahead.** ``begin_job`` commits the job (its clientToken and row ids) and books the store in
  one transaction before StartReferenceImportJob is sent.
* **One active job per store.** The store's item holds ``active_job``; booking is a conditional write
  (``attribute_not_exists(active_job)``), never a read then a write.
* **Fencing.** Every write that changes a store's jobs is a transaction that includes a condition
  on the store's lease, so a worker that lost it (a paused process, a partition) has every such
  write refused (:class:`~async_refimport.LeaseLostError`).

A job's settlement is recorded on its item under the lease (one transaction), then applied to its
rows with plain conditional writes, then the job is closed and the store freed under the lease
(see :meth:`JobLogRole.finish_job`): the 100-item transaction limit never bounds a job, and a row
costs one write to queue and one to settle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import botocore.exceptions

from async_refimport._errors import JournalError, StoreBookedError
from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport.journal.base import (
    FinalJobStatus,
    JobRecord,
    JobState,
    QueuedRow,
    Settlement,
)
from async_refimport.journal.dynamo.calls import (
    SettledElsewhere,
    cancellation_reasons,
    cancelled_items,
    fenced_out,
    lease_lost,
)
from async_refimport.journal.dynamo.items import (
    Outcome,
    counter_update,
    fenced_store_update,
    get_n,
    get_s,
    job_item_key,
    job_number,
    job_record,
    nv,
    ordered,
    queued_row,
    row_ids_of,
    row_item_key,
    row_keys,
    settlement_plan,
    store_item_key,
    sv,
)
from async_refimport.journal.dynamo.reading import JournalReaderRole


class JobLogRole(JournalReaderRole):
    """The :class:`~async_refimport.journal.base.JobLog` role on a DynamoDB table."""

    async def begin_job(
        self,
        store: StoreRef,
        rows: Sequence[QueuedRow],
        client_token: str,
        owner: str | None = None,
    ) -> JobRecord:
        """Write a job ahead of its Start call and book the store, atomically (one transaction);
        fenced when ``owner`` is given: no other owner may hold a live lease on the store. Not
        idempotent (the store is booked by the first call).

        Raises:
            ValueError: ``rows`` is empty.
            StoreBookedError: the store already has an active job (possibly another worker's).
            LeaseLostError: another owner holds the store's lease.
            JournalError: the table cannot be written.
        """
        if not rows:
            raise ValueError("a job needs at least one row")
        now = self._clock()
        role_arn = rows[0].role_arn
        job_item = {
            **job_item_key(client_token),
            "store": sv(store.key),
            "client_token": sv(client_token),
            "role_arn": sv(role_arn),
            "state": sv(JobState.PENDING),
            "written_at": nv(now),
            "row_ids": sv(json.dumps([r.row_id for r in rows])),
            "gpk": sv(f"J#{store.key}"),
            "gsk": sv(ordered(now, client_token)),
        }
        put_job = {
            "Put": {
                "TableName": self.table,
                "Item": job_item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            await self._transact([self._booking(store, client_token, owner, now), put_job])
        except botocore.exceptions.ClientError as exc:
            raise await self._booking_refused(store, owner, now, exc) from exc
        return JobRecord(
            id=job_number(client_token),
            store=store,
            client_token=client_token,
            role_arn=role_arn,
            state=JobState.PENDING,
            written_at=now,
            rows=tuple(rows),
        )

    def _booking(
        self, store: StoreRef, client_token: str, owner: str | None, now: float
    ) -> dict[str, Any]:
        """The Update that books the store for the job (the transaction's fence)."""
        condition = "attribute_not_exists(active_job)"
        values: dict[str, Any] = {":t": sv(client_token), ":k": sv(store.key), ":g": sv("STORES")}
        if owner is not None:
            condition += (
                " AND (attribute_not_exists(lease_owner) OR lease_owner = :o"
                " OR lease_expires < :now)"
            )
            values.update({":o": sv(owner), ":now": nv(now)})
        return {
            "Update": {
                "TableName": self.table,
                "Key": store_item_key(store.key),
                "UpdateExpression": "SET active_job = :t, #store = :k, gpk = :g, gsk = :k",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#store": "store"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    async def _booking_refused(
        self,
        store: StoreRef,
        owner: str | None,
        now: float,
        exc: botocore.exceptions.ClientError,
    ) -> Exception:
        """What a refused booking means: another owner's live lease, or an active job."""
        if not fenced_out(exc):
            return self._fail("TransactWriteItems", exc)
        # The store's item as the condition saw it (a fresh read may already differ).
        seen = cancelled_items(exc)[0] or await self._get(store_item_key(store.key)) or {}
        holder = get_s(seen, "lease_owner")
        if (
            owner is not None
            and holder not in (None, owner)
            and (get_n(seen, "lease_expires") or 0.0) >= now
        ):
            return lease_lost(store.key, owner)
        return StoreBookedError(f"store {store} already has an active job", store_key=store.key)

    async def record_job_id(
        self, job: JobRecord, job_id: str, *, owner: str | None = None
    ) -> JobRecord:
        """Record the service's job id of a PENDING job, making it RUNNING; atomic with the
        fence (the job is the store's active one and, when ``owner`` is given, ``owner`` holds
        the store's lease).

        Raises:
            LeaseLostError: the fence refused the write.
            JournalError: the job is no longer pending (taken over), or the table cannot be
                written.
        """
        now = self._clock()
        update = {
            "Update": {
                "TableName": self.table,
                "Key": job_item_key(job.client_token),
                "UpdateExpression": "SET job_id = :j, #state = :running, started_at = :now",
                "ConditionExpression": "#state = :pending",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":j": sv(job_id),
                    ":running": sv(JobState.RUNNING),
                    ":pending": sv(JobState.PENDING),
                    ":now": nv(now),
                },
            }
        }
        try:
            await self._transact(
                [self._lease_check(job.store.key, owner, job.client_token), update]
            )
        except botocore.exceptions.ClientError as exc:
            reasons = cancellation_reasons(exc)
            if fenced_out(exc):
                raise lease_lost(job.store.key, owner) from exc
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise JournalError(
                    f"job {job.client_token} is no longer pending (taken over?)"
                ) from exc
            raise self._fail("TransactWriteItems", exc) from exc
        return JobRecord(
            id=job.id,
            store=job.store,
            client_token=job.client_token,
            role_arn=job.role_arn,
            state=JobState.RUNNING,
            written_at=job.written_at,
            job_id=job_id,
            started_at=now,
            rows=job.rows,
        )

    def _lease_check(self, store_key: str, owner: str | None, token: str) -> dict[str, Any]:
        """A ConditionCheck that the job is the store's active one (and ``owner`` holds the lease)."""
        condition = "active_job = :t"
        values: dict[str, Any] = {":t": sv(token)}
        if owner is not None:
            condition += " AND lease_owner = :o"
            values[":o"] = sv(owner)
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": store_item_key(store_key),
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            }
        }

    async def finish_job(
        self,
        job: JobRecord,
        settlements: Sequence[Settlement],
        *,
        status: FinalJobStatus | str,
        message: str | None = None,
        requeue: Sequence[int] = (),
        max_attempts: int = 3,
        owner: str | None = None,
    ) -> list[RowResult]:
        """Settle a job's rows, close the job and free the store; fenced by the store's lease
        when ``owner`` is given, idempotent (a DONE job keeps its verdict).

        Rows in ``requeue`` go back to QUEUED unless they have now taken part in ``max_attempts``
        jobs, in which case they fail with ``message``. Three steps, so that a job of 100 rows
        costs one write per row, not two:

        1. the settlement (every row's outcome) is recorded on the job's item, atomically with
           the fence: this is the decision, and only the lease holder makes it (:meth:`_decide`);
        2. each row is updated from it, conditioned on the row still being queued with fewer
           attempts: a write repeated after a crash, or one delayed in a worker that lost its
           lease meanwhile, finds the row already settled (or further on) and changes nothing;
        3. the job is closed and the store freed, atomically, fenced again (:meth:`_close`).

        A crash before step 3 leaves the job active: the next lease holder finds the recorded
        settlement and applies that one, whatever a new look at the service would say.

        Returns:
            The rows' results after the change.

        Raises:
            LeaseLostError: the fence refused the settlement.
            JournalError: the table cannot be written.
        """
        now = self._clock()
        status = str(status)
        current = await self._get(job_item_key(job.client_token))
        if current is not None and get_s(current, "state") == JobState.DONE:
            # Settled already (by another worker that took the store over): keep its verdict.
            return await self.results(row_ids_of(current))
        row_ids = [r.row_id for r in job.rows] or row_ids_of(current)
        plan = await self._decide(
            job,
            current,
            settlements,
            requeue,
            max_attempts,
            message or f"job ended {status}",
            owner,
        )
        if plan is None:
            return await self.results(row_ids)
        job_id = job.job_id or (get_s(current, "job_id") if current else None)
        async with anyio.create_task_group() as tg:
            for outcome in plan:
                tg.start_soon(self._apply, outcome, job.client_token, job_id, now)
        await self._close(job, plan, status, message, owner, now)
        return await self.results(row_ids)

    async def _decide(
        self,
        job: JobRecord,
        current: dict[str, Any] | None,
        settlements: Sequence[Settlement],
        requeue: Sequence[int],
        max_attempts: int,
        note: str,
        owner: str | None,
    ) -> list[Outcome] | None:
        """Step 1 of :meth:`finish_job`: the settlement already recorded, or a new one recorded
        under the fence; ``None`` if another lease holder settled the job meanwhile."""
        recorded = get_s(current, "settlement") if current else None
        if recorded is not None:
            return [Outcome(*entry) for entry in json.loads(recorded)]
        plan = settlement_plan(job, settlements, requeue, max_attempts, note)
        record = {
            "Update": {
                "TableName": self.table,
                "Key": job_item_key(job.client_token),
                "UpdateExpression": "SET settlement = :plan",
                "ExpressionAttributeValues": {":plan": sv(json.dumps([list(o) for o in plan]))},
            }
        }
        try:
            await self._transact(
                [self._lease_check(job.store.key, owner, job.client_token), record]
            )
        except botocore.exceptions.ClientError as exc:
            refusal = await self._refused(job, owner, exc)
            if isinstance(refusal, SettledElsewhere):
                return None
            raise refusal from exc
        return plan

    async def _close(
        self,
        job: JobRecord,
        plan: Sequence[Outcome],
        status: str,
        message: str | None,
        owner: str | None,
        now: float,
    ) -> None:
        """Step 3 of :meth:`finish_job`: close the job and free the store, in one fenced
        transaction (a job closed meanwhile by another lease holder is left as it is)."""
        close_job: dict[str, Any] = {
            "Update": {
                "TableName": self.table,
                "Key": job_item_key(job.client_token),
                "UpdateExpression": "SET #state = :done, #status = :status, finished_at = :now,"
                " #ttl = :ttl" + (", message = :m" if message is not None else ""),
                "ExpressionAttributeNames": {"#state": "state", "#status": "status", "#ttl": "ttl"},
                "ExpressionAttributeValues": {
                    ":done": sv(JobState.DONE),
                    ":status": sv(status),
                    ":now": nv(now),
                    ":ttl": nv(int(now + self.retention)),
                    **({":m": sv(message)} if message is not None else {}),
                },
            }
        }
        free_store = fenced_store_update(
            self.table,
            job.store.key,
            owner,
            counter_update([RowState(o.state) for o in plan]),
            active_token=job.client_token,
            release=True,
        )
        try:
            await self._transact([free_store, close_job])
        except botocore.exceptions.ClientError as exc:
            refusal = await self._refused(job, owner, exc)
            if not isinstance(refusal, SettledElsewhere):
                raise refusal from exc

    async def _refused(
        self, job: JobRecord, owner: str | None, exc: botocore.exceptions.ClientError
    ) -> Exception:
        """What a refused settlement transaction means: fenced out, or settled elsewhere."""
        reasons = cancellation_reasons(exc)
        if not reasons or reasons[0] != "ConditionalCheckFailed":
            return self._fail("TransactWriteItems", exc)
        settled = await self._get(job_item_key(job.client_token))
        if settled is not None and get_s(settled, "state") == JobState.DONE:
            return SettledElsewhere()
        return lease_lost(job.store.key, owner)

    async def _apply(self, outcome: Outcome, token: str, job_id: str | None, now: float) -> None:
        """Step 2 of :meth:`finish_job` for one row (idempotent, never moves a row back)."""
        state = RowState(outcome.state)
        if state is RowState.QUEUED:
            update: dict[str, Any] = {
                "TableName": self.table,
                "Key": row_item_key(outcome.row_id),
                "UpdateExpression": "SET message = :m, attempts = :a, updated_at = :now,"
                " job = :job",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":m": sv(outcome.message or ""),
                    ":a": nv(outcome.attempts),
                    ":now": nv(now),
                    ":job": sv(token),
                },
            }
        else:
            settlement = Settlement(
                outcome.row_id, state, outcome.reference_id, outcome.message, outcome.md5
            )
            update = self._settle_update(
                settlement, job=token, job_id=job_id, attempts=outcome.attempts, now=now
            )
        update["ConditionExpression"] = "#state = :queued AND attempts < :a"
        update["ExpressionAttributeValues"].update(
            {":queued": sv(RowState.QUEUED), ":a": nv(outcome.attempts)}
        )
        async with self._writers:
            try:
                await self._call("update_item", **update)
            except botocore.exceptions.ClientError:
                pass  # applied already, or the row has moved on (a later job of the new holder)

    async def unfinished_jobs(self, store: StoreRef) -> list[JobRecord]:
        """Read-only: the store's active job with its rows (a store has at most one), consistent.

        Raises:
            JournalError: the table cannot be read.
        """
        _, job_item = await self._active(store.key)
        if job_item is None:
            return []
        ids = row_ids_of(job_item)
        items = {int(get_n(i, "id") or 0): i for i in await self._batch_get(row_keys(ids))}
        rows = tuple(queued_row(items[i]) for i in ids if i in items)
        return [job_record(job_item, rows)]

    async def known_job_ids(self, store: StoreRef) -> set[str]:
        """Read-only: job ids the journal holds for a store (the index may lag a just-recorded id
        by moments).

        Raises:
            JournalError: the table cannot be read.
        """
        return {
            job_id
            for item in await self._query(f"J#{store.key}")
            if (job_id := get_s(item, "job_id")) is not None
        }
