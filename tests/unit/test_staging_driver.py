"""The staging driver beside an Importer on the in-memory HealthOmics, with a fake Stager: rows of
every Region stage at once within the per-Region bound, each one staged is imported from its
staged object, any failure (a StagingError or an error nobody foresaw) fails its row alone, and a
new driver on the journal resumes the rows an earlier one left STAGING."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_refimport import ImportRequest, RowState
from async_refimport.engine.staging_driver import StagingDriver, StagingPlan
from async_refimport.staging import StagedObject, StagingArea, StagingCode, StagingError
from async_refimport.testing import memory_importer
from tests.helpers.common import ROLE_ARN, STORE_ID

REGIONS = ("us-east-1", "eu-west-1")
AREAS = {r: StagingArea(r, f"stage-{r}", "p/") for r in REGIONS}


class FakeStager:
    """Stages by waiting a little; records how many stage at once per Region."""

    def __init__(self, *, hold: anyio.Event | None = None) -> None:
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.overlap = False
        self.staged: list[str] = []
        self.hold = hold

    async def needs_staging(self, source: str, region: str, **_: Any) -> bool:
        return not source.startswith("s3://")

    async def check_area(self, area: StagingArea, **_: Any) -> None:
        return None

    async def abort_orphans(self, area: StagingArea, **_: Any) -> int:
        return 0

    async def aclose(self) -> None:
        return None

    async def stage(self, source: str, area: StagingArea, **_: Any) -> StagedObject:
        self.now[area.region] += 1
        self.most[area.region] = max(self.most[area.region], self.now[area.region])
        self.overlap = self.overlap or len(+self.now) > 1
        try:
            if self.hold is not None:
                await self.hold.wait()
            await anyio.sleep(0.01)
            if "boom" in source:
                raise RuntimeError("boom")
            if "gone" in source:
                raise StagingError(StagingCode.NOT_FOUND, source, "HTTP 404")
        finally:
            self.now[area.region] -= 1
        name = source.rsplit("/", 1)[-1]
        self.staged.append(source)
        return StagedObject(area.uri(f"p/{name}"), area.bucket, f"p/{name}", 10, "x", False)


def requests(n: int) -> list[ImportRequest]:
    return [
        ImportRequest(STORE_ID, ROLE_ARN, f"https://example.org/{r}/g{i}.fa", f"g{i}-{r}", region=r)
        for r in REGIONS
        for i in range(n)
    ]


async def test_every_region_stages_at_once_within_its_bound(tmp_path: Path) -> None:
    stager = FakeStager()
    plan = StagingPlan(areas=AREAS, ledger=tmp_path / "ledger", per_region=2)
    rows = [
        *requests(8),
        ImportRequest(STORE_ID, ROLE_ARN, "https://example.org/boom.fa", "boom-ref"),
        ImportRequest(STORE_ID, ROLE_ARN, "https://example.org/gone.fa", "gone-ref"),
        ImportRequest(STORE_ID, ROLE_ARN, "s3://here/plain.fa", "plain-ref"),
    ]
    async with memory_importer(tmp_path, virtual_time=False) as run:
        async with StagingDriver(run.importer, plan, stager=stager) as driver:  # type: ignore[arg-type]
            ids = await driver.submit(rows)
            with anyio.fail_after(60):
                results = await run.importer.wait(ids)
    by_name = {r.name: r for r in results}
    assert stager.most == {r: 2 for r in REGIONS} and stager.overlap
    for request in requests(8):
        result = by_name[request.name]
        assert result.state is RowState.IMPORTED, result
        assert result.source_file.startswith(f"s3://stage-{result.region}/p/")
        assert result.original_source == request.source_file
    assert by_name["plain-ref"].state is RowState.IMPORTED
    assert by_name["plain-ref"].original_source is None  # not staged
    boom, gone = by_name["boom-ref"], by_name["gone-ref"]
    assert boom.state is RowState.FAILED and "RuntimeError: boom" in (boom.message or "")
    assert gone.state is RowState.FAILED and "HTTP 404" in (gone.message or "")
    assert not boom.job_id and not gone.job_id  # nothing imported


async def test_a_new_driver_resumes_what_an_earlier_one_left_staging(tmp_path: Path) -> None:
    plan = StagingPlan(areas=AREAS, ledger=tmp_path / "ledger")
    held = FakeStager(hold=anyio.Event())  # never staged: the run stops first
    async with memory_importer(tmp_path, virtual_time=False) as run:
        async with StagingDriver(run.importer, plan, stager=held) as driver:  # type: ignore[arg-type]
            ids = await driver.submit(requests(3))
            await anyio.sleep(0.05)
        assert {r.state for r in await run.importer.results(ids)} == {RowState.STAGING}
    again = FakeStager()
    async with memory_importer(tmp_path, virtual_time=False) as run:
        async with StagingDriver(run.importer, plan, stager=again):  # type: ignore[arg-type]
            with anyio.fail_after(60):
                results = await run.importer.wait(ids)
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert sorted(again.staged) == sorted(r.source_file for r in requests(3))


async def test_a_row_to_stage_with_no_area_is_refused_before_anything_is_journaled(
    tmp_path: Path,
) -> None:
    plan = StagingPlan(areas={"us-east-1": AREAS["us-east-1"]}, ledger=tmp_path / "ledger")
    async with memory_importer(tmp_path, virtual_time=False) as run:
        async with StagingDriver(run.importer, plan, stager=FakeStager()) as driver:  # type: ignore[arg-type]
            from async_refimport import RequestValidationError

            with pytest.raises(RequestValidationError) as raised:
                await driver.submit(requests(1))
        assert await run.importer.results() == []
    [error] = raised.value.errors
    assert error.field == "source_file" and "no staging area is given for eu-west-1" in error.reason
