"""Where the shipped, non-Python resources live (OpenAPI spec, contracts).

In a checkout (editable install) they sit at the project root; an image sets
`GATEWAY_RESOURCES_DIR` to the directory that holds `openapi/` and `contracts/`.
"""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    configured = os.environ.get("GATEWAY_RESOURCES_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent


def openapi_dir() -> Path:
    return root() / "openapi"


def contracts_dir() -> Path:
    return root() / "contracts"
