"""A DynamoDB journal takes its client from a ClientPool: its own (closed with it) or a given one
(left open for its owner)."""

from __future__ import annotations

from async_refimport.aws.clients import ClientPool
from async_refimport.journal import resolve_journal
from async_refimport.journal.dynamo import DynamoJournal
from tests.helpers.journal import reqs


async def test_a_given_pool_serves_the_journal_and_stays_open(dynamo_table: str) -> None:
    async with ClientPool() as pool:
        journal = resolve_journal(f"dynamodb://{dynamo_table}", region="us-east-1", pool=pool)
        assert isinstance(journal, DynamoJournal)
        async with journal:
            ids = await journal.add_rows(reqs(2))
        # The journal is closed; the pool's client is not: the owner's next call still works.
        client = await pool.client("dynamodb", region="us-east-1")
        described = await client.describe_table(TableName=dynamo_table)
        assert described["Table"]["TableName"] == dynamo_table
        async with DynamoJournal(dynamo_table, region="us-east-1", pool=pool) as again:
            assert [r.row_id for r in await again.results(ids)] == ids


async def test_a_journal_without_a_pool_closes_its_own(dynamo_table: str) -> None:
    journal = DynamoJournal(dynamo_table, region="us-east-1")
    async with journal:
        await journal.add_rows(reqs(1))
        own = journal._own_pool
        assert own is not None
    assert journal._own_pool is None
    # Reopened, it makes a new pool and client.
    async with journal:
        assert len(await journal.results()) == 1
