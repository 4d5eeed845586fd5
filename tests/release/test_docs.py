"""The docs site (``mkdocs.yml``, ``make docs``) as a reader finds their way in it: every section
of the old one-page README has a page, every public name an API entry, every metric the worker
exports a line, and the site builds with ``--strict`` (a broken link, a page left out of the nav
or an API reference that does not resolve fails it)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import async_refimport

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "async_refimport"

# Every `##` and `###` heading of the README before it became a landing page, and the page that
# holds the section now (under the same heading, so old anchors keep their words).
OLD_README = {
    "Two commands": "index.md",
    "A manifest": "reference/manifest.md",
    "Using it against AWS": "guides/bulk-import.md",
    "Options of `refimport import`": "reference/cli.md",
    "Exit codes": "reference/exit-codes.md",
    "Set-up mistakes": "guides/bulk-import.md",
    "How resume works": "guides/bulk-import.md",
    "What each row ends as": "reference/outcomes.md",
    "What AWS does not document, and what we do about it": "reference/undocumented.md",
    "Job status events: notice the moment a job ends": "guides/events.md",
    "Cold and warm start": "guides/events.md",
    "Sources checked before they are sent": "guides/bulk-import.md",
    "Shell completion": "reference/cli.md",
    "The library in ten lines": "guides/library.md",
    "The long-lived worker": "guides/worker.md",
    "Running as a fleet: the DynamoDB journal": "guides/fleet.md",
    "Feeding a fleet through SQS": "guides/fleet.md",
    "Performance": "reference/performance.md",
    "The emulator": "guides/emulator.md",
    "Your code and the emulator in one process": "guides/emulator.md",
    "How it works": "reference/modules.md",
    "How the promise is tested": "reference/testing.md",
}

# The seams' interface modules and the public modules, rendered whole on their API pages.
API_MODULES = {
    "async_refimport.journal.base",
    "async_refimport.gateway.base",
    "async_refimport.completion.base",
    "async_refimport.testing",
    "async_refimport.emulator",
}

METRIC = re.compile(
    r"\b(?:Counter|Gauge|Histogram|Summary|Info|Enum|\w+MetricFamily)\(\s*\"(refimport_\w+)\""
)


def headings(page: Path) -> set[str]:
    """The headings of a Markdown page, outside fenced code."""
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.+)", line)):
            found.add(m[1].strip())
    return found


def api_directives() -> set[str]:
    """Every object the API pages render (``::: async_refimport.Importer``)."""
    return {
        m[1]
        for page in (DOCS / "api").glob("*.md")
        for m in re.finditer(r"^::: ([\w.]+)", page.read_text(), re.M)
    }


@pytest.mark.parametrize(("heading", "page"), OLD_README.items())
def test_every_section_of_the_old_readme_has_its_place(heading: str, page: str) -> None:
    assert heading in headings(DOCS / page), f"{page} has no section {heading!r}"


def test_every_public_name_has_an_api_entry() -> None:
    directives = api_directives()
    assert directives >= API_MODULES
    modules = [importlib.import_module(d) for d in directives & API_MODULES]
    missing = []
    for name in async_refimport.__all__:
        obj = getattr(async_refimport, name)
        rendered_whole = any(vars(m).get(name) is obj for m in modules)
        if f"async_refimport.{name}" not in directives and not rendered_whole:
            missing.append(name)
    assert missing == []


def test_every_metric_the_worker_exports_is_documented() -> None:
    names = {m[1] for p in PACKAGE.rglob("*.py") for m in METRIC.finditer(p.read_text())}
    assert "refimport_jobs_started" in names  # the pattern finds them
    page = (DOCS / "reference" / "metrics.md").read_text()
    assert sorted(n for n in names if f"`{n}`" not in page) == []


def test_every_page_is_in_the_nav_and_every_include_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r"^\s+- (?:[^:\n]+: )?([\w/.-]+\.md)$", config, re.M))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == nav
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"^<!-- include: (\S+) -->$", page.read_text(), re.M):
            assert (page.parent / target).is_file(), f"{page} includes {target}"


def test_the_readme_is_a_landing_page_that_links_every_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") < 200
    for line in ("$ make demo ", "$ make test ", "$ pipx install async-refimport "):
        assert line in readme, line
    assert "make dist" in readme and "pipx install dist/*.whl" in readme
    linked = set(re.findall(r"\]\((docs/[^)#]+)\)", readme))
    for page in [*(DOCS / "guides").glob("*.md"), *(DOCS / "reference").glob("*.md")]:
        assert page.relative_to(ROOT).as_posix() in linked, page


@pytest.mark.slow
def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    # Every command's --help is rendered from the parsers.
    for command in ("import", "status", "report", "worker", "emulator", "journal init"):
        assert f"refimport {command}</code>" in cli, command
    assert (tmp_path / "site" / "api" / "importer" / "index.html").is_file()
