"""ONNX -> one .hef per chip family with Hailo's Dataflow Compiler: this module prepares the request and reads
the result, ``compile.dfc_stage`` runs it in the DFC's own interpreter (which wants its own Python and NumPy).

The HEF takes z-scored input (``bundle_contract.tensors.HEF_INPUT``), z-scored on the host: the chip quantizes
its input per tensor to 8 bits, so raw values would share one step set by the magnetometer's range."""

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bundle_contract.chips import HW_ARCHS
from bundle_contract.normalization import Normalization
from bundle_contract.tensors import INPUT_CHANNELS, LATENT_SIZE, MOTIF_COUNT, WINDOW_LENGTH
from compile import dfc_stage
from compile.dfc_probe import dfc_version, in_dfc_python, skip_notice, tail
from compile.errors import CompileError
from compile.export import HAILO_INPUT_NAME, LATENT_NODE, MOTIF_NODE, hailo_input
from compile.int8_check import compare_quantized

NET_NAME = "tcn_encoder"
CALIBSET_SIZE = 64
EMULATOR_WINDOWS = 64


@dataclass
class HefResult:
    hw_arch: str
    hef: Path
    hars: list[Path]
    dfc_version: str
    int8: dict[str, Any] = field(default_factory=dict)


def model_script(calibset_size: int) -> str:
    """Model script lines as Hailo's model zoo writes them. No ``normalization`` line: the translated graph
    starts at the z-scored tensor and the host z-scores (see the module docstring)."""
    return f"model_optimization_config(calibration, batch_size=8, calibset_size={calibset_size})\n"


def compile_hef(
    dfc_onnx: Path,
    normalization: Normalization,
    calibration: np.ndarray,
    hw_arch: str,
    out_dir: Path,
    float_outputs: tuple[np.ndarray, np.ndarray],
    python: str | None = None,
) -> HefResult:
    """Run the DFC stage (``compile.dfc_stage``) for one chip family on raw ``calibration`` windows (z-scored
    here with ``normalization``), in ``python`` or in-process; ``float_outputs`` are the float model's
    (latent, scores) on ``calibration[:EMULATOR_WINDOWS]``, to compare the DFC's quantized emulator against.
    The .hef and HARs land in ``out_dir``; request, response and emulator arrays stay in a scratch folder."""
    if hw_arch not in HW_ARCHS:
        raise CompileError(f"hw arch {hw_arch!r} is not one of {', '.join(HW_ARCHS)}")
    version = dfc_version(python)
    if version is None:
        raise CompileError(skip_notice())
    calib_nhwc = hailo_input(normalization, calibration)
    with tempfile.TemporaryDirectory(prefix="dfc-stage-") as scratch:
        work = Path(scratch)
        np.save(work / "calibration_nhwc.npy", calib_nhwc)
        request = {
            "contract": dfc_stage.CONTRACT,
            "hw_arch": hw_arch,
            "onnx": str(dfc_onnx.resolve()),
            "net_name": NET_NAME,
            "start_node_names": [HAILO_INPUT_NAME],
            "end_node_names": [LATENT_NODE, MOTIF_NODE],
            "net_input_shapes": {HAILO_INPUT_NAME: [1, INPUT_CHANNELS, 1, WINDOW_LENGTH]},
            "calibration": str(work / "calibration_nhwc.npy"),
            "emulator_windows": EMULATOR_WINDOWS,
            "model_script": model_script(min(CALIBSET_SIZE, len(calib_nhwc))),
            "out_dir": str(work),
        }
        response = _run_stage(request, work, python)
        if not response.get("ok"):
            raise CompileError(f"Hailo DFC failed on {dfc_onnx.name}: {response.get('error')}")
        emulated = [np.load(work / name) for name in response["emulated"]]
        hef = out_dir / response["hef"]
        hars = [out_dir / name for name in response["hars"]]
        for path in [hef, *hars]:
            shutil.move(work / path.name, path)
    q_latent, q_scores = _split_outputs(emulated)
    latent, scores = float_outputs
    int8 = {"method": f"Hailo DFC {version} SDK_QUANTIZED emulator ({hw_arch})"} | compare_quantized(
        latent, scores, q_latent, q_scores
    )
    return HefResult(hw_arch, hef, hars, version, int8)


def _run_stage(request: dict[str, Any], work: Path, python: str | None) -> dict[str, Any]:
    """The same request/response files whether the stage runs in the DFC's interpreter or in this one."""
    request_file = work / "dfc_request.json"
    request_file.write_text(json.dumps(request, indent=2) + "\n")
    if python is None:
        code = dfc_stage.main([str(request_file)])
    else:
        done = in_dfc_python(python, str(request_file))
        code = done.returncode
        if code == 2 or not (work / dfc_stage.RESPONSE_FILE).exists():
            raise CompileError(f"DFC stage in {python} exited {code} without a response: {tail(done)}")
    if code == 2:
        raise CompileError(f"DFC stage refused the request {request_file}")
    return json.loads((work / dfc_stage.RESPONSE_FILE).read_text())


def _split_outputs(emulated: Any) -> tuple[np.ndarray, np.ndarray]:
    """The emulator returns one array per output layer, shaped NHWC; tell them apart by width."""
    arrays = emulated if isinstance(emulated, list | tuple) else [emulated]
    flat = [np.asarray(a, np.float32).reshape(len(a), -1) for a in arrays]
    latent = next((a for a in flat if a.shape[1] == LATENT_SIZE), None)
    scores = next((a for a in flat if a.shape[1] != LATENT_SIZE), None)
    if latent is None or scores is None:
        shapes = [list(np.shape(a)) for a in arrays]
        raise CompileError(
            f"Hailo DFC emulator returned outputs of shapes {shapes}, "
            f"expected [N,{LATENT_SIZE}] and [N,{MOTIF_COUNT}]"
        )
    return latent, scores
