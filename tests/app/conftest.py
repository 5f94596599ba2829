"""The trained encoder's bundle (built by the real compile CLI, once per session; the default one comes from
tests/conftest.py) and a few doctored copies of them."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bundle_contract.files import file_digest
from bundle_contract.tensors import HEF_INPUT
from compile.export import HAILO_INPUT_NAME

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
TRAINED_ONNX = SHARED / "models" / "tcn_encoder_for_edgeinfer.onnx"


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory, build_bundle: Callable[..., Path]) -> Path:
    if not TRAINED_ONNX.is_file():
        pytest.skip(f"{TRAINED_ONNX} is absent (../shared not available)")
    return build_bundle(tmp_path_factory.mktemp("trained"), "--source", str(TRAINED_ONNX))


def relist(bundle: Path, **model: object) -> None:
    """Rewrite model_metadata.json's file list (and model keys) after a test changed the folder on purpose."""
    path = bundle / "model_metadata.json"
    metadata = json.loads(path.read_text())
    metadata["model"].update(model)
    metadata["files"] = {p.name: file_digest(p) for p in sorted(bundle.iterdir()) if p.name != path.name}
    path.write_text(json.dumps(metadata))


def with_test_double_hefs(source: Path, into: Path) -> Path:
    """A copy of `source` plus a "HEF" for the hailo_platform test double (tests/doubles): the graph from the
    z-scored tensor on (what compile hands the DFC), metadata declaring compile's HEF input contract, outputs
    named like HEF layers rather than the ONNX outputs, and the 12 scores shaped [1, 12], as a compiled HEF
    may."""
    bundle = into / source.name
    shutil.copytree(source, bundle)
    spec = {
        "test_double_hef": True,
        "onnx": "tcn_encoder.onnx",
        "input_tensor": HAILO_INPUT_NAME,
        "input_shape": [1, 100, 9],
        "outputs": {
            "tcn_encoder/fc1": {"source": "latent_embeddings", "shape": [64]},
            "tcn_encoder/softmax1": {"source": "motif_scores", "shape": [1, 12]},
        },
    }
    hefs = {}
    for arch in ("hailo8", "hailo8l"):
        (bundle / f"tcn_encoder_{arch}.hef").write_text(json.dumps(spec | {"hw_arch": arch}))
        hefs[arch] = {"file": f"tcn_encoder_{arch}.hef", "hars": [], "dfc_version": "3.33.0+test-double"}
    relist(bundle, kind="hef", hefs=hefs, hef_input=HEF_INPUT)
    return bundle


@pytest.fixture(scope="session")
def test_double_hefs() -> Callable[[Path, Path], Path]:
    """with_test_double_hefs, for modules that make HEF bundles of their own models."""
    return with_test_double_hefs


@pytest.fixture(scope="session")
def hailo_bundle(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_test_double_hefs(default_bundle, tmp_path_factory.mktemp("hailo"))


@pytest.fixture
def hailort_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A listening Unix socket standing in for hailort.service, named through HAILORT_SERVICE_ADDRESS."""
    path = tmp_path / "hailort_uds.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        monkeypatch.setenv("HAILORT_SERVICE_ADDRESS", f"unix://{path}")
        yield f"unix://{path}"


@pytest.fixture
def tampered_bundle(default_bundle: Path, tmp_path: Path) -> Path:
    """Same size, one byte changed in the model: only the sha256 can tell."""
    bundle = tmp_path / default_bundle.name
    shutil.copytree(default_bundle, bundle)
    model = bundle / "tcn_encoder.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return bundle


@pytest.fixture(scope="session")
def samples() -> dict[str, dict]:
    folder = SHARED / "samples"
    if not folder.is_dir():
        pytest.skip("../shared/samples is absent")
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
