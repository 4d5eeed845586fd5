"""MkDocs hook: the pages may link to (and include) any file of the repository.

The pages are read in two places: on the repository's web view, where ``../examples/app.py``
is a file beside ``docs/``, and on the built site, where only ``docs/`` exists. So a page links
to a repository file by its relative path, as the README does, and this hook copies each file
linked that way to ``repo/<its path>`` in the site and rewrites the link to it. Markdown files
linked that way (the emulator's README) become pages of their own, and their links are followed
in turn. ``<!-- include: PATH -->`` on a line of its own puts a repository Markdown file into the
page (the deployment kit's README), its links rebased. A link to a file that does not exist is
left alone, so ``mkdocs build --strict`` fails on it as on any broken link.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

# ](target) of an inline Markdown link or image; the anchor and a title are kept apart.
LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?P<rest>[^)]*)\)")
INCLUDE = re.compile(r"^<!-- include: (?P<target>\S+) -->$", re.M)
PREFIX = "repo"


def _dirs(config: Any) -> tuple[Path, Path]:
    """The repository (the directory of ``mkdocs.yml``) and the docs directory."""
    root = Path(config["config_file_path"]).parent.resolve()
    return root, Path(config["docs_dir"]).resolve()


def _resolve(source: Path, target: str, root: Path) -> Path | None:
    """The repository file a relative link of ``source`` points at, or None."""
    if "://" in target or target.startswith(("/", "mailto:")):
        return None
    path = (source.parent / target).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _site_uri(path: Path, root: Path, docs: Path) -> str:
    """Where a repository file is in the site: a page of ``docs/``, or its copy in ``repo/``."""
    if path.is_relative_to(docs):
        return path.relative_to(docs).as_posix()
    return f"{PREFIX}/{path.relative_to(root).as_posix()}"


def on_files(files: Files, config: Any) -> Files:
    """Add every repository file outside ``docs/`` that a page links to, transitively.

    Args:
        files: The documentation files MkDocs found.
        config: The MkDocs configuration.

    Returns:
        The same collection, with the linked repository files added under ``repo/``.
    """
    root, docs = _dirs(config)
    return _scan(files, config, root, docs)


def _scan(files: Files, config: Any, root: Path, docs: Path) -> Files:
    """The walk of :func:`on_files`: linked files copied, linked and included Markdown read."""
    seen: set[Path] = set()
    todo = [Path(f.abs_src_path) for f in files if f.is_documentation_page() and f.abs_src_path]
    scanned: set[Path] = set()
    while todo:
        page = todo.pop()
        if page in scanned:
            continue
        scanned.add(page)
        text = page.read_text(encoding="utf-8")
        for match in INCLUDE.finditer(text):
            included = _resolve(page, match["target"], root)
            if included is not None:
                todo.append(included)
        for match in LINK.finditer(text):
            path = _resolve(page, match["target"], root)
            if path is None or path.is_relative_to(docs) or path in seen:
                continue
            seen.add(path)
            files.append(
                File.generated(config, _site_uri(path, root, docs), abs_src_path=str(path))
            )
            if path.suffix == ".md":
                todo.append(path)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Expand a page's includes and point its links at the files' places in the site.

    Args:
        markdown: The page's Markdown.
        page: The page being built.
        config: The MkDocs configuration.
        files: Every file of the site.

    Returns:
        The Markdown, includes expanded, links leaving ``docs/`` rewritten to ``repo/<path>``.
    """
    root, docs = _dirs(config)
    here = posixpath.dirname(page.file.src_uri) or "."

    def rebase(text: str, source: Path) -> str:
        def rewrite(match: re.Match[str]) -> str:
            path = _resolve(source, match["target"], root)
            if path is None or (source.is_relative_to(docs) and path.is_relative_to(docs)):
                return match[0]
            return f"]({posixpath.relpath(_site_uri(path, root, docs), here)}{match['rest']})"

        return LINK.sub(rewrite, text)

    source = Path(page.file.abs_src_path)

    def include(match: re.Match[str]) -> str:
        path = _resolve(source, match["target"], root)
        if path is None:
            return match[0]  # left as it is: the test of the docs names the missing file
        return rebase(path.read_text(encoding="utf-8"), path)

    return INCLUDE.sub(include, rebase(markdown, source))
