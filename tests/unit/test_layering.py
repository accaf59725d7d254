"""The dependency rules of ARCHITECTURE.md, checked on the import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


RULES = [
    ("gateway/domain", ("gateway.", "adapters")),
    ("adapters", ("gateway.api", "gateway.services", "gateway.store", "gateway.app")),
    ("gateway/services", ("gateway.api", "gateway.app")),
    ("gateway/iso20022", ("gateway.api", "gateway.services", "gateway.store", "gateway.app")),
    ("gateway/store", ("gateway.api", "gateway.services", "gateway.app")),
]


@pytest.mark.parametrize(("package", "forbidden"), RULES)
def test_dependency_direction(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for path in _modules(package):
        for name in _imports(path):
            if package == "gateway/domain" and name.startswith("gateway.domain"):
                continue
            if name.startswith(forbidden):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []
