"""The worker's spool directory: manifests dropped into ``incoming/`` are imported, then filed.

Layout (every directory is created on start)::

    SPOOL/incoming/     drop manifests here, atomically (write ``.NAME.tmp``, then rename)
    SPOOL/processing/   picked up; rows journaled under submission id ``spool:NAME``
    SPOOL/done/         every row IMPORTED or ALREADY_PRESENT, with ``NAME.report.json``
    SPOOL/failed/       some row FAILED, or the manifest was invalid, with ``NAME.report.json``

Only complete files are picked up: names starting with ``.`` or ending in ``.tmp``, ``.part`` or
``~`` are ignored, and a file must look the same (size and mtime) on two consecutive scans.

The state survives restarts: a file still in ``processing/`` when the worker starts is resumed.
Its row ids were saved next to it (``.NAME.ids.json``) right after they were journaled; without
that file the manifest is submitted again, which the journal makes idempotent (one row per store
and name). The report is written before the manifest is moved, so a crash in between at worst
writes the report again.

Names that would not fit the file system with those suffixes (a manifest name near 255 bytes)
get shorter side files (``.HASH.ids.json``) and are filed as ``STEM~HASH.EXT``; names that are not
UTF-8 are carried as they are and shown (logs, submission id) with ``\\xNN`` escapes. A file the
worker cannot move (another user's file in a sticky ``incoming/``, a ``processing/`` it cannot
write) is left where it is, said once, and tried again on later scans: the other files and
intakes go on.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog
from anyio.abc import TaskGroup

from async_refimport._application import read_whole_manifest, report_document, with_region
from async_refimport._errors import (
    FieldError,
    ImporterClosedError,
    JournalError,
    ManifestError,
    RequestValidationError,
)
from async_refimport._log import get_logger
from async_refimport._models import ImportRequest
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults

log = get_logger(__name__)


class SpoolDestination(StrEnum):
    """Where a manifest is filed once every row is final (the name of its directory)."""

    #: Every row IMPORTED or ALREADY_PRESENT.
    DONE = "done"
    #: Some row FAILED, or the manifest was invalid.
    FAILED = "failed"


#: The spool's directories, created on start.
SUBDIRS = ("incoming", "processing", SpoolDestination.DONE.value, SpoolDestination.FAILED.value)
_IGNORED_SUFFIXES = (".tmp", ".part", ".partial", "~", ".swp")


def _write_atomic(path: Path, data: str) -> None:
    """Write ``data`` to a hidden temporary file, sync it, and rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


#: The longest file name (bytes) most file systems take.
NAME_MAX = 255
#: The longest suffix a shortened name keeps (bytes).
_SUFFIX_MAX = 20
#: What the spool adds to a filed name: ``.NAME.report.json.tmp`` and ``.N`` for a name taken.
_FILING_ROOM = len(b"..report.json.tmp") + len(b".9999")


def shown_name(name: str) -> str:
    """A file name as text that can be logged and journaled.

    Args:
        name: A name as :func:`os.scandir` gives it (bytes that are not UTF-8 as surrogates).

    Returns:
        The name, each byte that is not UTF-8 shown as ``\\xNN`` (UTF-8 names unchanged).
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _fits(name: str) -> bool:
    return len(os.fsencode(name)) <= NAME_MAX


def _digest(name: str) -> str:
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:16]


def ids_name(name: str) -> str:
    """The name of the side file holding a manifest's row ids.

    Args:
        name: The manifest's name.

    Returns:
        ``.NAME.ids.json``, or ``.HASH.ids.json`` when that (written as ``...tmp``) is too long.
    """
    full = f".{name}.ids.json"
    return full if _fits(f".{full}.tmp") else f".{_digest(name)}.ids.json"


def filed_name(name: str) -> str:
    """The name a manifest is filed under, short enough for its report beside it.

    Args:
        name: The manifest's name.

    Returns:
        ``name``, or ``STEM~HASH.EXT`` cut to fit ``.NAME.report.json.tmp`` in :data:`NAME_MAX`.
    """
    raw = os.fsencode(name)
    if len(raw) + _FILING_ROOM <= NAME_MAX:
        return name
    suffix = os.fsencode(Path(name).suffix)[:_SUFFIX_MAX]
    tag = f"~{_digest(name)}".encode()
    room = NAME_MAX - _FILING_ROOM - len(tag) - len(suffix)
    return os.fsdecode(raw[: len(raw) - len(suffix)][:room] + tag + suffix)


def _cannot_write(exc: BaseException) -> bool:
    """The journal or the spool's own files cannot be written (a full disk, a quota)."""
    if isinstance(exc, JournalError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _free_name(directory: Path, name: str) -> str:
    """``name``, or ``stem.N.ext`` when a file (or its report) of that name was filed there already."""
    path = Path(name)
    candidate, n = name, 1
    while (directory / candidate).exists() or (directory / f"{candidate}.report.json").exists():
        candidate = f"{path.stem}.{n}{path.suffix}"
        n += 1
    return candidate


# -- the spool ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpoolOutcome:
    """A manifest was filed: where, and its report's summary.

    Attributes:
        name: The name it was filed under (``stem.N.ext`` when the name was taken).
        destination: Its directory.
        summary: Its report's summary (rows by outcome).
    """

    name: str
    destination: SpoolDestination
    summary: Mapping[str, int]


class Spool:
    """Watches ``DIR/incoming/`` and carries each manifest through to ``done/`` or ``failed/``.

    Args:
        root: The spool directory.
        importer: The open Importer rows are submitted to.
        defaults: Field values for rows that leave them out.
        scan_interval: Seconds between scans of ``incoming/``.
        on_filed: Called when a manifest is filed (metrics).
        retry_interval: Seconds before a file that hit an unexpected error is tried again.
        max_in_flight: Files carried at once; more wait in ``incoming/``.
    """

    def __init__(
        self,
        root: Path,
        importer: Importer,
        defaults: ManifestDefaults,
        *,
        scan_interval: float = 0.5,
        on_filed: Callable[[SpoolOutcome], None] | None = None,
        retry_interval: float = 5.0,
        max_in_flight: int = 200,
    ) -> None:
        self.root = root
        self.importer = importer
        self.defaults = defaults
        self.scan_interval = scan_interval
        self.retry_interval = retry_interval
        # Each file in flight awaits its rows through one event subscription: bound them, and
        # leave the rest in incoming/ (the journal packs rows across files anyway).
        self.max_in_flight = max_in_flight
        self._on_filed = on_filed
        self._in_flight: set[str] = set()
        self._seen: dict[str, tuple[int, int]] = {}
        self._ignored: set[str] = set()
        #: Troubles said already (a file that cannot be moved, a directory that cannot be read).
        self._said: set[str] = set()
        self.running = False
        self.dirs = {name: root / name for name in SUBDIRS}

    @property
    def ready(self) -> bool:
        """Scanning ``incoming/``."""
        return self.running

    def describe(self) -> dict[str, Any]:
        """What the worker announces about this intake."""
        return {"spool": str(self.root)}

    @property
    def in_flight(self) -> int:
        """Manifests picked up and not yet filed."""
        return len(self._in_flight)

    def prepare(self) -> None:
        """Create the spool's directories (those that do not exist)."""
        for directory in self.dirs.values():
            directory.mkdir(parents=True, exist_ok=True)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Resume ``processing/``, then scan ``incoming/`` until cancelled.

        Args:
            task_status: Told once the files left in ``processing/`` are resumed and scanning
                starts.
        """
        await anyio.to_thread.run_sync(self.prepare)
        async with anyio.create_task_group() as tg:
            resumed = await self._resume(tg)
            self.running = True
            task_status.started()
            try:
                while True:
                    resumed = resumed or await self._resume(tg)
                    try:
                        await self._scan(tg)
                    except OSError as exc:
                        # incoming/ cannot be listed now (permissions, no descriptors left):
                        # the other intakes go on, and so does the next scan.
                        self._say_once("scan", "spool.cannot_scan", error=str(exc))
                    else:
                        self._said.discard("scan")
                    await anyio.sleep(self.scan_interval)
            finally:
                self.running = False

    async def _resume(self, tg: TaskGroup) -> bool:
        """Carry on with the files left in ``processing/``; False if it cannot be listed now."""
        try:
            left = await anyio.to_thread.run_sync(self._listing, self.dirs["processing"])
        except OSError as exc:
            self._say_once("resume", "spool.cannot_resume", error=str(exc))
            return False
        for path in left:
            log.info("spool.resuming", file=shown_name(path.name))
            self._in_flight.add(path.name)
            tg.start_soon(self._process, path, True, name=f"spool {shown_name(path.name)}")
        return True

    def _say_once(self, key: str, event: str, **fields: Any) -> None:
        """A warning said once until the trouble it names is over (``key`` discarded)."""
        if key not in self._said:
            self._said.add(key)
            log.warning(event, **fields, retry="on every scan")

    def _listing(self, directory: Path) -> list[Path]:
        out = []
        with os.scandir(directory) as it:
            for entry in it:
                name = entry.name
                if name.startswith(".") or name.endswith(_IGNORED_SUFFIXES):
                    continue
                if name.endswith(".report.json"):
                    continue
                # Never followed: a symlink could point anywhere outside the spool.
                if not entry.is_file(follow_symlinks=False):
                    self._ignore_once(entry)
                    continue
                out.append(Path(entry.path))
        return sorted(out)

    def _ignore_once(self, entry: os.DirEntry[str]) -> None:
        """Say once (per name) why something in the spool is left alone."""
        if entry.path in self._ignored:
            return
        self._ignored.add(entry.path)
        if entry.is_symlink():
            kind = "a symbolic link (never followed)"
        elif entry.is_dir(follow_symlinks=False):
            kind = "a directory"
        else:
            kind = "not a regular file (a FIFO, socket or device)"
        log.warning(
            "spool.ignored",
            file=shown_name(entry.name),
            reason=f"{kind}: only regular files are read",
        )

    def _stable(self, paths: list[Path]) -> list[Path]:
        """Files that looked the same on the previous scan (a non-atomic writer is done)."""
        ready: list[Path] = []
        seen: dict[str, tuple[int, int]] = {}
        for path in paths:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            mark = (st.st_size, st.st_mtime_ns)
            seen[path.name] = mark
            if self._seen.get(path.name) == mark:
                ready.append(path)
        self._seen = seen
        return ready

    async def _scan(self, tg: TaskGroup) -> None:
        if self.importer.stopping:
            return
        listing = await anyio.to_thread.run_sync(self._listing, self.dirs["incoming"])
        for path in await anyio.to_thread.run_sync(self._stable, listing):
            if len(self._in_flight) >= self.max_in_flight:
                break
            if path.name in self._in_flight:
                continue  # a file of that name is still being imported; take this one after
            target = self.dirs["processing"] / path.name
            try:
                await anyio.to_thread.run_sync(os.rename, path, target)
            except FileNotFoundError:
                continue  # someone else took it
            except OSError as exc:
                # Another user's file in a sticky incoming/, a processing/ this user cannot
                # write: leave it, say so once, and try again on the next scans.
                key = f"move:{path.name}"
                self._say_once(
                    key, "spool.cannot_pick_up", file=shown_name(path.name), error=str(exc)
                )
                continue
            self._said.discard(f"move:{path.name}")
            self._seen.pop(path.name, None)
            log.info("spool.picked_up", file=shown_name(path.name))
            self._in_flight.add(path.name)
            tg.start_soon(self._process, target, False, name=f"spool {shown_name(path.name)}")

    def _ids_path(self, path: Path) -> Path:
        return path.with_name(ids_name(path.name))

    async def _process(self, path: Path, resumed: bool) -> None:
        with structlog.contextvars.bound_contextvars(spool_file=shown_name(path.name)):
            try:
                said = False
                while True:
                    try:
                        await self._carry(path, resumed)
                        return
                    except ImporterClosedError:
                        log.info("spool.left_for_next_start")
                        return
                    except Exception as exc:
                        # One bad file must never stop the worker: log, and try it again later.
                        if isinstance(exc, OSError) and not _cannot_write(exc):
                            # A file that cannot be moved (permissions): no traceback to show,
                            # and said once, not at every try.
                            if not said:
                                log.warning("spool.cannot_move", error=str(exc))
                                said = True
                        elif not _cannot_write(exc):
                            log.exception("spool.file_error", error=str(exc))
                        elif not said:
                            # A full disk, a journal that cannot be written: nothing is wrong
                            # with the file and there is no traceback to show. Said once; the
                            # file waits in processing/ until space is back.
                            log.warning("spool.cannot_write", error=str(exc))
                            said = True
                    if self.importer.stopping:
                        return
                    if not await anyio.to_thread.run_sync(path.exists):
                        log.warning("spool.file_vanished")  # removed by hand: nothing to file
                        return
                    await anyio.sleep(self.retry_interval)
                    resumed = True
            finally:
                self._in_flight.discard(path.name)

    async def _carry(self, path: Path, resumed: bool) -> None:
        imp = self.importer
        ids: list[int] | None = None
        ids_path = self._ids_path(path)
        if resumed:
            ids = await anyio.to_thread.run_sync(_read_ids, ids_path)
        if ids is None:
            try:
                defaults = with_region(self.defaults, imp.region)
                requests = await anyio.to_thread.run_sync(_read_regular, path, defaults)
            except ManifestError as exc:
                log.warning("spool.invalid_manifest", errors=len(exc.errors))
                await self._file(path, SpoolDestination.FAILED, report_document([], exc.errors))
                return
            except Exception as exc:
                # Whatever else keeps a file from being read (nesting too deep for the parser,
                # an encoding, ...) will fail again on every try: file it, with the reason.
                reason = f"cannot be read: {type(exc).__name__}: {exc}"[:500]
                log.warning("spool.unreadable_manifest", reason=reason)
                error = FieldError("file", reason, None, path.name)
                await self._file(path, SpoolDestination.FAILED, report_document([], [error]))
                return
            try:
                ids = await imp.submit(requests, submission=f"spool:{shown_name(path.name)}")
            except RequestValidationError as exc:
                await self._file(path, SpoolDestination.FAILED, report_document([], exc.errors))
                return
            await anyio.to_thread.run_sync(
                _write_atomic, ids_path, json.dumps({"ids": ids, "at": time.time()})
            )
            log.info("spool.submitted", rows=len(ids))
        results = await imp.wait(ids)
        if len(results) != len(ids) or not all(r.state.is_final for r in results):
            if imp.stopping:
                return  # resumed on the next start
            if len(results) != len(ids):
                # Rows were compacted away (the file sat in processing/ past the retention):
                # submit again; the journal keeps it idempotent.
                await anyio.to_thread.run_sync(_unlink, ids_path)
                await self._carry(path, resumed=False)
            return
        ok = all(r.ok for r in results)
        destination = SpoolDestination.DONE if ok else SpoolDestination.FAILED
        await self._file(path, destination, report_document(results))

    async def _file(
        self, path: Path, destination: SpoolDestination, report: dict[str, Any]
    ) -> None:
        directory = self.dirs[destination]

        def move() -> str:
            name = _free_name(directory, filed_name(path.name))
            _write_atomic(directory / f"{name}.report.json", json.dumps(report, indent=2) + "\n")
            os.rename(path, directory / name)
            _unlink(self._ids_path(path))
            return name

        name = await anyio.to_thread.run_sync(move)
        log.info("spool.filed", destination=destination.value, **report["summary"])
        if self._on_filed is not None:
            self._on_filed(SpoolOutcome(name, destination, report["summary"]))


def _read_regular(path: Path, defaults: ManifestDefaults) -> list[ImportRequest]:
    # The file was moved into processing/ after it was listed: check again that it is a regular
    # file, so a symlink swapped in meanwhile is never followed.
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise ManifestError([FieldError("file", "not a regular file", None, path.name)])
    return read_whole_manifest(path, defaults)


def _read_ids(path: Path) -> list[int] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ids = doc.get("ids") if isinstance(doc, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        return None
    return ids


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
