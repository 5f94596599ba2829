"""The Hailo-ready ONNX graph, written node by node: raw ``imu_window [N,100,9]`` -> layout
``(N, 9, 1, 100)`` -> z-score -> TCN as 2-D convolutions -> ``latent_embeddings [N,64]`` and
``motif_scores [N,12]``.

By hand, not ``torch.onnx.export``: its causal zero-pad becomes a dynamic Slice/Concat chain the DFC parser
refuses, and a graph written apart from the PyTorch module makes ``verify`` an independent check. Each Conv1d
is a Conv with kernel ``(1, k)``, dilation ``(1, d)`` and a left pad of ``(k-1)*d`` (Hailo's 1-D layout)."""

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from bundle_contract.normalization import Normalization
from bundle_contract.tensors import (
    INPUT_CHANNELS,
    INPUT_NAME,
    LATENT_NAME,
    LATENT_SIZE,
    MOTIF_NAME,
    WINDOW_LENGTH,
)
from compile import model as tcn
from compile.errors import CompileError
from compile.motifs import MotifHead
from compile.normalization import z_score

OPSET = 13
# Bump when the exported graph or the HEF's input contract changes for the same inputs: it feeds the bundle
# version, so a bundle built under the old contract is never reused. 2: the HEF takes z-scored input.
# 3: the motif head centers the latent (Sub) before its Gemm, and its temperature has a floor.
EXPORTER_VERSION = "3"
# The DFC compiles the graph from here on: z-scored NCHW (N, 9, 1, 100). The HEF therefore takes z-scored
# values and the app z-scores on the host: the chip's 8-bit per-tensor input step then fits every channel.
HAILO_INPUT_NAME = "imu_nchw"
LATENT_NODE = "fc_mu/gemm"
MOTIF_NODE = "motifs/softmax"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, output: str | None = None, **attrs: object) -> str:
        out = output or name
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def conv(self, x: str, conv: torch.nn.Conv1d, name: str) -> str:
        weight = conv.weight.detach().numpy().astype(np.float32)
        kernel, dilation = conv.kernel_size[0], conv.dilation[0]
        left = (kernel - 1) * dilation
        if left:
            pads = np.array([0, 0, 0, left, 0, 0, 0, 0], dtype=np.int64)
            x = self.node("Pad", [x, self.const(f"{name}/pads", pads)], f"{name}/pad", mode="constant")
        w = self.const(f"{name}/weight", weight[:, :, None, :])
        b = self.const(f"{name}/bias", conv.bias.detach().numpy().astype(np.float32))
        return self.node(
            "Conv",
            [x, w, b],
            f"{name}/conv",
            kernel_shape=[1, kernel],
            dilations=[1, dilation],
            strides=[1, 1],
            pads=[0, 0, 0, 0],
        )


def build_onnx(
    encoder: tcn.TCNEncoder,
    normalization: Normalization,
    motifs: MotifHead,
    properties: dict[str, str],
    raw_input: bool = True,
) -> onnx.ModelProto:
    """``raw_input=True``: the served model (raw ``imu_window`` in, z-score inside). ``False``: what the DFC
    translates (z-scored ``imu_nchw`` in)."""
    g = _Graph()
    batch = "N"
    if raw_input:
        graph_input = helper.make_tensor_value_info(
            INPUT_NAME, TensorProto.FLOAT, [batch, WINDOW_LENGTH, INPUT_CHANNELS]
        )
        x = g.node("Transpose", [INPUT_NAME], "layout/transpose", perm=[0, 2, 1])
        x = g.node("Unsqueeze", [x, g.const("layout/axes", np.array([2], np.int64))], "layout/unsqueeze")
        mean = np.asarray(normalization.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(normalization.std, np.float32).reshape(1, -1, 1, 1)
        x = g.node("Sub", [x, g.const("normalize/mean", mean)], "normalize/sub")
        x = g.node("Div", [x, g.const("normalize/std", std)], "normalize/div", output=HAILO_INPUT_NAME)
    else:
        graph_input = helper.make_tensor_value_info(
            HAILO_INPUT_NAME, TensorProto.FLOAT, [batch, INPUT_CHANNELS, 1, WINDOW_LENGTH]
        )
        x = HAILO_INPUT_NAME
    for index, block in enumerate(encoder.network):
        prefix = f"block{index}"
        h = g.node("Relu", [g.conv(x, block.conv1, f"{prefix}/conv1")], f"{prefix}/relu1")
        h = g.node("Relu", [g.conv(h, block.conv2, f"{prefix}/conv2")], f"{prefix}/relu2")
        residual = g.conv(x, block.downsample, f"{prefix}/downsample")
        x = g.node("Relu", [g.node("Add", [h, residual], f"{prefix}/add")], f"{prefix}/relu")
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "pool/global_average")], "pool/flatten", axis=1)
    fc_w = g.const("fc_mu/weight", encoder.fc_mu.weight.detach().numpy().astype(np.float32))
    fc_b = g.const("fc_mu/bias", encoder.fc_mu.bias.detach().numpy().astype(np.float32))
    latent = g.node("Gemm", [x, fc_w, fc_b], LATENT_NODE, output=LATENT_NAME, transB=1)
    motif_w, motif_b = motifs.linear()
    centered = g.node("Sub", [latent, g.const("motifs/mean", motifs.center())], "motifs/center")
    logits = g.node(
        "Gemm",
        [centered, g.const("motifs/weight", motif_w), g.const("motifs/bias", motif_b)],
        "motifs/gemm",
        transB=1,
    )
    g.node("Softmax", [logits], MOTIF_NODE, output=MOTIF_NAME, axis=1)
    outputs = [
        helper.make_tensor_value_info(LATENT_NAME, TensorProto.FLOAT, [batch, LATENT_SIZE]),
        helper.make_tensor_value_info(MOTIF_NAME, TensorProto.FLOAT, [batch, motif_w.shape[0]]),
    ]
    graph = helper.make_graph(g.nodes, "tcn_encoder", [graph_input], outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="hailo_pipeline.compile",
        producer_version=EXPORTER_VERSION,
    )
    model.ir_version = 8  # ONNX Runtime and the DFC's onnx read IR 8; newer IRs buy nothing for opset 13
    helper.set_model_props(model, properties)
    return model


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    try:
        onnx.save(model, str(path))
    except OSError as exc:
        raise CompileError(f"{path}: cannot write ONNX ({exc.strerror})") from None


def encode_latents(encoder: tcn.TCNEncoder, normalization: Normalization, windows: np.ndarray) -> np.ndarray:
    """The PyTorch Conv1d encoder on z-scored channels-first input: fits the motifs and is what the export is
    verified against."""
    z = z_score(normalization, windows)
    with torch.no_grad():
        return encoder(torch.from_numpy(np.ascontiguousarray(z.transpose(0, 2, 1)))).numpy()


def hailo_input(normalization: Normalization, windows: np.ndarray) -> np.ndarray:
    """Raw ``[N, 100, 9]`` windows as the HEF takes them: z-scored, NHWC ``(N, 1, 100, 9)`` float32 (the
    DFC's calibration layout; the same memory as the z-scored ``[N, 100, 9]``)."""
    z = z_score(normalization, windows.astype(np.float32))
    return np.ascontiguousarray(z.reshape(-1, 1, WINDOW_LENGTH, INPUT_CHANNELS), dtype=np.float32)
