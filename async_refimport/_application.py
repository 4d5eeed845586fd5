"""The use cases every face of async_refimport shares: one layer between the engine and its shells.

The shells are ``refimport``'s commands (:mod:`async_refimport.cli`, with the demo), the worker
(:mod:`async_refimport.worker`, with its intakes: spool, HTTP, SQS) and anyone embedding the
library. They all do the same few things, and do them here, so that every face behaves alike:

* **read rows from any intake**: a manifest file (:func:`read_manifest_file`,
  :func:`read_whole_manifest`, or :func:`check_manifest_file` to check one whole without holding
  its rows) or JSON objects from an HTTP body or a queue message (:func:`rows_from_objects`),
  checked the same way, errors as :func:`field_error_dict`;
* **run an import and report it**: :func:`run_import` (open an Importer on a journal, submit a
  chunk at a time, follow the events, wait, stop when asked; :func:`read_results` reads the rows
  back a page at a time), :func:`plan_import` (the dry run), :func:`report_document`,
  :func:`render_report`;
* **the status of the stores**: of a journal at rest (:func:`journal_status`) or of a running
  Importer (:func:`stores_document`, from :meth:`Importer.status`).

Imports flow one way, and import-linter checks it in ``make test`` (``[tool.importlinter]`` in
pyproject.toml; the layers are drawn in docs/architecture.md)::

    shells        cli | worker                   (never import each other)
    presentation  _progress | _metrics | _logconfig | _console
    application   _application                   (this module)
    engine        engine.importer -> engine.lane -> engine.start ...
    seams         journal, gateway, completion, manifest, aws, _report ... -> _models, _errors
"""

from __future__ import annotations

import io
import os
import tempfile
from array import array
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from async_refimport._errors import FieldError, ManifestError, RequestValidationError, SetupError
from async_refimport._events import Event, RowSettled
from async_refimport._models import ImportRequest, RowResult, RowState, StoreRef, redact_url
from async_refimport._report import (
    JsonReportWriter,
    ReportFormat,
    Tally,
    json_document,
    render_html,
    report_item,
    write_csv,
)
from async_refimport.engine import importer as _importer
from async_refimport.engine.importer import (
    Importer,
    ImporterSettings,
    ImporterStatus,
    StorePlan,
)
from async_refimport.engine.staging_driver import StagingDriver, StagingPlan, staging_driver
from async_refimport.engine.waiting import buffered_events
from async_refimport.gateway.base import OmicsGateway
from async_refimport.journal import opened_journal
from async_refimport.journal.base import JobRecord, JobState, Journal
from async_refimport.manifest.reader import (
    CheckedManifest,
    Manifest,
    ManifestDefaults,
    ManifestFormat,
    RemoteLimits,
    check_objects,
    format_error,
)
from async_refimport.manifest.reader import check_manifest as _check_manifest
from async_refimport.manifest.reader import read_manifest as _read_manifest

JournalSpec = str | os.PathLike[str] | Journal | None

# -- reading rows, from any intake ----------------------------------------------------------------
#
# Rows are checked twice on purpose: here, where a problem can still name its file, line and
# field and every problem is reported at once before anything is journaled; and again by
# Importer.submit, the library's one guarantee to every caller (embedded services build
# ImportRequests themselves) that nothing invalid is journaled or sent. The second check costs
# about 5 µs a row (0.53 s for 100,000 rows, measured), small beside journaling them.


def read_manifest_file(
    path: str | os.PathLike[str],
    defaults: ManifestDefaults | None = None,
    *,
    format: ManifestFormat | None = None,
    ignore_unknown_columns: bool = False,
) -> Manifest:
    """Read and check a whole manifest (CSV, TSV or JSON Lines) from a file, ``-`` (standard
    input) or ``s3://bucket/key``: its valid rows and every problem, each
    ``FILE:LINE: field: reason``.

    Raises:
        ManifestError: the manifest cannot be read or its format cannot be told.
    """
    return _read_manifest(
        path, defaults, format=format, ignore_unknown_columns=ignore_unknown_columns
    )


def check_manifest_file(
    path: str | os.PathLike[str],
    defaults: ManifestDefaults | None = None,
    *,
    format: ManifestFormat | None = None,
    ignore_unknown_columns: bool = False,
) -> CheckedManifest:
    """:func:`read_manifest_file` without holding the rows: every problem is known at once, and
    the valid rows are read again a chunk at a time by :func:`run_import`.

    Raises:
        ManifestError: the manifest cannot be read or its format cannot be told.
    """
    return _check_manifest(
        path, defaults, format=format, ignore_unknown_columns=ignore_unknown_columns
    )


def read_whole_manifest(path: Path, defaults: ManifestDefaults) -> list[ImportRequest]:
    """The requests of a manifest that must be valid as a whole (a spool file).

    Raises:
        ManifestError: with every bad row, each naming its line; or the file has no rows.
    """
    manifest = read_manifest_file(path, defaults)
    manifest.raise_for_errors()
    if not manifest.rows:
        raise ManifestError([FieldError("file", "no rows", None, path.name)])
    return manifest.requests


def rows_from_objects(
    items: Sequence[Any], defaults: ManifestDefaults, *, remote: RemoteLimits | None = None
) -> Manifest:
    """Check JSON objects (an HTTP body's or a queue message's rows) exactly as rows of a JSON
    Lines manifest; an error's ``line`` is the row's 1-based index. ``remote``: the rows came from
    a remote client, which may set less (:class:`RemoteLimits`)."""
    return check_objects(items, defaults, remote=remote)


def field_error_dict(error: FieldError) -> dict[str, Any]:
    """One problem as JSON: ``line``, ``row_name``, ``field``, ``reason`` and the whole
    ``message`` (``FILE:LINE: field: reason``)."""
    return {
        "line": error.line,
        "row_name": error.row_name,
        "field": error.field,
        "reason": error.reason,
        "message": format_error(error),
    }


def with_region(defaults: ManifestDefaults, region: str | None) -> ManifestDefaults:
    """``defaults``, falling back to ``region`` (an Importer's) for rows that name none."""
    return replace(defaults, region=defaults.region or region)


# -- running an import ----------------------------------------------------------------------------


SUBMIT_CHUNK = 5000
"""Rows journaled at a time by :func:`run_import` (a manifest's rows are read a chunk at a time)."""

_LOOKUP_ROWS = 20 * SUBMIT_CHUNK
"""Rows of a stopped run looked up in the journal at a time (one read of its rows each)."""

RowsToImport = Sequence[ImportRequest] | CheckedManifest
"""Requests, or a checked manifest whose rows are read again a chunk at a time."""


@dataclass(slots=True)
class ImportOutcome:
    """What an import run ended with.

    Attributes:
        row_ids: The journal's id of every submitted row, in the order submitted (read their
            results back a page at a time with :func:`read_results`).
        tally: What those rows came to: per store and state, the jobs, the first failures.
        stopped: The run was stopped before every row was final (re-run to resume).
        setup_errors: Stores that cannot be used as set up (fix the set-up and run again).
        not_started: Rows of those stores, neither journaled nor sent.
        not_journaled: Rows not journaled because the run was stopped first (a re-run does),
            or because the manifest changed while it was read again (``manifest_changed``).
        manifest_changed: The checked manifest changed after some of its rows were journaled:
            those rows (the checked file's) are imported, the others are not journaled.
    """

    row_ids: Sequence[int]
    tally: Tally
    stopped: bool = False
    setup_errors: tuple[SetupError, ...] = ()
    not_started: int = 0
    not_journaled: int = 0
    manifest_changed: ManifestError | None = None

    @property
    def failed(self) -> int:
        """Rows that failed."""
        return self.tally.failed

    @property
    def pending(self) -> int:
        """Rows not final: journaled and waiting, not started because of the set-up, or not
        journaled because the run was stopped first."""
        return self.tally.pending + self.not_started + self.not_journaled

    @property
    def summary(self) -> dict[str, int]:
        """Row counts by outcome (``total``, ``imported``, ...), as reports show them."""
        return self.tally.summary()


class ImportObserver(Protocol):
    """Follows an import run (the CLI's progress display)."""

    def expect(self, row_ids: Sequence[int]) -> None:
        """The run's rows, by id (before :meth:`add_rows`)."""

    def add_rows(self, results: Sequence[RowResult]) -> None:
        """Some of the run's rows, as journaled (rows final already count as done); called a page
        at a time until every row was given, then :meth:`run` is."""

    def handle(self, event: Event) -> None:
        """One event, while the rows are still being given (a row settled before its page was
        read is read as final: its event must not count it twice)."""

    async def run(self, events: AsyncIterator[Event]) -> None:
        """Consume the Importer's events until the stream ends or the run is over."""


async def run_import(
    requests: RowsToImport,
    *,
    journal: JournalSpec,
    region: str | None,
    settings: ImporterSettings | None = None,
    gateway: OmicsGateway | None = None,
    observer: ImportObserver | None = None,
    stop: anyio.Event | None = None,
    staging: StagingPlan | None = None,
) -> ImportOutcome:
    """Import ``requests`` through an Importer on ``journal``; returns when every row is final,
    or once ``stop`` is set (a Start in flight is finished and journaled; a re-run resumes).

    ``staging``: rows whose source is not in S3 in their store's Region are staged first.

    Each store's set-up is checked first (:meth:`Importer.verify_setup`): the rows of a store
    that cannot be used (credentials, access, store id, endpoint) are not journaled at all, so
    that fixing the set-up and running again just works; they count as ``not_started``.

    Neither the requests nor the results are held whole: rows are journaled
    :data:`SUBMIT_CHUNK` at a time (the stores start on the first chunk; a
    :class:`CheckedManifest` is read again from its file as it goes), and read back a page at a
    time. What the run holds per row is its id (8 bytes) and a byte in each pending set.

    Raises:
        RequestValidationError: a request is invalid, or its name is journaled for its store
            from another source file (nothing was journaled: with more than one chunk, every
            chunk is checked against the journal before the first is journaled).
        ManifestError: a checked manifest changed before its first chunk was journaled
            (nothing was). A change found later ends the journaling: the rows journaled before
            it are imported, and the outcome says so (``manifest_changed``).
    """
    importer = Importer(journal, region=region, settings=settings, gateway=gateway)
    async with importer as imp, staging_driver(imp, staging) as via:
        unusable, run = await _run_rows(imp, requests, observer, stop, via or imp)
        tally = Tally()
        async for page in imp.iter_results(run.row_ids):
            tally.add(page)
        stopped = imp.stopping and (tally.pending > 0 or run.not_journaled > 0)
    # Only the stores this run's rows wait on (not a store left over in the journal by an
    # earlier run, which the Importer adopted and found unusable: it only logs an error).
    waiting = tally.pending_stores()
    blocking = tuple(e for e in imp.setup_errors if (e.store_id, e.region) in waiting)
    return ImportOutcome(
        run.row_ids,
        tally,
        stopped,
        unusable + blocking,
        run.not_started,
        run.not_journaled,
        run.changed,
    )


async def _run_rows(
    imp: Importer,
    requests: RowsToImport,
    observer: ImportObserver | None,
    stop: anyio.Event | None,
    via: Importer | StagingDriver,
) -> tuple[tuple[SetupError, ...], _Submitted]:
    """Check the stores, journal the rows of the usable ones and wait until they are final.

    Returns:
        The set-up errors of the stores left out, and what was journaled.
    """
    try:
        async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
            if stop is not None:
                tg.start_soon(_stop_when_set, stop, imp)
            # Subscribed only for an observer: events nobody reads are buffered without bound
            # (a RowSettled per row: about 700 B each, 140 MB for 200,000 rows).
            events = await stack.enter_async_context(imp.subscribe()) if observer else None
            unusable = await via.verify_setup(_store_samples(requests))
            if isinstance(via, StagingDriver):  # refuses rows it cannot stage, journals none
                unusable += await via.setup_errors(_chunks(requests))
            run = await _submit(imp, requests, unusable, events, via)
            if observer is not None and events is not None and run.row_ids:
                await _introduce(observer, imp, run, events)
                tg.start_soon(observer.run, events)
            try:
                await imp.wait_until_final(run.row_ids)
            except SetupError:
                pass  # every other row is final; the parked stores' rows stay queued
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # What the run itself raised (an invalid request, a manifest changed since it was
        # checked), not a group around it.
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    return unusable, run


@dataclass(slots=True)
class _Submitted:
    row_ids: array[int] = field(default_factory=lambda: array("q"))
    not_started: int = 0
    not_journaled: int = 0
    changed: ManifestError | None = None
    # Events sent while submitting, but no RowSettled: a row settles in the journal before its
    # event is sent, so one settled by then is read as final when the rows are read back.
    # Keeping none of those keeps the submission's memory flat.
    early: list[Event] = field(default_factory=list)


async def _submit(
    imp: Importer,
    requests: RowsToImport,
    unusable: Sequence[SetupError],
    events: MemoryObjectReceiveStream[Event] | None,
    via: Importer | StagingDriver,
) -> _Submitted:
    """Journal the rows a chunk at a time, but none of a store that cannot be used; stop
    journaling when the run is stopped.

    Raises:
        RequestValidationError: a row is invalid, or its name is journaled for its store from
            another source file: with every such row of every chunk, before any is journaled.
    """
    bad = {(e.store_id, e.region) for e in unusable}

    def usable(chunk: Sequence[ImportRequest]) -> list[ImportRequest]:
        return [r for r in chunk if (r.store_id, r.region or imp.region) not in bad]

    total = _row_count(requests)
    if total > SUBMIT_CHUNK:
        # Nothing is journaled unless every chunk can be: one read of the journal per row first
        # (requests in memory are checked as a whole: a name may repeat across chunks).
        problems: list[FieldError] = []
        if isinstance(requests, CheckedManifest):
            async for rows in _chunks(requests):
                if imp.stopping:
                    break
                problems += await via.conflicts(usable(rows))
        else:
            problems = await via.conflicts(usable(requests))
        if problems:
            raise RequestValidationError(problems)
    run = _Submitted()
    chunks = _chunks(requests)
    left: Sequence[ImportRequest] = ()
    try:
        async for chunk in chunks:
            if imp.stopping:
                left = chunk
                break
            kept = usable(chunk)
            run.not_started += len(chunk) - len(kept)
            run.row_ids.extend(await via.submit(kept))
            if events is not None:
                early = (e for e in buffered_events(events) if not isinstance(e, RowSettled))
                run.early.extend(early)
    except ManifestError as exc:
        if not run.row_ids:
            raise  # nothing journaled: the run is refused as a whole
        run.changed = exc  # the rows journaled are the checked file's: they are imported
    if left:
        # Stopped first: rows an earlier run journaled are reported as the journal has them.
        run.row_ids.extend(await _journaled_before(imp, left, chunks, usable))
    run.not_journaled = total - len(run.row_ids) - run.not_started
    return run


async def _journaled_before(
    imp: Importer,
    left: Sequence[ImportRequest],
    chunks: AsyncIterator[Sequence[ImportRequest]],
    usable: Callable[[Sequence[ImportRequest]], list[ImportRequest]],
) -> list[int]:
    """The journal's ids of the rows not submitted (``left``, then the rest of ``chunks``) that
    an earlier run journaled, read-only: the journal's rows are read a page at a time and
    matched by store id, Region and name against up to :data:`_LOOKUP_ROWS` rows at a time."""
    found: list[int] = []
    wanted: set[tuple[str, str, str]] = set()
    pending: AsyncIterator[Sequence[ImportRequest]] | None = chunks
    chunk: Sequence[ImportRequest] | None = left
    while chunk is not None:
        for r in usable(chunk):
            wanted.add((r.store_id, r.store(imp.region).region, r.name))
        try:
            chunk = None if pending is None else await anext(pending, None)
        except ManifestError:
            chunk = pending = None  # changed since it was checked: the rest are not journaled
        if wanted and (chunk is None or len(wanted) >= _LOOKUP_ROWS):
            async for page in imp.journal.iter_results():
                for row in page:
                    if (key := (row.store_id, row.region, row.name)) in wanted:
                        wanted.discard(key)  # one row each, even if two endpoints share an id
                        found.append(row.row_id)
            wanted.clear()
    return found


async def _introduce(
    observer: ImportObserver,
    imp: Importer,
    run: _Submitted,
    events: MemoryObjectReceiveStream[Event],
) -> None:
    """Give the observer the run's rows, a page at a time, with the events sent meanwhile (not
    to pile up while 10^5 rows are read)."""
    observer.expect(run.row_ids)
    for event in run.early:
        observer.handle(event)
    async for page in imp.iter_results(run.row_ids):
        if imp.stopping:
            return
        observer.add_rows(page)
        for event in buffered_events(events):
            observer.handle(event)


def _store_samples(requests: RowsToImport) -> Sequence[ImportRequest]:
    """Rows enough to name every store of ``requests`` (what checking the set-up needs)."""
    return requests.stores if isinstance(requests, CheckedManifest) else requests


def _row_count(requests: RowsToImport) -> int:
    return requests.valid_rows if isinstance(requests, CheckedManifest) else len(requests)


async def _chunks(requests: RowsToImport) -> AsyncIterator[Sequence[ImportRequest]]:
    """``requests`` :data:`SUBMIT_CHUNK` at a time; a manifest's chunks are read and parsed in a
    worker thread (tens of milliseconds each), not on the event loop the lanes share."""
    if isinstance(requests, CheckedManifest):
        chunks = requests.chunks(SUBMIT_CHUNK)
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            yield chunk
    else:
        for start in range(0, len(requests), SUBMIT_CHUNK):
            yield requests[start : start + SUBMIT_CHUNK]


async def read_results(
    journal: JournalSpec, row_ids: Sequence[int], *, region: str | None = None
) -> AsyncIterator[list[RowResult]]:
    """The results of ``row_ids`` (an :class:`ImportOutcome`'s), in order, read back from the
    journal a page at a time, opened read-only; ``region`` is the Region of a ``dynamodb://``
    journal that names none."""
    async with opened_journal(journal, region=region, read_only=True) as opened:
        page = _importer.RESULTS_PAGE
        for start in range(0, len(row_ids), page):
            yield await opened.results(row_ids[start : start + page])


async def _stop_when_set(stop: anyio.Event, imp: Importer) -> None:
    await stop.wait()
    imp.stop()


async def plan_import(
    requests: Sequence[ImportRequest],
    *,
    region: str | None,
    settings: ImporterSettings | None = None,
    gateway: OmicsGateway | None = None,
) -> list[StorePlan]:
    """The dry run: which names each store has already, how many jobs the rest take; sends no
    Start and touches no user journal.

    Raises:
        RequestValidationError: a request is invalid.
        RefImportError: a store cannot be listed.
    """
    # A throw-away journal: the real one might hold unfinished work, which an Importer opened on
    # it would resume, and a dry run must not start anything.
    with tempfile.TemporaryDirectory(prefix="refimport-dry-run-") as tmp:
        async with Importer(
            Path(tmp) / "journal.sqlite", region=region, settings=settings, gateway=gateway
        ) as imp:
            return await imp.plan(requests)


def plan_document(plans: Sequence[StorePlan]) -> dict[str, Any]:
    """The JSON of ``refimport import --dry-run --json``."""
    stores = []
    for p in plans:
        store: dict[str, Any] = {
            "store_id": p.store.store_id,
            "region": p.store.region,
            "rows": p.rows,
            "already_present": sorted(p.already_present),
            "to_import": p.rows - len(p.already_present) - len(p.missing),
            "jobs": p.jobs,
        }
        if p.setup_error is not None:  # the store cannot be used as set up: nothing else known
            store["setup_error"] = {
                "kind": p.setup_error.kind,
                "message": p.setup_error.message,
                "fix": p.setup_error.fix,
            }
            store["to_import"] = 0
        if p.missing:  # rows the pre-flight found with no usable source
            store["missing_sources"] = [
                {"name": name, "reason": reason} for name, reason in sorted(p.missing.items())
            ]
        stores.append(store)
    return {"stores": stores}


# -- reporting ------------------------------------------------------------------------------------


def report_document(
    results: Sequence[RowResult], errors: Sequence[FieldError] = ()
) -> dict[str, Any]:
    """The document of ``refimport import --json`` and of a spool file's report (plus
    ``errors`` for an invalid manifest)."""
    doc = json_document(results)
    if errors:
        doc["errors"] = [field_error_dict(e) for e in errors]
    return doc


def row_document(result: RowResult) -> dict[str, Any]:
    """One row as the worker's HTTP API answers it: the report fields plus ``row_id``,
    ``region``, ``state``, ``final`` and ``attempts``."""
    item: dict[str, Any] = dict(report_item(result))
    item.update(
        row_id=result.row_id,
        region=result.region,
        state=result.state.value,
        final=result.state.is_final,
        attempts=result.attempts,
    )
    return item


async def write_journal_report(
    journal: JournalSpec, fmt: ReportFormat, out: TextIO, *, region: str | None = None
) -> None:
    """Write the report of a journal's rows to ``out`` in ``csv``, ``json`` or ``html`` (with
    the job timeline); ``region`` is the Region of a ``dynamodb://`` journal that names none.

    CSV and JSON are written a page of rows at a time (JSON reads the rows twice: its summary
    comes first), so a report of 10^6 rows never holds them all; HTML holds every row.
    """
    # Read-only: status and report never create, migrate or change a journal (nor adopt a
    # file that is not one).
    async with opened_journal(journal, region=region, read_only=True) as opened:
        if fmt == "html":
            out.write(render_html(await opened.results(), await opened.jobs()))
        elif fmt == "csv":
            first = True
            async for page in opened.iter_results():
                write_csv(page, out, header=first)
                first = False
            if first:
                write_csv((), out)  # the header alone
        else:
            tally = Tally(failures_kept=0)
            async for page in opened.iter_results():
                tally.add(page)
            writer = JsonReportWriter(out, tally.summary())
            async for page in opened.iter_results():
                writer.write(page)
            writer.close()


async def render_report(
    journal: JournalSpec, fmt: ReportFormat, *, region: str | None = None
) -> str:
    """The report of a journal's rows in ``csv``, ``json`` or ``html`` (with the job timeline),
    as one string (see :func:`write_journal_report` for a large journal).

    ``region`` is the Region of a ``dynamodb://`` journal that names none."""
    out = io.StringIO()
    await write_journal_report(journal, fmt, out, region=region)
    return out.getvalue()


@dataclass(slots=True)
class JournalStatus:
    """What a journal knows: rows per store and state, jobs still active, the last failures."""

    journal: str
    counts: dict[StoreRef, dict[RowState, int]]
    active_jobs: list[JobRecord]
    jobs: int
    last_errors: list[RowResult] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The JSON of ``refimport status --json``."""
        return {
            "journal": self.journal,
            "stores": [
                {
                    "store_id": store.store_id,
                    "region": store.region,
                    "endpoint_url": _shown_url(store.endpoint_url),
                    "profile": store.profile,
                    "counts": {s.value: states.get(s, 0) for s in RowState},
                    "total": sum(states.values()),
                }
                for store, states in self.counts.items()
            ],
            "active_jobs": [
                {
                    "store_id": job.store.store_id,
                    "region": job.store.region,
                    "job_id": job.job_id,
                    "client_token": job.client_token,
                    "state": job.state.value,
                    "status": job.status,
                    "written_at": job.written_at,
                    "started_at": job.started_at,
                }
                for job in self.active_jobs
            ],
            "jobs": self.jobs,
            "last_errors": [report_item(r) for r in self.last_errors],
        }


async def journal_status(
    journal: str | os.PathLike[str], *, region: str | None = None, last_errors: int = 10
) -> JournalStatus:
    """The status of the stores, read from a journal at rest (no HealthOmics call); ``region``
    is the Region of a ``dynamodb://`` journal that names none."""
    async with opened_journal(journal, region=region, read_only=True) as opened:
        jobs = await opened.jobs()
        counts = await opened.counts()
        failures: deque[RowResult] = deque(maxlen=last_errors)
        async for page in opened.iter_results():  # a page at a time: a journal may hold 10^6
            failures.extend(r for r in page if r.state is RowState.FAILED)
    return JournalStatus(
        journal=str(journal),
        counts=counts,
        active_jobs=[job for job in jobs if job.state is not JobState.DONE],
        jobs=len(jobs),
        last_errors=list(failures),
    )


def _shown_url(url: str | None) -> str | None:
    """An endpoint as a document shows it: never with its password (``http://***@host``)."""
    return None if url is None else redact_url(url)


def stores_document(status: ImporterStatus) -> dict[str, Any]:
    """The stores of a running Importer as JSON (the worker's ``GET /v1/stores``)."""
    return {
        "stores": [
            {
                "store_id": s.store.store_id,
                "region": s.store.region,
                "endpoint_url": _shown_url(s.store.endpoint_url),
                "queue_depth": s.queue_depth,
                "rows": {state.value: s.rows.get(state, 0) for state in RowState},
                "active_job": s.active_job,
                "idle": s.idle,
                "lease_holder": s.lease_holder,
                "held_here": s.held_here,
            }
            for s in status.stores
            if s.rows
        ]
    }
