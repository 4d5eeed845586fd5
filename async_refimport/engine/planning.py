"""Before any Start: every store's first call at once, and the dry run's plan of each store.

:meth:`Importer.verify_setup <async_refimport.Importer.verify_setup>` and
:meth:`Importer.plan <async_refimport.Importer.plan>` both begin with :func:`verify_stores`: one
ListReferences per store, all stores at once, each set-up mistake (credentials, access, store id,
endpoint) told as a :class:`~async_refimport.SetupError` (:mod:`.setup`). A dry run then plans each
usable store with :func:`plan_stores`: the names it already holds, the sources missing from S3, and
the jobs the rest need. Neither sends a Start nor journals anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence

import anyio

from async_refimport._errors import SetupError
from async_refimport._models import ImportRequest, StoreRef
from async_refimport._settings import ImporterSettings
from async_refimport.aws.preflight import Checked, Preflight
from async_refimport.engine.presence import held_references
from async_refimport.engine.setup import first_page
from async_refimport.engine.status import StorePlan, present_names, store_plan
from async_refimport.gateway.base import OmicsGateway, ReferencePage

__all__ = ["plan_stores", "verify_stores"]

_UNCHECKED = Checked()


async def verify_stores(
    gateway: OmicsGateway,
    stores: Iterable[StoreRef],
    *,
    answered: set[str],
    listed: MutableMapping[str, tuple[float, ReferencePage]],
    scopes: list[anyio.CancelScope],
    stopping: bool,
    settings: ImporterSettings,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    clock: Callable[[], float] = anyio.current_time,
) -> dict[str, SetupError]:
    """Make each store's first call (:func:`~.setup.first_page`), every store at once.

    Args:
        gateway: The HealthOmics seam.
        stores: The stores, each once.
        answered: The keys of the stores whose requests were answered at least once: read by
            the set-up bound, and each usable store's key added.
        listed: Each usable store's first page is put here by its key, with the ``clock`` time
            it was read (for its lane, which then needs no second call).
        scopes: The cancel scopes stopped with the lanes: the check's own is in it while it
            runs, so that one Ctrl-C ends a first call that keeps failing (nothing sent).
        stopping: The caller is stopping already (the check is cancelled at once).
        settings: The knobs read: ``setup_timeout`` (how long a first page may go without any
            answer) and ``busy_wait`` (between tries when the gateway's own retries ran out).
        sleep: Async sleep (injectable).
        clock: Monotonic seconds (injectable); anyio's clock by default.

    Returns:
        The set-up errors by store key (those found so far, if cancelled).
    """
    problems: dict[str, SetupError] = {}

    async def check(store: StoreRef) -> None:
        try:
            page = await first_page(
                gateway,
                store,
                setup_timeout=settings.setup_timeout,
                retry_wait=settings.busy_wait,
                answered=lambda store: store.key in answered,
                sleep=sleep,
                clock=clock,
            )
        except SetupError as exc:
            problems[store.key] = exc
        else:
            answered.add(store.key)
            listed[store.key] = (clock(), page)

    with anyio.CancelScope() as scope:
        scopes.append(scope)
        if stopping:
            scope.cancel()
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(check, store)
    scopes.remove(scope)
    return problems


async def plan_stores(
    gateway: OmicsGateway,
    resolved: Sequence[tuple[StoreRef, ImportRequest]],
    *,
    unusable: Mapping[str, SetupError],
    listed: MutableMapping[str, tuple[float, ReferencePage]],
    preflight: Preflight | None,
    new_preflight: Callable[[], Preflight] | None,
    settings: ImporterSettings,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> list[StorePlan]:
    """Each store's dry-run plan, in the order its first row comes, after :func:`verify_stores`.

    Args:
        gateway: The HealthOmics seam.
        resolved: The requests, each with its store.
        unusable: The stores that cannot be used as set up, by store key: planned with their
            ``setup_error`` and nothing else.
        listed: The first page of each usable store, by store key (taken out as it is used).
        preflight: The caller's check of the sources against S3, if it has one.
        new_preflight: Makes a check for this dry run when the caller has none (a dry run always
            checks the sources; closed before returning). None: the sources are not checked.
        settings: The knobs read: ``max_sources_per_job`` and ``busy_wait`` (between tries of a
            page whose gateway retries ran out).
        sleep: Async sleep (injectable).

    Returns:
        One plan per store.
    """
    own = new_preflight() if preflight is None and new_preflight is not None else None
    try:
        return await _plans(
            gateway,
            resolved,
            unusable,
            listed,
            preflight or own,
            settings,
            sleep,
        )
    finally:
        if own is not None:
            with anyio.CancelScope(shield=True):
                await own.aclose()


async def _plans(
    gateway: OmicsGateway,
    resolved: Sequence[tuple[StoreRef, ImportRequest]],
    unusable: Mapping[str, SetupError],
    listed: MutableMapping[str, tuple[float, ReferencePage]],
    preflight: Preflight | None,
    settings: ImporterSettings,
    sleep: Callable[[float], Awaitable[None]],
) -> list[StorePlan]:
    by_store: dict[str, tuple[StoreRef, list[ImportRequest]]] = {}
    for store, req in resolved:
        by_store.setdefault(store.key, (store, []))[1].append(req)
    plans: list[StorePlan] = []
    for store, reqs in by_store.values():
        if error := unusable.get(store.key):
            plans.append(StorePlan(store, len(reqs), {}, 0, setup_error=error))
            continue
        _, page = listed.pop(store.key)  # read by verify_stores just now
        names = [r.name for r in reqs]
        refs = await held_references(gateway, store, page, names, settings.busy_wait, sleep)
        present = present_names(refs, reqs)
        missing: dict[str, str] = {}
        if preflight is not None and preflight.applies(store):
            todo = [r for r in reqs if r.name not in present]
            found = await preflight.check((r.source_file, store.profile) for r in todo)
            missing = {
                r.name: reason
                for r in todo
                if (reason := found.get(r.source_file, _UNCHECKED).failure)
            }
        plans.append(store_plan(store, len(reqs), present, missing, settings.max_sources_per_job))
    return plans
