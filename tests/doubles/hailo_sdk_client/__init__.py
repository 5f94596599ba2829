"""TEST DOUBLE of ``hailo_sdk_client`` (Hailo's Dataflow Compiler). NOT Hailo's software; builds no real HEF.

Tests put ``tests/doubles`` on ``sys.path`` to exercise ``compile.hailo_compile`` without the DFC wheel.

It implements only the ClientRunner calls ``compile.hailo_compile`` makes, with the documented signatures, and
checks what the real DFC would reject: call order, argument names, the start/end nodes existing in the ONNX,
``net_input_shapes`` matching the graph input, the calibration set being float32 NHWC of that input, and the
model script's commands. It also enforces this project's HEF contract (not a DFC rule): the translated graph
starts at the z-scored tensor, so what reaches its first layer (the calibration set, after a model script
``normalization`` if any) must be z-scored per channel; raw or twice z-scored sets are rejected.
The "emulator" fake-quantizes its input to 8 bits per tensor over the calibration range (the chip's input
layer), applies the model script's normalization and runs the translated ONNX with ONNX Runtime, so a wrong
script, layout or normalization shows up in the figures.
Every call is appended to ``CALLS`` for tests to inspect.
"""

import enum
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime

__version__ = "3.33.0+test-double"
HW_ARCHS = ("hailo8", "hailo8l", "hailo8r", "hailo15h", "hailo15m")
SCRIPT_COMMANDS = (
    "normalization",
    "model_optimization_config",
    "model_optimization_flavor",
    "quantization_param",
    "performance_param",
)
HEF_MAGIC = b"TEST-DOUBLE-HEF\n"
# ONNX ops the parser translates, from the layer families of Hailo's DFC user guide (v3.30.0, 5.5 "Supported
# Layers"; the 3.7.0 product brief's "Supported layers" chapter lists the same families): convolution,
# depthwise convolution, deconvolution, dense, max/average pooling, concat, element-wise ops, activations,
# softmax, batch normalization, resize. Shape ops are not in it: Hailo's parser rejects Transpose, Reshape and
# Squeeze inside a network (hailo-ai/hailo_model_zoo#98, "Dataflow compiler layer type support"). The double
# rejects any other op in the translated part of the graph, and a Pad that is not constant zero padding
# feeding a Conv (folded into the convolution; product brief 3.7.0, 2.4 "Supported padding schemes").
SUPPORTED_ONNX_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Concat",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Sigmoid",
        "Tanh",
        "Elu",
        "Clip",
        "Softmax",
        "BatchNormalization",
        "Resize",
        "Flatten",
    }
)
# Per-channel bounds for "z-scored": loose, real windows are not exactly N(0, 1), but raw IMU values (gravity
# ~9.8 on one axis, magnetometer tens of uT) and twice z-scored ones (std ~0.01-0.1) fall outside.
Z_SCORED_MAX_ABS_MEAN = 3.0
Z_SCORED_STD_RANGE = (0.1, 10.0)
CALLS: list[tuple[str, dict[str, Any]]] = []


class UnsupportedLayerError(ValueError):
    """The double's stand-in for the parser's refusal of a layer it cannot translate."""


class InferenceContext(enum.Enum):
    SDK_NATIVE = "native"
    SDK_FP_OPTIMIZED = "fp_optimized"
    SDK_QUANTIZED = "quantized"


class ClientRunner:
    def __init__(self, hw_arch: str) -> None:
        if hw_arch not in HW_ARCHS:
            raise ValueError(f"unsupported hw_arch {hw_arch!r}")
        CALLS.append(("ClientRunner", {"hw_arch": hw_arch}))
        self.hw_arch = hw_arch
        self._stage = "new"
        self._onnx: onnx.ModelProto | None = None
        self._input_nchw: list[int] = []
        self._normalization: tuple[np.ndarray, np.ndarray] | None = None
        self._calibset_size: int | None = None
        self._input_range: tuple[float, float] = (0.0, 0.0)

    def translate_onnx_model(
        self,
        model: str,
        net_name: str,
        start_node_names: list[str] | None = None,
        end_node_names: list[str] | None = None,
        net_input_shapes: dict[str, list[int]] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self._require("new", "translate_onnx_model")
        CALLS.append(
            (
                "translate_onnx_model",
                {
                    "model": model,
                    "net_name": net_name,
                    "start_node_names": start_node_names,
                    "end_node_names": end_node_names,
                    "net_input_shapes": net_input_shapes,
                },
            )
        )
        graph_model = onnx.load(model)
        graph = graph_model.graph
        node_names = {n.name for n in graph.node}
        input_dims = {i.name: [d.dim_value or 1 for d in i.type.tensor_type.shape.dim] for i in graph.input}
        for name in start_node_names or []:
            if name not in node_names and name not in input_dims:
                raise ValueError(f"start node {name!r} not found in {model}")
        for name in end_node_names or []:
            if name not in node_names:
                raise ValueError(f"end node {name!r} not found in {model}")
        for name, shape in (net_input_shapes or {}).items():
            if name not in input_dims:
                raise ValueError(f"net_input_shapes key {name!r} is not an input of {model}")
            if list(shape) != input_dims[name] or len(shape) != 4:
                raise ValueError(f"net_input_shapes[{name!r}]={shape} does not match NCHW {input_dims[name]}")
        _require_supported_layers(graph, start_node_names or [], end_node_names or [])
        self._onnx = graph_model
        self._input_nchw = next(iter(input_dims.values()))
        self._stage = "parsed"
        return {"name": net_name, "layers": sorted(node_names)}, {}

    def load_model_script(self, model_script: str) -> None:
        self._require("parsed", "load_model_script")
        CALLS.append(("load_model_script", {"model_script": model_script}))
        for line in filter(None, (raw.strip() for raw in model_script.splitlines())):
            command = re.match(r"(?:\w+\s*=\s*)?(\w+)\(", line)
            if command is None or command.group(1) not in SCRIPT_COMMANDS:
                raise ValueError(f"model script line not understood: {line!r}")
            if command.group(1) == "normalization":
                mean, std = (json.loads(v) for v in re.findall(r"\[[^\]]*\]", line))
                channels = self._input_nchw[1]
                if len(mean) != channels or len(std) != channels:
                    raise ValueError(f"normalization needs {channels} mean/std values: {line!r}")
                self._normalization = (np.asarray(mean, np.float32), np.asarray(std, np.float32))
            size = re.search(r"calibset_size=(\d+)", line)
            if size:
                self._calibset_size = int(size.group(1))

    def optimize(self, calib_data: np.ndarray) -> None:
        self._require("parsed", "optimize")
        CALLS.append(("optimize", {"calib_shape": tuple(calib_data.shape), "dtype": str(calib_data.dtype)}))
        _, c, h, w = self._input_nchw
        if not isinstance(calib_data, np.ndarray) or calib_data.dtype != np.float32:
            raise TypeError("calibration data must be a float32 numpy array")
        if calib_data.ndim != 4 or calib_data.shape[1:] != (h, w, c):
            raise ValueError(f"calibration data shape {calib_data.shape} is not NHWC (N, {h}, {w}, {c})")
        if self._calibset_size is not None and calib_data.shape[0] < self._calibset_size:
            raise ValueError(f"calibset_size={self._calibset_size} but only {calib_data.shape[0]} images")
        _require_z_scored(self._normalize(calib_data))
        self._input_range = (float(calib_data.min()), float(calib_data.max()))
        self._stage = "quantized"

    @contextmanager
    def infer_context(self, inference_context: InferenceContext) -> Iterator[InferenceContext]:
        if inference_context is InferenceContext.SDK_QUANTIZED:
            self._require("quantized", "infer_context(SDK_QUANTIZED)")
        CALLS.append(("infer_context", {"context": inference_context}))
        yield inference_context

    def infer(self, context: InferenceContext, dataset: np.ndarray) -> list[np.ndarray]:
        CALLS.append(("infer", {"context": context, "shape": tuple(dataset.shape)}))
        assert self._onnx is not None
        x = dataset.astype(np.float32)
        if context is InferenceContext.SDK_QUANTIZED:
            low, high = self._input_range
            step = (high - low) / 255 or 1.0
            x = np.round((np.clip(x, low, high) - low) / step) * step + low
        x = self._normalize(x)
        session = onnxruntime.InferenceSession(
            self._onnx.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        outputs = session.run(None, {session.get_inputs()[0].name: nchw})
        return [o.reshape(o.shape[0], 1, 1, -1) for o in outputs]

    def compile(self) -> bytes:
        self._require("quantized", "compile")
        CALLS.append(("compile", {}))
        self._stage = "compiled"
        return HEF_MAGIC + self.hw_arch.encode()

    def save_har(self, har_path: str) -> None:
        CALLS.append(("save_har", {"har_path": har_path, "stage": self._stage}))
        Path(har_path).write_text(json.dumps({"test_double": True, "stage": self._stage}))

    def _normalize(self, nhwc: np.ndarray) -> np.ndarray:
        if self._normalization is None:
            return nhwc
        mean, std = self._normalization
        return (nhwc - mean) / std

    def _require(self, stage: str, call: str) -> None:
        order = ("new", "parsed", "quantized", "compiled")
        if order.index(self._stage) < order.index(stage):
            raise RuntimeError(f"{call} called in stage {self._stage!r}, needs {stage!r}")
        if call == "translate_onnx_model" and self._stage != "new":
            raise RuntimeError("translate_onnx_model called twice")


def _require_supported_layers(graph: onnx.GraphProto, start: list[str], end: list[str]) -> None:
    """Every node between the start tensors and the end nodes must be a layer Hailo's parser translates."""
    producer = {output: node for node in graph.node for output in node.output}
    by_name = {node.name: node for node in graph.node}
    start_tensors = set(start) | {o for name in start if name in by_name for o in by_name[name].output}
    pending = [by_name[name] for name in end if name in by_name]
    seen: set[str] = set()
    translated = []
    while pending:
        node = pending.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        translated.append(node)
        pending += [producer[i] for i in node.input if i in producer and i not in start_tensors]
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node.op_type)
    unsupported = sorted(
        {f"{n.op_type} ({n.name})" for n in translated if not _supported(n, consumers, graph)}
    )
    if unsupported:
        raise UnsupportedLayerError(f"unsupported layers for the Hailo parser: {', '.join(unsupported)}")


def _supported(node: onnx.NodeProto, consumers: dict[str, list[str]], graph: onnx.GraphProto) -> bool:
    if node.op_type in SUPPORTED_ONNX_OPS:
        return True
    if node.op_type != "Pad":
        return False
    mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "constant")
    constant = next((i for i in graph.initializer if len(node.input) > 2 and i.name == node.input[2]), None)
    zero = constant is None or not onnx.numpy_helper.to_array(constant).any()
    return mode == "constant" and zero and consumers.get(node.output[0], []) == ["Conv"]


def _require_z_scored(nhwc: np.ndarray) -> None:
    channels = nhwc.reshape(-1, nhwc.shape[-1]).astype(np.float64)
    mean, std = channels.mean(0), channels.std(0)
    low, high = Z_SCORED_STD_RANGE
    bad = [c for c in range(len(mean)) if abs(mean[c]) > Z_SCORED_MAX_ABS_MEAN or not low <= std[c] <= high]
    if bad:
        raise ValueError(
            "test double (project HEF contract): the translated graph takes z-scored input, but calibration "
            f"channels {bad} have mean {mean[bad].round(3).tolist()} and std {std[bad].round(3).tolist()}"
        )
