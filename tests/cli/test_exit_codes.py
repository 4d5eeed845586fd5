"""The exit codes of ``refimport``, decided in one place each: an import run's outcome
(:func:`exit_code`), an error no command handled (:func:`exit_code_of_error`); and the closing
line that goes with each code (:func:`ending_message`). Pure functions, tested case by case."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.exceptions
import pytest

from async_refimport._application import ImportOutcome
from async_refimport._console import ExitCode
from async_refimport._errors import (
    FieldError,
    JournalError,
    ManifestError,
    RefImportError,
    SetupError,
)
from async_refimport._models import RowResult, RowState, StoreRef
from async_refimport._report import Tally
from async_refimport.cli import main as cli_main
from async_refimport.cli.main import exit_code_of_error
from async_refimport.cli.outcome import ending_message, exit_code, plan_exit_code
from async_refimport.engine.importer import StorePlan

JOURNAL = Path("/tmp/j.sqlite")


def rows(*states: RowState) -> Tally:
    return Tally.of(
        RowResult(i, "1234567890", "us-east-1", f"ref{i}", f"s3://b/ref{i}.fa", state)
        for i, state in enumerate(states)
    )


def outcome(
    *states: RowState,
    stopped: bool = False,
    setup_errors: tuple[SetupError, ...] = (),
    not_started: int = 0,
    not_journaled: int = 0,
    manifest_changed: ManifestError | None = None,
) -> ImportOutcome:
    return ImportOutcome(
        row_ids=list(range(len(states))),
        tally=rows(*states),
        stopped=stopped,
        setup_errors=setup_errors,
        not_started=not_started,
        not_journaled=not_journaled,
        manifest_changed=manifest_changed,
    )


def setup_error() -> SetupError:
    return SetupError(
        "no credentials",
        store_id="1234567890",
        region="us-east-1",
        kind="credentials",
        fix="set credentials",
    )


CHANGED = ManifestError([FieldError("file", "changed while being imported", None, "m.csv")])
DONE = (RowState.IMPORTED, RowState.ALREADY_PRESENT)


def test_the_codes_are_the_readmes() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0),
        ("FAILED_ROWS", 1),
        ("INVALID_INPUT", 2),
        ("SETUP", 3),
        ("INTERRUPTED", 130),
    ]
    page = Path(__file__).parents[2] / "docs" / "reference" / "exit-codes.md"
    table = page.read_text(encoding="utf-8").split("# Exit codes", 1)[1].split("\n#", 1)[0]
    documented = [
        int(line.split("|")[1]) for line in table.splitlines() if re.match(r"\| \d", line)
    ]
    assert documented == [int(c) for c in ExitCode]


@pytest.mark.parametrize(
    ("ended", "skipped", "code"),
    [
        (outcome(*DONE), 0, ExitCode.OK),
        (outcome(), 0, ExitCode.OK),
        (outcome(*DONE), 2, ExitCode.FAILED_ROWS),
        (outcome(RowState.IMPORTED, RowState.FAILED), 0, ExitCode.FAILED_ROWS),
        (outcome(RowState.QUEUED, stopped=True), 0, ExitCode.INTERRUPTED),
        (outcome(RowState.FAILED, stopped=True), 3, ExitCode.INTERRUPTED),
        (outcome(setup_errors=(setup_error(),), not_started=4), 0, ExitCode.SETUP),
        (outcome(RowState.FAILED, setup_errors=(setup_error(),)), 1, ExitCode.SETUP),
        # A run stopped before its stores' set-up was told: interrupted, not a set-up error.
        (outcome(setup_errors=(setup_error(),), stopped=True), 0, ExitCode.INTERRUPTED),
        # The manifest changed while read: a manifest error, whatever else happened.
        (
            outcome(RowState.FAILED, manifest_changed=CHANGED, not_journaled=3),
            1,
            ExitCode.INVALID_INPUT,
        ),
        (
            outcome(manifest_changed=CHANGED, stopped=True, setup_errors=(setup_error(),)),
            0,
            ExitCode.INVALID_INPUT,
        ),
    ],
)
def test_an_import_runs_exit_code(ended: ImportOutcome, skipped: int, code: ExitCode) -> None:
    assert exit_code(ended, skipped=skipped) is ExitCode(code)


def test_a_dry_runs_exit_code() -> None:
    store = StoreRef("1234567890", "us-east-1")
    fine = StorePlan(store, rows=3, already_present={}, jobs=1, missing={"ref1": "no object"})
    unusable = StorePlan(store, rows=3, already_present={}, jobs=0, setup_error=setup_error())
    assert plan_exit_code([]) is ExitCode.OK
    assert plan_exit_code([fine]) is ExitCode.OK  # a missing source would fail; none did
    assert plan_exit_code([fine, unusable]) is ExitCode.SETUP


def test_each_code_has_its_closing_line() -> None:
    failed = outcome(RowState.IMPORTED, RowState.FAILED)
    assert ending_message(ExitCode.OK, outcome(*DONE), JOURNAL) is None
    # Only skipped rows failed the run: the summary says so, nothing more is said.
    assert ending_message(ExitCode.FAILED_ROWS, outcome(*DONE), JOURNAL) is None
    assert ending_message(ExitCode.FAILED_ROWS, failed, JOURNAL) == (
        "[red]1 row(s) failed.[/] See `refimport report --journal /tmp/j.sqlite --format html "
        "-o report.html`; re-running the same command retries them."
    )
    stopped = outcome(RowState.QUEUED, RowState.IMPORTED, stopped=True, not_journaled=2)
    assert ending_message(ExitCode.INTERRUPTED, stopped, JOURNAL) == (
        "[yellow]Stopped with 3 row(s) unfinished.[/] Run the same command again to resume "
        "(journal: /tmp/j.sqlite)."
    )
    setup = outcome(setup_errors=(setup_error(),), not_started=4)
    assert ending_message(ExitCode.SETUP, setup, "dynamodb://t") == (
        "[yellow]4 row(s) not imported yet[/], none failed: fix the set-up, then run the same "
        "command again."
    )
    changed = outcome(manifest_changed=CHANGED, not_journaled=23)
    message = ending_message(ExitCode.INVALID_INPUT, changed, JOURNAL)
    assert message is not None and message.startswith("[yellow]23 row(s) not imported:[/]")


def test_a_journal_path_in_a_closing_line_is_not_markup() -> None:
    failed = outcome(RowState.FAILED)
    message = ending_message(ExitCode.FAILED_ROWS, failed, "/tmp/[bold]x")
    assert message is not None and "/tmp/\\[bold]x" in message


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (JournalError("journal /x: newer schema"), 2, "error: journal /x: newer schema"),
        (JournalError("locked"), 2, "error: journal: locked"),
        (setup_error(), 3, "error: store 1234567890 (us-east-1): no credentials"),
        (RefImportError("store [x] is odd"), 1, "error: store [x] is odd"),
        (
            botocore.exceptions.ProfileNotFound(profile="nope"),
            3,
            "error: The config profile (nope) could not be found: name a profile of "
            "~/.aws/config or ~/.aws/credentials (--profile or AWS_PROFILE)",
        ),
        (FileNotFoundError(2, "No such file or directory", "m.csv"), 2, "error: [Errno 2]"),
    ],
)
def test_an_error_no_command_handled_is_one_line_and_a_code(
    error: Exception, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code_of_error(error) is ExitCode(code)
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1


def test_any_other_error_is_raised_again() -> None:
    with pytest.raises(ValueError, match="not ours"):
        exit_code_of_error(ValueError("not ours"))


def test_every_command_is_a_module_with_a_parser_and_a_handler() -> None:
    for module in cli_main._COMMANDS:
        assert callable(module.add_parser) and module.__doc__
    parser = cli_main.build_parser()
    for argv, handler in [
        (["import", "m.csv"], "run"),
        (["status"], "run"),
        (["report"], "run"),
        (["journal", "init", "dynamodb://t"], "run_init"),
        (["events", "init", "--queue-name", "q"], "run_init"),
        (["demo"], "run"),
    ]:
        args = parser.parse_args(argv)
        assert args.handler.__name__ == handler
        assert (
            args.handler.__module__ == f"async_refimport.cli.{argv[0].replace('import', 'import_')}"
        )
