"""Staging ahead of the lanes: rows whose source is not in S3 in their store's own Region.

HealthOmics imports only from S3 in the store's Region. A :class:`StagingDriver` beside an
:class:`~async_refimport.Importer` journals such rows STAGING (the lanes never take them), copies
each source into the staging area of its store's Region with a
:class:`~async_refimport.staging.Stager`, and in one journal write makes the row QUEUED with the
staged object as its source (its manifest source kept as ``original_source``), then wakes the
store's lane. Staging is pipelined: the lane imports what is staged while the rest stages, at
most ``StagingPlan.per_region`` sources at once per Region.

A source that cannot be staged fails its row with the :class:`~async_refimport.staging.StagingError`'s
message: nothing of it is imported. A crash anywhere leaves STAGING rows in the journal; the next
driver on the journal takes them up again (the Stager's ledger resumes their uploads, and a
complete object is found by a HEAD, never completed twice).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from async_refimport._errors import FieldError, RequestValidationError, SetupError, SetupKind
from async_refimport._events import RowSettled
from async_refimport._log import get_logger
from async_refimport._models import ImportRequest, StoreRef, printable, redact_url
from async_refimport._models import validate_requests as _validate_requests
from async_refimport.engine.importer import Importer
from async_refimport.journal import staging_of
from async_refimport.journal.base import StagingQueue, StagingRow
from async_refimport.staging import (
    SourceKind,
    Stager,
    StagingArea,
    StagingError,
    StagingLimits,
    source_kind,
)

__all__ = ["StagingDriver", "StagingPlan", "staging_driver"]

log = get_logger(__name__)

#: What a store's set-up check is given as its sample row's source (the source plays no part).
_SAMPLE_SOURCE = "s3://set-up-check/sample.fa"
#: Seconds between looks at the journal when nothing wakes the driver (rows of another process).
_RESCAN = 5.0


@dataclass(frozen=True, slots=True)
class StagingPlan:
    """Where and how sources are staged.

    Attributes:
        areas: The staging area of each Region (``--staging REGION=s3://bucket/prefix/``).
        store_areas: A store's own area, by store key (a targets file's ``staging`` column),
            before its Region's.
        ledger: The Stager's ledger file (its multipart uploads and parts).
        s3_endpoint_url: The S3 endpoint (an emulator's), or ``None`` for AWS's.
        limits: Part sizes, parallelism and memory bounds of the Stager.
        per_region: Sources staged at once per Region.
        per_store: A store with rows to stage and no staging area is one set-up error (its
            rows left out, the other stores go on: ``--targets``), not a row error per row.
    """

    areas: Mapping[str, StagingArea] = field(default_factory=dict)
    store_areas: Mapping[str, StagingArea] = field(default_factory=dict)
    ledger: str | os.PathLike[str] = "staging.sqlite"
    s3_endpoint_url: str | None = None
    limits: StagingLimits | None = None
    per_region: int = 4
    per_store: bool = False

    def area_for(self, store: StoreRef) -> StagingArea | None:
        """The staging area of ``store``: its own, else its Region's, else ``None``."""
        return self.store_areas.get(store.key) or self.areas.get(store.region)


class StagingDriver:
    """Stages the sources of an Importer's rows ahead of its lanes (an async context manager,
    entered after the Importer and left before it).

    Args:
        importer: The open Importer whose lanes import the staged rows.
        plan: Where and how to stage.
        stager: A Stager (tests); default: one on ``plan.ledger``, closed with the driver.
    """

    def __init__(
        self, importer: Importer, plan: StagingPlan, *, stager: Stager | None = None
    ) -> None:
        self._imp = importer
        self._plan = plan
        self._own_stager = stager is None
        self._stager = stager or Stager(plan.ledger, limits=plan.limits)
        self._journal: StagingQueue | None = staging_of(importer.journal)
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        # Rows being staged (by row id: their store's key), and the stores with rows to stage.
        self._active: dict[int, str] = {}
        self._stores: dict[str, StoreRef] = {}
        self._added: dict[str, int] = {}  # submissions per store (a store's feed ends when none)
        self._used: dict[tuple[StagingArea, str | None], None] = {}
        self._wake = anyio.Event()
        self._tg: TaskGroup | None = None
        self._no_area: dict[str, SetupError] = {}  # stores left out: nowhere to stage (per_store)

    async def __aenter__(self) -> StagingDriver:
        if self._own_stager:
            await self._stager.__aenter__()
        try:
            self._tg = await anyio.create_task_group().__aenter__()
        except BaseException:
            await self.aclose()
            raise
        if self._journal is not None:
            self._tg.start_soon(self._run, self._tg, name="staging driver")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop staging (rows being staged stay STAGING: the next run resumes them), abort the
        multipart uploads nothing will complete, and close the Stager; idempotent."""
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        with anyio.move_on_after(self._imp.settings.shutdown_grace, shield=True):
            for area, profile in self._used:
                try:
                    await self._stager.abort_orphans(
                        area, profile=profile, endpoint_url=self._plan.s3_endpoint_url
                    )
                except (StagingError, OSError) as exc:
                    log.warning("staging.abort_orphans_failed", area=str(area), error=str(exc))
            self._used.clear()
            if self._own_stager:
                self._own_stager = False
                await self._stager.aclose()

    # -- before anything is journaled -------------------------------------------------------------

    async def classify(self, requests: Sequence[ImportRequest]) -> list[bool]:
        """Which requests need staging (their source is not ``s3://`` in their store's Region).

        Args:
            requests: Requests (their fields valid but for the source's kind).

        Returns:
            One flag per request.

        Raises:
            RequestValidationError: rows whose source needs staging with nowhere to stage it (or
                a journal that keeps no staging rows), or whose bucket's Region cannot be told:
                every such row, nothing journaled.
        """
        flags: list[bool] = []
        errors: list[FieldError] = []
        for request in requests:
            store = request.store(self._imp.region)
            try:
                needs = await self._needs_staging(request.source_file, store)
            except (StagingError, ValueError) as exc:
                errors.append(FieldError("source_file", printable(str(exc)), row_name=request.name))
                needs = False
            if needs and (problem := self._cannot_stage(store)) is not None:
                if self._journal is not None and self._plan.per_store:
                    self._no_area.setdefault(store.key, _no_area_error(store))
                else:
                    errors.append(FieldError("source_file", problem, row_name=request.name))
            flags.append(needs)
        if errors:
            raise RequestValidationError(errors)
        return flags

    async def _needs_staging(self, source: str, store: StoreRef) -> bool:
        if source_kind(source) is not SourceKind.S3:
            return True
        if not self._plan.areas and not self._plan.store_areas:
            return False  # nowhere to stage: an s3:// source is sent as it is (no bucket lookup)
        return await self._stager.needs_staging(
            source, store.region, profile=store.profile, endpoint_url=self._plan.s3_endpoint_url
        )

    def _cannot_stage(self, store: StoreRef) -> str | None:
        """Why a source for ``store`` cannot be staged, or None."""
        if self._journal is None:
            return (
                "needs staging (not in S3 in the store's Region), which this journal does not "
                "keep (staging needs a SQLite journal)"
            )
        if self._plan.area_for(store) is None:
            return (
                f"needs staging into {store.region} (it is not in S3 in the store's Region) and "
                f"no staging area is given for {store.region}: pass --staging "
                f"{store.region}=s3://BUCKET/PREFIX/ (a bucket in {store.region}), or a staging "
                "column in the targets file"
            )
        return None

    async def setup_errors(
        self, chunks: AsyncIterator[Sequence[ImportRequest]]
    ) -> tuple[SetupError, ...]:
        """Before any row of a run is journaled: refuse rows that cannot be staged, and check
        the staging area of every store with rows to stage.

        Args:
            chunks: The run's rows, a chunk at a time.

        Returns:
            A set-up error for each store whose staging area cannot be used.

        Raises:
            RequestValidationError: as :meth:`stores_to_stage`.
        """
        checked = await self.check_areas(await self.stores_to_stage(chunks))
        return tuple({**self._no_area, **checked}.values())

    async def stores_to_stage(
        self, chunks: AsyncIterator[Sequence[ImportRequest]]
    ) -> list[StoreRef]:
        """Classify every row of a run before any is journaled: the stores with rows to stage.

        Args:
            chunks: The run's rows, a chunk at a time.

        Returns:
            The stores with at least one row to stage, once each.

        Raises:
            RequestValidationError: every row of every chunk that cannot be staged (see
                :meth:`classify`), or that is invalid.
        """
        stores: dict[str, StoreRef] = {}
        errors: list[FieldError] = []
        async for chunk in chunks:
            problems = _validate_requests(chunk, self._imp.region, stageable=True)
            if problems:
                errors += problems
                continue
            try:
                flags = await self.classify(chunk)
            except RequestValidationError as exc:
                errors += exc.errors
                continue
            for request, staged in zip(chunk, flags, strict=True):
                if staged:
                    store = request.store(self._imp.region)
                    stores.setdefault(store.key, store)
        if errors:
            raise RequestValidationError(errors)
        return list(stores.values())

    async def verify_setup(self, requests: Sequence[ImportRequest]) -> tuple[SetupError, ...]:
        """:meth:`Importer.verify_setup` of the stores of ``requests``, whatever their sources.

        Args:
            requests: Rows naming every store of the run.

        Returns:
            The set-up problems found, one per store that cannot be used.
        """
        samples: dict[str, ImportRequest] = {}
        for request in requests:
            # The set-up check is about the store only: one row each, with a source it accepts.
            key = request.store(self._imp.region).key
            samples.setdefault(key, replace(request, source_file=_SAMPLE_SOURCE))
        return await self._imp.verify_setup(list(samples.values()))

    async def conflicts(self, requests: Sequence[ImportRequest]) -> list[FieldError]:
        """The problems :meth:`submit` would find with ``requests`` (invalid fields, a name
        journaled for its store from another source), journaling nothing.

        Args:
            requests: The requests.

        Returns:
            Every problem found.
        """
        errors = _validate_requests(requests, self._imp.region, stageable=True)
        if errors:
            return errors
        return await self._imp.journal.conflicts([(r.store(self._imp.region), r) for r in requests])

    async def check_areas(self, stores: Sequence[StoreRef]) -> dict[str, SetupError]:
        """Check the staging area of each store (its bucket exists, in the store's Region).

        Args:
            stores: The stores with rows to stage.

        Returns:
            A set-up error by store key for each store whose area cannot be used.
        """
        problems: dict[str, SetupError] = {}
        seen: dict[tuple[StagingArea, str | None], StagingError | None] = {}
        for store in stores:
            area = self._plan.area_for(store)
            if area is None:
                continue
            key = (area, store.profile)
            if key not in seen:
                try:
                    await self._stager.check_area(
                        area, profile=store.profile, endpoint_url=self._plan.s3_endpoint_url
                    )
                    seen[key] = None
                except StagingError as exc:
                    seen[key] = exc
            if (error := seen[key]) is not None:
                problems[store.key] = SetupError(
                    f"staging area {area}: {error.detail}",
                    store_id=store.store_id,
                    region=store.region,
                    kind=SetupKind.STAGING,
                    fix=f"Name a staging bucket of {store.region} that you can write to.",
                )
        return problems

    # -- journaling ---------------------------------------------------------------------------------

    async def submit(self, requests: Sequence[ImportRequest]) -> list[int]:
        """Journal ``requests``: those whose source needs staging STAGING, the others through
        :meth:`Importer.submit`; returns one row id per request, in order.

        Raises:
            RequestValidationError: with every problem found (nothing journaled).
        """
        errors = _validate_requests(requests, self._imp.region, stageable=True)
        if errors:
            raise RequestValidationError(errors)
        flags = await self.classify(requests)
        plain = [r for r, staged in zip(requests, flags, strict=True) if not staged]
        staged = [(r.store(self._imp.region), r) for r, s in zip(requests, flags, strict=True) if s]
        plain_ids = iter(await self._imp.submit(plain) if plain else [])
        staged_ids = iter(await self._add_staging(staged) if staged else [])
        return [next(staged_ids) if s else next(plain_ids) for s in flags]

    async def _add_staging(self, rows: Sequence[tuple[StoreRef, ImportRequest]]) -> list[int]:
        assert self._journal is not None  # classify refused the rows otherwise
        ids = await self._journal.add_staging_rows(rows)
        for store, _ in rows:
            self._stores.setdefault(store.key, store)
            self._added[store.key] = self._added.get(store.key, 0) + 1
        self._signal()
        return ids

    # -- staging ------------------------------------------------------------------------------------

    def _signal(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    async def _run(self, tg: TaskGroup) -> None:
        """Feed each store's STAGING rows, oldest first, to tasks of their own: at most
        ``per_region`` staged at once per Region, twice that taken up per store (so that every
        store and Region goes ahead at once); returns only when cancelled."""
        assert self._journal is not None
        # The stores an earlier run left rows to stage for (a restart resumes them).
        for store in await self._imp.journal.stores_with_work():
            self._stores.setdefault(store.key, store)
        room = 2 * self._plan.per_region
        while True:
            wake = self._wake
            for key, store in list(self._stores.items()):
                area = self._plan.area_for(store)
                taken = sum(1 for k in self._active.values() if k == key)
                if area is None or taken >= room:
                    if area is None:  # left by a run that had one: resumed by such a run
                        log.warning("staging.no_area", store_id=store.store_id)
                        del self._stores[key]
                    continue
                added = self._added.get(key, 0)
                rows = await self._journal.staging_rows(taken + room, store=store)
                if not rows and self._added.get(key, 0) == added:
                    del self._stores[key]  # nothing left to stage (none added meanwhile)
                for row in [r for r in rows if r.row_id not in self._active][: room - taken]:
                    self._active[row.row_id] = key
                    tg.start_soon(self._stage, row, area)
            with anyio.move_on_after(_RESCAN):
                await wake.wait()

    async def _stage(self, row: StagingRow, area: StagingArea) -> None:
        assert self._journal is not None
        limiter = self._limiters.setdefault(
            row.store.region, anyio.CapacityLimiter(self._plan.per_region)
        )
        try:
            async with limiter:
                self._used[(area, row.store.profile)] = None
                staged = await self._stager.stage(
                    row.source,
                    area,
                    md5=row.source_md5,
                    profile=row.store.profile,
                    endpoint_url=self._plan.s3_endpoint_url,
                )
        except Exception as exc:  # whatever it is, the row fails alone and the run goes on
            if isinstance(exc, (StagingError, ValueError, OSError)):
                message = str(exc)
                log.warning("staging.failed", row_id=row.row_id, store_id=row.store.store_id)
            else:  # not a failure the Stager names: a bug, or an error nobody foresaw
                message = f"staging {row.source}: {type(exc).__name__}: {exc}"
                log.error("staging.unexpected", row_id=row.row_id, exc_info=exc)
            message = printable(redact_url(message))
            if await self._journal.fail_staging(row.row_id, message):
                [result] = await self._imp.journal.results([row.row_id])
                self._imp.announce(RowSettled(result))
        else:
            if await self._journal.mark_staged(row.row_id, staged.uri):
                log.info("staging.staged", row_id=row.row_id, reused=staged.reused)
                self._imp.rows_staged(row.store)
        finally:
            self._active.pop(row.row_id, None)
            self._signal()


@asynccontextmanager
async def staging_driver(
    importer: Importer, plan: StagingPlan | None
) -> AsyncIterator[StagingDriver | None]:
    """A staging driver beside ``importer`` when a run stages sources (``plan``), else ``None``.

    Args:
        importer: The open Importer.
        plan: Where and how to stage, or ``None``.

    Yields:
        The open driver, or ``None``.
    """
    if plan is None:
        yield None
        return
    async with StagingDriver(importer, plan) as driver:
        yield driver


def _no_area_error(store: StoreRef) -> SetupError:
    """The set-up error of a store with rows to stage and no staging area (``--targets``)."""
    return SetupError(
        f"rows need staging into {store.region} (their source is not in S3 in the store's "
        f"Region) and no staging area is given for {store.region}",
        store_id=store.store_id,
        region=store.region,
        kind=SetupKind.STAGING,
        fix=(
            f"Give the target a staging column (s3://BUCKET/PREFIX/ of a bucket in "
            f"{store.region}), or pass --staging {store.region}=s3://BUCKET/PREFIX/."
        ),
    )
