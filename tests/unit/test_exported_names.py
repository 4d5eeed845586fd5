"""The exported names' faces: their ``__module__`` is the package, the enums print as their values,
and the completion seam can be implemented from the public API alone."""

from __future__ import annotations

import inspect
import json
import pickle
import traceback
from pathlib import Path

import anyio

import async_refimport
from async_refimport import (
    CompletionWatcher,
    Importer,
    ImportRequest,
    JobSnapshot,
    OmicsGateway,
    RowState,
    SetupError,
    SetupKind,
    StoreRef,
)
from tests.helpers.fakes import FakeOmics
from tests.unit.test_importer_logic import FAST, requests


def test_every_exported_class_and_function_names_the_package_as_its_module() -> None:
    for name in async_refimport.__all__:
        obj = getattr(async_refimport, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "async_refimport", name


def test_a_traceback_shows_the_exported_name() -> None:
    error = SetupError("no", store_id="1234567890", region="us-east-1", kind="access", fix="fix")
    [line] = traceback.format_exception_only(error)
    assert line.startswith("async_refimport.SetupError: store 1234567890")
    assert repr(RowState.IMPORTED) == "<RowState.IMPORTED: 'IMPORTED'>"


def test_exported_values_still_pickle_through_the_package() -> None:
    store = StoreRef("1234567890", "us-east-1")
    assert pickle.loads(pickle.dumps(store)) == store
    assert pickle.loads(pickle.dumps(RowState.FAILED)) is RowState.FAILED
    assert pickle.loads(pickle.dumps(SetupKind.STORE)) is SetupKind.STORE


def test_setup_kind_is_an_enum_that_prints_and_serialises_as_before() -> None:
    error = SetupError("no", store_id="1234567890", region="us-east-1", kind="access", fix="fix")
    assert error.kind is SetupKind.ACCESS
    assert str(error.kind) == "access" and isinstance(error.kind, str)
    assert f"({error.kind})" == "(access)"
    assert json.dumps({"kind": error.kind}) == '{"kind": "access"}'
    assert {k.value for k in SetupKind} == {
        "credentials",
        "access",
        "store",
        "endpoint",
        "service",
        "staging",
    }


class GetUntilFinal:
    """A completion watcher written from the exported names only, as a stranger would."""

    def __init__(self, gateway: OmicsGateway) -> None:
        self.gateway = gateway
        self.waits = 0

    async def wait(
        self, store: StoreRef, job_id: str, sources: int, started: float, size: int | None = None
    ) -> JobSnapshot:
        self.waits += 1
        while True:
            snapshot = await self.gateway.get_import(store, job_id)
            if snapshot.done:
                return snapshot
            await anyio.sleep(0.001)


async def test_an_importer_takes_a_watcher_written_against_the_protocol(
    journal_path: Path,
) -> None:
    fake = FakeOmics(polls_to_finish=2)
    watcher = GetUntilFinal(fake)
    checked: CompletionWatcher = watcher  # the protocol is all it needs to satisfy
    async with Importer(journal_path, gateway=fake, settings=FAST, watcher=checked) as imp:
        batch: list[ImportRequest] = requests(3)
        results = await imp.wait(await imp.submit(batch))
    assert {r.state for r in results} == {RowState.IMPORTED}
    assert watcher.waits == 1
