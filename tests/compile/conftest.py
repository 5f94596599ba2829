"""Fixtures for the compile tests: ../shared reference data (skipped when absent), bundles built once per
session, and the Hailo DFC test double put on sys.path only for the tests that ask for it."""

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from compile.build import BuildOptions, build
from compile.timing import StageTimer

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
DOUBLES = REPO / "tests" / "doubles"


def _shared_file(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (../shared is only present for developers and CI)")
    return path


@pytest.fixture(scope="session")
def shared_file() -> Callable[..., Path]:
    """``shared_file("models", "x")``: a path under ../shared, or skip the test when it is absent."""
    return _shared_file


@pytest.fixture(scope="session")
def trained_onnx() -> Path:
    return _shared_file("models", "tcn_encoder_for_edgeinfer.onnx")


@pytest.fixture(scope="session")
def model_config() -> Path:
    return _shared_file("models", "model_config.json")


@pytest.fixture(scope="session")
def default_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("default-bundles")
    return build(BuildOptions(source=None, out=out), StageTimer())


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory, trained_onnx: Path, model_config: Path) -> Path:
    out = tmp_path_factory.mktemp("trained-bundles")
    return build(BuildOptions(source=trained_onnx, out=out, config=model_config), StageTimer())


@pytest.fixture
def dfc_double(monkeypatch: pytest.MonkeyPatch):
    """The ``hailo_sdk_client`` test double (not Hailo's DFC) importable for one test, with a fresh call
    log."""
    monkeypatch.syspath_prepend(str(DOUBLES))
    monkeypatch.delitem(sys.modules, "hailo_sdk_client", raising=False)
    module = importlib.import_module("hailo_sdk_client")
    assert "TEST DOUBLE" in (module.__doc__ or "")
    module.CALLS.clear()
    yield module
    sys.modules.pop("hailo_sdk_client", None)
