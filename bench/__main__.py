"""`python -m bench` lists the scenarios; `python -m bench NAME [args]` runs one.

A scenario is a module of this package with a `DESCRIPTION` string and a `main(argv)` function.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType

import bench


def scenarios() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_") or info.name in ("machine",):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if hasattr(module, "DESCRIPTION") and hasattr(module, "main"):
            found[info.name] = module
    return found


def main(argv: list[str]) -> int:
    available = scenarios()
    if not argv or argv[0] in ("-h", "--help", "list"):
        print("scenarios (python -m bench NAME [--help]):")
        for name, module in sorted(available.items()):
            print(f"  {name:32} {module.DESCRIPTION}")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "all":
        return max((module.main([]) for module in available.values()), default=0)
    if name not in available:
        print(f"unknown scenario {name!r}; `python -m bench` lists them", file=sys.stderr)
        return 2
    return int(available[name].main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
