"""The suite's own shape: what tests share lives in the ``tests.helpers`` package and is imported
from there; a conftest module holds fixtures only, and no test imports from one."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_no_test_imports_from_a_conftest_module() -> None:
    offenders = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and "conftest" in node.module:
                offenders.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert offenders == []


def test_conftest_modules_define_fixtures_and_hooks_only() -> None:
    for path in TESTS.rglob("conftest.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                decorators = [ast.unparse(d) for d in node.decorator_list]
                hook = node.name.startswith("pytest_")
                assert hook or any("fixture" in d for d in decorators), (path, node.name)
