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


# A provider's sandbox is a second, independent reading of the provider's API: it must not
# borrow the adapter's code (or the adapter the sandbox's), or both could share one mistake.
SANDBOXES = [
    ("adapters/providers/gsma_mm_sandbox", "adapters.providers.gsma_mm"),
    ("adapters/providers/wechatpay_sandbox", "adapters.providers.wechatpay"),
    ("adapters/providers/alipay_sandbox", "adapters.providers.alipay"),
]
# What the sandboxes may share (plumbing that knows no provider API) and the adapters share
# (key loading): neither side may import the other's shared module.
SHARED = {
    "adapters.providers.sandbox_kit": "sandboxes",
    "adapters.providers.rsa_keys": "adapters",
}


@pytest.mark.parametrize(("sandbox", "adapter"), SANDBOXES)
def test_sandboxes_share_no_code_with_their_adapter(sandbox: str, adapter: str) -> None:
    sandbox_module = sandbox.replace("/", ".")
    offenders = []
    for path in _modules(sandbox):
        for name in _imports(path):
            if name == adapter or name.startswith(adapter + "."):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    for path in _modules(adapter.replace(".", "/")):
        for name in _imports(path):
            if name == sandbox_module or name.startswith(sandbox_module + "."):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_shared_modules_stay_on_their_side() -> None:
    offenders = []
    for sandbox, adapter in SANDBOXES:
        for path in _modules(sandbox):
            for name in _imports(path):
                if SHARED.get(name) == "adapters":
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
        for path in _modules(adapter.replace(".", "/")):
            for name in _imports(path):
                if SHARED.get(name) == "sandboxes":
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    for module, side in SHARED.items():
        path = ROOT / (module.replace(".", "/") + ".py")
        for name in _imports(path):
            if any(name.startswith(a) for _s, a in SANDBOXES) or "_sandbox" in name:
                offenders.append(f"{module} imports {name}")
        assert side in ("sandboxes", "adapters")
    assert offenders == []
