"""The Journal seam (``journal/base.py``) is a contract a stranger could implement: every method of
every role documents its guarantee, both journals implement every role, and the record types and
roles are public."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import async_refimport
from async_refimport.journal import base, outbox_of, staging_of
from async_refimport.journal.dynamo import DynamoJournal
from async_refimport.journal.sqlite import SQLiteJournal

ROLES = (
    base.JournalLifecycle,
    base.RowQueue,
    base.JobLog,
    base.StoreLeases,
    base.JournalReader,
    base.Outbox,
    base.StagingQueue,
)
# Optional roles: a user's journal need not keep them (the engine asks with isinstance).
OPTIONAL = (base.Outbox, base.StagingQueue)
# Words that state a guarantee: what a call is atomic with, what fences it, whether a repeat is
# harmless, or that it only reads.
GUARANTEES = ("atomic", "idempotent", "fenced", "read-only", "reads")
BASE = Path(base.__file__)


def methods(role: type) -> list[str]:
    return [
        name
        for name, value in vars(role).items()
        if not name.startswith("_") and inspect.isfunction(value)
    ]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.__name__)
def test_every_method_of_a_role_states_its_guarantee(role: type) -> None:
    names = methods(role)
    assert names, role
    for name in names:
        doc = inspect.getdoc(getattr(role, name)) or ""
        assert any(word in doc.lower() for word in GUARANTEES), f"{role.__name__}.{name}: {doc!r}"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.__name__)
def test_every_method_of_a_role_says_what_it_raises(role: type) -> None:
    for name in methods(role):
        if name == "aclose":
            continue  # closing never fails
        doc = inspect.getdoc(getattr(role, name)) or ""
        assert "Raises:" in doc, f"{role.__name__}.{name}"


def test_journal_is_the_union_of_the_roles_the_engine_needs() -> None:
    needed = set().union(*(methods(r) for r in ROLES if r not in OPTIONAL))
    assert {m for m in dir(base.Journal) if not m.startswith("_")} >= needed
    # The outbox and the staging rows are roles of their own: a user's journal need not keep them.
    for role in OPTIONAL:
        assert not set(methods(role)) & {m for m in dir(base.Journal)}, role


@pytest.mark.parametrize("journal", [SQLiteJournal, DynamoJournal], ids=lambda j: j.__name__)
def test_both_journals_implement_every_role(journal: type) -> None:
    # DynamoDB keeps no staging rows (yet): a run on it refuses sources that need staging.
    for role in ROLES if journal is SQLiteJournal else ROLES[:-1]:
        for name in methods(role):
            method = getattr(journal, name)
            assert inspect.getdoc(method), f"{journal.__name__}.{name} has no docstring"
            ours = inspect.signature(method).parameters
            theirs = inspect.signature(getattr(role, name)).parameters
            assert list(ours) == list(theirs), f"{journal.__name__}.{name}"


def test_outbox_of_refuses_a_journal_without_one() -> None:
    class NoOutbox:
        pass

    with pytest.raises(TypeError, match="keeps no outbox"):
        outbox_of(NoOutbox())  # type: ignore[arg-type]
    journal = SQLiteJournal("unused.sqlite")
    assert outbox_of(journal) is journal


def test_staging_of_is_none_for_a_journal_without_staging_rows() -> None:
    class NoStaging:
        pass

    assert staging_of(NoStaging()) is None  # type: ignore[arg-type]
    journal = SQLiteJournal("unused.sqlite")
    assert staging_of(journal) is journal
    assert staging_of(DynamoJournal("unused", region="us-east-1")) is None


def test_the_seam_is_interface_only() -> None:
    # base imports neither journal (nor the AWS SDK): an implementation depends on it, never
    # the other way round.
    tree = ast.parse(BASE.read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {m for m in imported if "sqlite" in m or "dynamo" in m or "boto" in m}


def test_the_seam_is_public() -> None:
    for name in base.__all__:
        assert getattr(async_refimport, name) is getattr(base, name), name
        assert name in async_refimport.__all__, name
    assert "default_journal_path" not in async_refimport.__all__


def test_final_job_statuses_are_stored_as_their_strings() -> None:
    assert str(base.FinalJobStatus.COMPLETED_WITH_FAILURES) == "COMPLETED_WITH_FAILURES"
    assert base.FinalJobStatus("LOST") is base.FinalJobStatus.LOST
