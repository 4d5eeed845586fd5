"""The public face of the package, and the import contract that keeps its layers apart."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import async_refimport

ROOT = Path(__file__).parents[2]
# A design briefing the developers had beside the repository: nothing in it may cite it.
BRIEFING = "DESIGN" + ".md"
PACKAGE = ROOT / "async_refimport"


def test_all_is_sorted_and_complete() -> None:
    names = async_refimport.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(async_refimport, name), name
    public = {
        n
        for n, value in vars(async_refimport).items()
        if not n.startswith("_") and not isinstance(value, types.ModuleType)
    }
    # Every public attribute is either exported or a subpackage.
    assert public <= set(names)


def test_the_fake_gateway_and_its_value_types_are_public() -> None:
    import async_refimport.testing

    # The fake lives in `testing`, as structlog's and saq's do; the seam's types in the package.
    assert "MemoryGateway" in async_refimport.testing.__all__
    assert "MemoryGateway" not in async_refimport.__all__
    for name in (
        "OmicsGateway",
        "SourceSpec",
        "SourceStatus",
        "JobSnapshot",
        "JobSummary",
        "ExistingReference",
        "ImporterStatus",
    ):
        assert name in async_refimport.__all__


def test_library_never_configures_structlog_nor_logs_through_its_global_config() -> None:
    # Calls, not mentions in docstrings (``structlog.configure()``).
    call = re.compile(r"(?<!`)structlog\.(configure|get_logger)\(")
    for path in PACKAGE.rglob("*.py"):
        assert not call.search(path.read_text()), path


def lint_imports(
    tmp_path: Path, edit: tuple[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the project's import contracts on a copy of the package, with one line added."""
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "async_refimport", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    if edit is not None:
        module, line = edit
        target = copy / "async_refimport" / module
        target.write_text(target.read_text() + f"\n{line}\n")
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"],
        cwd=copy,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contract_holds() -> None:
    # `make test` runs the same check; this keeps it honest when only pytest runs.
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # shell to shell
        (
            "cli/main.py",
            "from async_refimport.worker import main",
            r"async_refimport\.cli\.main -> async_refimport\.worker",
        ),
        # the worker's intake reaching up into its shell
        (
            "worker/intakes/spool.py",
            "from async_refimport.worker import main",
            r"async_refimport\.worker\.intakes\.spool -> async_refimport\.worker\.main",
        ),
        # the engine reaching up into the application
        (
            "engine/importer.py",
            "from async_refimport import _application",
            r"async_refimport\.engine\.importer -> async_refimport\._application",
        ),
        # a seam reaching up into the engine
        (
            "journal/sqlite.py",
            "from async_refimport.engine import lane",
            r"async_refimport\.journal\.sqlite -> async_refimport\.engine\.lane",
        ),
    ],
)
def test_the_import_contract_fails_on_shell_to_shell_and_upward_imports(
    tmp_path: Path, module: str, line: str, expected: str
) -> None:
    proc = lint_imports(tmp_path, (module, line))
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout
    assert re.search(expected, proc.stdout), proc.stdout


def test_the_docs_module_table_matches_the_code() -> None:
    page = (ROOT / "docs" / "reference" / "modules.md").read_text()
    table = page[page.index("| module | concept |") :]
    table = table[: table.index("\n\n")]
    listed = set(re.findall(r"^\| `([\w/]+)` \|", table, re.M))
    modules = {
        p.relative_to(PACKAGE).with_suffix("").as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.stem != "__init__" and "emulator" not in p.parts
    }
    modules.add("emulator/")
    assert listed == modules


# Every page of the docs site too (docs/, and the deployment kit's README it includes).
DOCS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))


@pytest.mark.parametrize("doc", ["README.md", "examples/README.md", "deploy/README.md", *DOCS])
def test_docs_cite_only_files_that_exist(doc: str) -> None:
    path = ROOT / doc
    text = path.read_text()
    assert BRIEFING not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{doc} cites {target}"


def test_no_code_cites_a_briefing_outside_the_repository() -> None:
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        assert BRIEFING not in path.read_text(), path
