"""compile.load: every supported source gives the same encoder function; wrong files fail with one clear
line."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compile import model as tcn
from compile.errors import CompileError
from compile.load import load_source
from compile.verify import run_source_onnx


def _latents(encoder: tcn.TCNEncoder, batch: int = 8) -> np.ndarray:
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(batch, 9, 100)).astype(np.float32))
    with torch.no_grad():
        return encoder(x).numpy()


def test_default_is_seeded_untrained_and_deterministic():
    first, second = load_source(None), load_source(None)
    assert first.kind == "default" and first.untrained_default
    assert first.sha256 == second.sha256
    np.testing.assert_array_equal(_latents(first.encoder), _latents(second.encoder))
    assert first.to_metadata()["seed"] == tcn.DEFAULT_SEED


def test_default_does_not_disturb_the_global_rng():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    load_source(None)
    assert torch.equal(torch.rand(3), expected)


def test_trained_onnx_initializers_reproduce_the_onnx(trained_onnx: Path):
    source = load_source(trained_onnx)
    assert source.kind == "onnx" and not source.untrained_default
    assert source.sha256 == "6319428963a4b4ade1d26b6bec7e40b7c5da8602140f9501e7817f3c411cbd55"
    z = np.random.default_rng(0).normal(size=(16, 100, 9)).astype(np.float32)
    expected = run_source_onnx(trained_onnx, z)
    with torch.no_grad():
        got = source.encoder(torch.from_numpy(z.transpose(0, 2, 1).copy())).numpy()
    assert np.abs(got - expected).max() <= 1e-4


def _weight_norm_state_dict(encoder: tcn.TCNEncoder) -> dict[str, torch.Tensor]:
    """The layout the upstream training code saves: weight-normed convs registered twice (convN and
    net.K), under a ``tcn_encoder.`` prefix, next to VAE parts that are not the encoder."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in encoder.state_dict().items():
        key = f"tcn_encoder.{name}"
        is_conv = ".conv1." in name or ".conv2." in name
        aliases = [key, key.replace(".conv1.", ".net.0.").replace(".conv2.", ".net.4.")] if is_conv else [key]
        for alias in aliases:
            if is_conv and name.endswith(".weight"):
                # weight = g * v / ||v||: any v along w with g = ||w|| gives w back.
                state[alias.replace(".weight", ".weight_g")] = tensor.flatten(1).norm(dim=1).reshape(-1, 1, 1)
                state[alias.replace(".weight", ".weight_v")] = tensor * 3.0
            else:
                state[alias if "network" in name else name] = tensor
    state["fc_logvar.weight"] = torch.zeros(64, 256)
    state["decoder.0.weight"] = torch.zeros(10, 10)
    return state


def test_weight_norm_state_dict_is_folded(tmp_path: Path):
    reference = tcn.seeded_encoder(seed=5)
    path = tmp_path / "vae.pth"
    torch.save({"epoch": 3, "model_state_dict": _weight_norm_state_dict(reference)}, path)
    source = load_source(path)
    assert source.kind == "state_dict"
    np.testing.assert_allclose(_latents(source.encoder), _latents(reference), atol=1e-5)


def _as_if_saved_on_cuda(path: Path) -> None:
    """Rewrite the storages' location tag from cpu to cuda:0, as a checkpoint saved from a GPU run has it
    (there is no GPU here to save one). Plain ``torch.load`` then fails; the loader must map it to the CPU."""
    original = zipfile.ZipFile(path)
    records = [(info, original.read(info)) for info in original.infolist()]
    original.close()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as rewritten:
        for info, data in records:
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            rewritten.writestr(info, data)


def test_weight_norm_state_dict_saved_on_cuda(tmp_path: Path):
    reference = tcn.seeded_encoder(seed=9)
    path = tmp_path / "gpu_run.pth"
    torch.save(_weight_norm_state_dict(reference), path)
    _as_if_saved_on_cuda(path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    np.testing.assert_allclose(_latents(load_source(path).encoder), _latents(reference), atol=1e-5)


def test_parametrized_weight_norm_state_dict(tmp_path: Path):
    reference = tcn.seeded_encoder(seed=6)
    normed = tcn.seeded_encoder(seed=6)
    for block in normed.network:
        nn.utils.parametrizations.weight_norm(block.conv1)
        nn.utils.parametrizations.weight_norm(block.conv2)
    assert any("original0" in k for k in normed.state_dict())
    path = tmp_path / "parametrized.pt"
    torch.save(normed.state_dict(), path)
    np.testing.assert_allclose(_latents(load_source(path).encoder), _latents(reference), atol=1e-5)


def test_pickled_module_of_this_architecture_loads_without_trusting_pickle(tmp_path: Path):
    reference = tcn.seeded_encoder(seed=7)
    path = tmp_path / "module.pt"
    torch.save(reference, path)
    source = load_source(path)
    assert source.kind == "module"
    np.testing.assert_array_equal(_latents(source.encoder), _latents(reference))


class WrappedVAE(nn.Module):
    """A class this tool does not know, holding the encoder: loading its pickle runs code from the file."""

    def __init__(self) -> None:
        super().__init__()
        self.tcn_encoder = tcn.seeded_encoder(seed=8)
        self.extra = nn.Linear(2, 2)


def test_foreign_pickled_module_needs_trust(tmp_path: Path):
    path = tmp_path / "foreign.pt"
    torch.save(WrappedVAE(), path)
    with pytest.raises(CompileError, match="--trust-pickle"):
        load_source(path)
    source = load_source(path, trust_pickle=True)
    assert source.kind == "module"
    np.testing.assert_array_equal(_latents(source.encoder), _latents(tcn.seeded_encoder(seed=8)))


def _one_line(error: pytest.ExceptionInfo[CompileError], path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_mock_hef_is_rejected(shared_file):
    path = shared_file("models", "mock_not_a_real.hef")
    with pytest.raises(CompileError) as error:
        load_source(path)
    assert "JSON text, not a model" in _one_line(error, path)


def test_trunk_only_state_dict_names_the_missing_head(shared_file):
    path = shared_file("models", "tcn_encoder_trunk_state_dict.pth")
    with pytest.raises(CompileError) as error:
        load_source(path)
    message = _one_line(error, path)
    assert "fc_mu.weight" in message and "trunk-only" in message


def test_truncated_checkpoint(tmp_path: Path):
    full = tmp_path / "full.pth"
    torch.save(tcn.seeded_encoder().state_dict(), full)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CompileError) as error:
        load_source(truncated)
    assert "truncated or corrupt" in _one_line(error, truncated)


def test_state_dict_of_another_architecture(tmp_path: Path):
    other = nn.Sequential(nn.Conv1d(9, 32, 3), nn.ReLU(), nn.Conv1d(32, 64, 3))
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(CompileError) as error:
        load_source(path)
    assert "no TCN encoder parameters" in _one_line(error, path)


def test_same_names_wrong_widths(tmp_path: Path):
    state = tcn.seeded_encoder().state_dict()
    state["network.0.conv1.weight"] = torch.zeros(64, 9, 5)
    path = tmp_path / "kernel5.pth"
    torch.save(state, path)
    with pytest.raises(CompileError) as error:
        load_source(path)
    assert "network.0.conv1.weight has shape (64, 9, 5), expected (64, 9, 3)" in _one_line(error, path)


def test_extra_block_is_not_this_architecture(tmp_path: Path):
    state = tcn.seeded_encoder().state_dict()
    state["network.3.conv1.weight"] = torch.zeros(256, 256, 3)
    path = tmp_path / "four_blocks.pth"
    torch.save(state, path)
    with pytest.raises(CompileError) as error:
        load_source(path)
    assert "unexpected network.3.conv1.weight" in _one_line(error, path)


@pytest.mark.parametrize(
    ("content", "reason"), [(b"", "file is empty"), (b"\x01\x02garbage" * 10, "not an ONNX")]
)
def test_unreadable_bytes(tmp_path: Path, content: bytes, reason: str):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(CompileError) as error:
        load_source(path)
    assert reason in _one_line(error, path)


def test_nonexistent_file(tmp_path: Path):
    path = tmp_path / "missing.pth"
    with pytest.raises(CompileError) as error:
        load_source(path)
    assert "No such file" in _one_line(error, path)


def test_own_bundle_onnx_is_not_a_source(default_bundle: Path):
    path = default_bundle / "tcn_encoder.onnx"
    with pytest.raises(CompileError) as error:
        load_source(path)
    assert "not the TCN encoder" in _one_line(error, path)
