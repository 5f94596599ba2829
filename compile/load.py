"""Turn a model source into a ``TCNEncoder``: a state_dict (weight norm or not, saved on any device), a
pickled module, a trained ONNX (its initializers are imported), or the seeded untrained default."""

import hashlib
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from bundle_contract.files import file_digest
from compile import model as tcn
from compile.errors import CompileError


@dataclass(frozen=True)
class LoadedSource:
    encoder: tcn.TCNEncoder
    kind: str  # onnx | state_dict | module | default
    path: Path | None
    sha256: str  # of the source file, or of the default's weights

    @property
    def untrained_default(self) -> bool:
        return self.kind == "default"

    def to_metadata(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "path": str(self.path.resolve()) if self.path else None,
            "sha256": self.sha256,
            "seed": tcn.DEFAULT_SEED if self.untrained_default else None,
        }


# Wrappers seen around state_dicts in training checkpoints, and prefixes of an encoder inside a bigger model.
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "tcn_encoder.", "encoder.")
# The classic TCN block registers conv1/conv2 twice: as attributes and inside ``net`` (Sequential index 0
# and 4).
_NET_ALIASES = {"net.0": "conv1", "net.4": "conv2"}
_OWN_KEY = re.compile(r"^(network\.\d+\.|fc_mu\.)")
_SAFE_MODULE_CLASSES = [tcn.TCNEncoder, tcn.TemporalBlock, nn.Conv1d, nn.Linear, nn.Sequential]


def load_source(path: Path | None, trust_pickle: bool = False) -> LoadedSource:
    if path is None:
        encoder = tcn.seeded_encoder()
        return LoadedSource(encoder, "default", None, _weights_digest(encoder))
    try:
        head = path.open("rb").read(8)
    except OSError as exc:
        raise CompileError(f"{path}: cannot read model source ({exc.strerror})") from None
    if not head:
        raise CompileError(f"{path}: file is empty")
    if head.startswith(b"PK\x03\x04") or head[0] == 0x80:
        state_dict, kind = _read_checkpoint(path, trust_pickle)
    elif head.lstrip()[:1] in (b"{", b"["):
        raise CompileError(
            f"{path}: is JSON text, not a model (expected a trained .onnx or a PyTorch .pth/.pt checkpoint)"
        )
    else:
        state_dict, kind = _read_onnx(path), "onnx"
    encoder = tcn.TCNEncoder()
    encoder.load_state_dict(_match_architecture(path, state_dict))
    return LoadedSource(encoder.eval(), kind, path, file_digest(path)["sha256"])


def _read_checkpoint(path: Path, trust_pickle: bool) -> tuple[dict[str, torch.Tensor], str]:
    try:
        with torch.serialization.safe_globals(_SAFE_MODULE_CLASSES):
            obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise CompileError(
                f"{path}: holds pickled Python objects beyond tensors (a whole module of a class this tool "
                "does not "
                "know); loading it runs code from the file: pass --trust-pickle if you trust it, or save its "
                "state_dict()"
            ) from None
        raise CompileError(f"{path}: corrupt PyTorch checkpoint ({_first_line(exc)})") from None
    except (ModuleNotFoundError, AttributeError) as exc:
        raise CompileError(
            f"{path}: pickled module needs code that is not importable here ({_first_line(exc)}); save its "
            "state_dict() instead"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CompileError(f"{path}: truncated or corrupt PyTorch checkpoint ({_first_line(exc)})") from None
    for key in _CHECKPOINT_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping | nn.Module):
            obj = obj[key]
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict()), "module"
    if isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), "state_dict"
    raise CompileError(f"{path}: PyTorch file holds a {type(obj).__name__}, not a state_dict or nn.Module")


def _read_onnx(path: Path) -> dict[str, torch.Tensor]:
    """Map the trained ONNX's initializers onto module names by graph structure, not by (exporter-made)
    names."""
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError and others from protobuf; all mean "not an ONNX model"
        raise CompileError(
            f"{path}: not an ONNX model or a PyTorch checkpoint ({_first_line(exc)})"
        ) from None
    weights = {init.name: init for init in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    dense = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    expected_convs = 3 * len(tcn.BLOCK_CHANNELS)
    if len(convs) != expected_convs or len(dense) != 1:
        raise CompileError(
            f"{path}: ONNX graph is not the TCN encoder (found {len(convs)} Conv and {len(dense)} "
            "Gemm/MatMul "
            f"nodes, expected {expected_convs} and 1)"
        )
    state: dict[str, torch.Tensor] = {}
    seen_k3: dict[int, int] = {}
    for node in convs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        dilation = int(attrs.get("dilations", [1])[-1])
        kernel = int(attrs.get("kernel_shape", [1])[-1])
        if kernel == 1:
            block, name = _block_of_downsample(path, node, weights), "downsample"
        elif dilation in tcn.DILATIONS:
            block = tcn.DILATIONS.index(dilation)
            seen_k3[block] = seen_k3.get(block, 0) + 1
            name = f"conv{seen_k3[block]}"
        else:
            raise CompileError(
                f"{path}: Conv {node.name!r} has dilation {dilation}, not one of {tcn.DILATIONS}"
            )
        prefix = f"network.{block}.{name}"
        weight = _initializer(path, weights, node.input[1])
        state[f"{prefix}.weight"] = torch.from_numpy(weight.reshape(weight.shape[0], weight.shape[1], -1))
        if len(node.input) > 2:
            state[f"{prefix}.bias"] = torch.from_numpy(_initializer(path, weights, node.input[2]))
    fc = dense[0]
    weight = _initializer(path, weights, fc.input[1])
    transposed = fc.op_type == "Gemm" and any(a.name == "transB" and a.i == 1 for a in fc.attribute)
    state["fc_mu.weight"] = torch.from_numpy(weight if transposed else weight.T.copy())
    if fc.op_type == "Gemm" and len(fc.input) > 2:
        state["fc_mu.bias"] = torch.from_numpy(_initializer(path, weights, fc.input[2]))
    else:
        add = [n for n in graph.node if n.op_type == "Add" and fc.output[0] in n.input]
        bias_name = next((i for n in add for i in n.input if i in weights), None)
        if bias_name is not None:
            state["fc_mu.bias"] = torch.from_numpy(_initializer(path, weights, bias_name))
    return state


def _block_of_downsample(path: Path, node: onnx.NodeProto, weights: Mapping[str, onnx.TensorProto]) -> int:
    out_channels = int(weights[node.input[1]].dims[0]) if node.input[1] in weights else -1
    if out_channels not in tcn.BLOCK_CHANNELS:
        raise CompileError(
            f"{path}: 1x1 Conv {node.name!r} has {out_channels} output channels, not a TCN block's"
        )
    return tcn.BLOCK_CHANNELS.index(out_channels)


def _initializer(path: Path, weights: Mapping[str, onnx.TensorProto], name: str) -> np.ndarray:
    if name not in weights:
        raise CompileError(f"{path}: ONNX weight {name!r} is computed, not stored as an initializer")
    return np.array(numpy_helper.to_array(weights[name]), dtype=np.float32)


def _match_architecture(path: Path, raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrappers' prefixes, fold weight norm, and check names and shapes against ``TCNEncoder``."""
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        for alias, name in _NET_ALIASES.items():
            key = key.replace(f".{alias}.", f".{name}.")
        if _OWN_KEY.match(key):
            state[key] = value.detach().to("cpu", torch.float32)
    if not state:
        sample = ", ".join(list(raw)[:4])
        raise CompileError(
            f"{path}: no TCN encoder parameters (network.*, fc_mu.*) found; keys start: {sample}"
        )
    state = _fold_weight_norm(state)
    expected = tcn.TCNEncoder().state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        hint = (
            " (a trunk-only state_dict cannot produce the 64-d latent)"
            if all("fc_mu" in k for k in missing)
            else ""
        )
        raise CompileError(
            f"{path}: missing {', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}{hint}"
        )
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise CompileError(
            f"{path}: not the TCN encoder architecture (unexpected {', '.join(unexpected[:3])})"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CompileError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)} "
                "(a different architecture)"
            )
    return state


def _fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """weight = g * v / ||v|| over all dims but the first: old (weight_g/_v) and parametrized (original0/1)
    forms."""
    folded: dict[str, torch.Tensor] = {}
    pairs = {
        ".weight_g": ".weight_v",
        ".parametrizations.weight.original0": ".parametrizations.weight.original1",
    }
    for key, value in state.items():
        for g_suffix, v_suffix in pairs.items():
            if key.endswith(g_suffix) and key.removesuffix(g_suffix) + v_suffix in state:
                v = state[key.removesuffix(g_suffix) + v_suffix]
                norm = v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
                folded[key.removesuffix(g_suffix) + ".weight"] = value * v / norm
                break
        else:
            if not any(key.endswith(v_suffix) for v_suffix in pairs.values()):
                folded[key] = value
    return folded


def _weights_digest(encoder: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
