"""The default bundle's metadata, shared by the script tests (the bundle comes from tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def bundle_metadata(default_bundle: Path) -> dict[str, Any]:
    return json.loads((default_bundle / "model_metadata.json").read_text())
