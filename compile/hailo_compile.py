"""ONNX -> one .hef per chip family with Hailo's Dataflow Compiler (``hailo_sdk_client``), when installed.

The DFC is not on PyPI (a wheel from Hailo's Developer Zone, x86_64 Linux) and wants its own Python and
NumPy, so this module only prepares the stage and reads its result: ``compile.dfc_stage`` runs the
ClientRunner flow in the DFC's interpreter (``HAILO_PIPELINE_DFC_PYTHON`` / ``--dfc-python``, made by
``make dfc-venv``) or, when none is given, in this one, through the same request/response files. Flow:
translate the z-scored NCHW graph -> model script (calibration size) -> optimize (quantize) with z-scored
NHWC ``(N, 1, 100, 9)`` calibration windows -> emulate -> compile -> .hef, with a HAR per stage.
The HEF's input is NHWC ``(1, 100, 9)`` z-scored values (``HEF_INPUT``); the app z-scores each raw
``imu_window [100, 9]`` on the host (same memory layout) before handing it to HailoRT.

Why not fold the z-score on chip (the model script's ``normalization`` command): the chip's input layer
quantizes the tensor it receives per tensor to 8 bits, so raw values would share one step set by the
magnetometer's range (tens of uT) and small gyro/accelerometer signals would lose resolution."""

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.hailort_backend import HEF_INPUT_Z_SCORED
from compile import dfc_stage
from compile.errors import CompileError
from compile.export import HAILO_INPUT_NAME, LATENT_NODE, MOTIF_NODE, hailo_input
from compile.hw_arch import HW_ARCHS
from compile.int8_check import compare_quantized
from compile.model import INPUT_CHANNELS, LATENT_DIM, WINDOW_LENGTH
from compile.normalization import Normalization

NET_NAME = "tcn_encoder"
# The DFC venv's interpreter (`make dfc-venv` makes one from Hailo's wheel); unset: this interpreter.
DFC_PYTHON_ENV = "HAILO_PIPELINE_DFC_PYTHON"
DFC_INSTALL_HINT = (
    "install Hailo's Dataflow Compiler 3.33 for Hailo-8/8L "
    "(hailo_dataflow_compiler-3.33.*-py3-none-linux_x86_64.whl from the Hailo Developer Zone) into its own "
    f"venv with `make dfc-venv DFC_WHEEL=...` and point {DFC_PYTHON_ENV} (or --dfc-python) at its python"
)
CALIBSET_SIZE = 64
EMULATOR_WINDOWS = 64
# model.hef_input in the bundle metadata: what the app must hand HailoRT (it refuses any other "values").
HEF_INPUT = {
    "layout": "NHWC (1, 100, 9)",
    "dtype": "float32",
    "values": HEF_INPUT_Z_SCORED,
    "z_score": "per channel (x - normalization.mean) / normalization.std, on the host",
}
_REPO = Path(__file__).resolve().parents[1]


@dataclass
class HefResult:
    hw_arch: str
    hef: Path
    hars: list[Path]
    dfc_version: str
    int8: dict[str, Any] = field(default_factory=dict)


def dfc_python(explicit: str | None = None) -> str | None:
    """The interpreter that runs the DFC stage: ``explicit``, else $HAILO_PIPELINE_DFC_PYTHON, else None (this
    interpreter, in-process)."""
    return explicit or os.environ.get(DFC_PYTHON_ENV) or None


def dfc_version(python: str | None = None) -> str | None:
    """The DFC's version as the interpreter that will run it reports it, or None when it has no DFC."""
    if python is None:
        return dfc_stage.installed_dfc_version()
    done = _in_dfc_python(python, "--version")
    if done.returncode != 0:
        raise CompileError(
            f"DFC interpreter {python}: `-m compile.dfc_stage --version` failed: {_tail(done)}"
        )
    described = json.loads(done.stdout)
    if described.get("contract") != dfc_stage.CONTRACT:
        raise CompileError(
            f"DFC interpreter {python} speaks contract {described.get('contract')!r}, "
            f"this compile step {dfc_stage.CONTRACT}"
        )
    return described.get("hailo_sdk_client")


def skip_notice() -> str:
    return f"hailo_sdk_client is not importable: no .hef built (ONNX only); {DFC_INSTALL_HINT}"


def model_script(calibset_size: int) -> str:
    """Model script lines as Hailo's model zoo writes them. No ``normalization`` line: the translated graph
    starts at the z-scored tensor and the host z-scores (see the module docstring)."""
    return f"model_optimization_config(calibration, batch_size=8, calibset_size={calibset_size})\n"


def compile_hef(
    hailo_onnx: Path,
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
            "onnx": str(hailo_onnx.resolve()),
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
            raise CompileError(f"Hailo DFC failed on {hailo_onnx.name}: {response.get('error')}")
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
        done = _in_dfc_python(python, str(request_file))
        code = done.returncode
        if code == 2 or not (work / dfc_stage.RESPONSE_FILE).exists():
            raise CompileError(f"DFC stage in {python} exited {code} without a response: {_tail(done)}")
    if code == 2:
        raise CompileError(f"DFC stage refused the request {request_file}")
    return json.loads((work / dfc_stage.RESPONSE_FILE).read_text())


def _in_dfc_python(python: str, argument: str) -> subprocess.CompletedProcess[str]:
    """`python -m compile.dfc_stage ARGUMENT` in the DFC's interpreter."""
    try:
        return subprocess.run(
            [python, "-m", "compile.dfc_stage", argument],
            capture_output=True,
            text=True,
            env=_stage_env(),
            check=False,
        )
    except OSError as exc:
        raise CompileError(f"DFC interpreter {python}: cannot run it ({exc.strerror})") from None


def _stage_env() -> dict[str, str]:
    """The DFC interpreter finds ``compile.dfc_stage`` in this checkout and nothing else of the project's."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    return env


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return lines[-1][:200] if lines else f"exit code {done.returncode}"


def _split_outputs(emulated: Any) -> tuple[np.ndarray, np.ndarray]:
    """The emulator returns one array per output layer, shaped NHWC; tell them apart by width (64 vs 12)."""
    arrays = emulated if isinstance(emulated, list | tuple) else [emulated]
    flat = [np.asarray(a, np.float32).reshape(len(a), -1) for a in arrays]
    latent = next((a for a in flat if a.shape[1] == LATENT_DIM), None)
    scores = next((a for a in flat if a.shape[1] != LATENT_DIM), None)
    if latent is None or scores is None:
        shapes = [list(np.shape(a)) for a in arrays]
        raise CompileError(
            f"Hailo DFC emulator returned outputs of shapes {shapes}, expected [N,64] and [N,12]"
        )
    return latent, scores
