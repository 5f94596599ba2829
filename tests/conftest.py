"""Fixtures every test folder shares: the repository root and a default bundle built once per session by the
real compile CLI (the compile tests build theirs in-process instead, to test `build()` itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _build_bundle(out: Path, *source: str) -> Path:
    """`python -m compile build --out OUT [source flags]`; the bundle folder is the last stdout line."""
    result = subprocess.run(
        [sys.executable, "-m", "compile", "build", "--out", str(out), *source],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def build_bundle() -> Callable[..., Path]:
    return _build_bundle


@pytest.fixture(scope="session")
def default_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_bundle(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="session")
def bundle_metadata(default_bundle: Path) -> dict[str, Any]:
    return json.loads((default_bundle / "model_metadata.json").read_text())
