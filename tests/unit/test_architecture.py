"""docs/architecture.md's layer table is the import contract: the same layers in the same
order, the same modules in each, the same independence (pyproject's ``[tool.importlinter]``)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def contract_layers() -> list[tuple[list[str], bool]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [main] = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["type"] == "layers" and c["containers"] == ["async_refimport"]
    ]
    layers = []
    for layer in main["layers"]:
        names = [n.strip() for n in re.split(r"[|:]", layer)]
        layers.append((names, "|" in layer))
    return layers


def documented_layers() -> list[tuple[list[str], bool]]:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc[doc.index("<!-- layers:start -->") : doc.index("<!-- layers:end -->")]
    layers = []
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].isdigit():
            continue
        names = re.findall(r"`([\w.]+)`", cells[1])
        layers.append((names, cells[2] == "yes"))
    return layers


def test_the_documented_layers_are_the_contract() -> None:
    documented, contract = documented_layers(), contract_layers()
    assert [names for names, _ in documented] == [names for names, _ in contract]
    for (names, independent), (_, expected) in zip(documented, contract, strict=True):
        if len(names) > 1:
            assert independent == expected, names


def test_every_package_of_the_tree_is_described() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    tree = doc[doc.index("## The tree") : doc.index("## Layers")]
    package = ROOT / "async_refimport"
    for path in package.iterdir():
        if (path / "__init__.py").exists():
            assert f"  {path.name}/" in tree, path.name
