"""The shape of the package, held by tests: small modules and functions, no import cycle, and a
docstring on everything a user can reach from ``async_refimport`` and ``async_refimport.testing``.

The emulator (``async_refimport.emulator``) is a program of its own and is not measured here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import async_refimport

PACKAGE = Path(async_refimport.__file__).parent
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 60


def library_modules() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "emulator" not in path.relative_to(PACKAGE).parts:
            yield path


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_is_over_700_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in library_modules()
        if (n := p.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long: dict[str, int] = {}
    for path in library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"] = length
    assert long == {}


def imports_of(path: Path) -> set[str]:
    """The library modules ``path`` imports at module level (lazy imports in functions are how
    a cycle is broken on purpose, and are not counted)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        nodes = [node]
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports are not run
            continue
        for n in nodes:
            if isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                if n.module.startswith("async_refimport"):
                    found.add(n.module)
                    for alias in n.names:
                        found.add(f"{n.module}.{alias.name}")
            elif isinstance(n, ast.Import):
                found |= {a.name for a in n.names if a.name.startswith("async_refimport")}
    return found


def test_there_is_no_import_cycle() -> None:
    modules = {module_name(p): p for p in library_modules()}
    graph = {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    # A package's __init__ re-exporting its own modules is not a cycle of concepts.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def public_faces() -> Iterator[tuple[str, object]]:
    for face in ("async_refimport", "async_refimport.testing"):
        module = importlib.import_module(face)
        for name in module.__all__:
            yield f"{face}.{name}", getattr(module, name)


def own_members(cls: type) -> Iterator[tuple[str, object]]:
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__
        if inspect.isfunction(member) or isinstance(member, property):
            yield name, member


def own_doc(obj: object) -> str:
    """``obj``'s own docstring: not inherited, not the one dataclasses and enums write."""
    doc = (vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__) or ""
    name = getattr(obj, "__name__", "")
    if doc.startswith(f"{name}(") or doc == "An enumeration.":
        return ""
    return doc.strip()


def test_every_public_class_function_and_method_has_a_docstring() -> None:
    missing: list[str] = []
    for name, obj in public_faces():
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not own_doc(obj):
            missing.append(name)
        if inspect.isclass(obj) and obj.__module__.startswith("async_refimport"):
            for member_name, member in own_members(obj):
                if not (member.__doc__ or "").strip():
                    missing.append(f"{name}.{member_name}")
    assert missing == []
