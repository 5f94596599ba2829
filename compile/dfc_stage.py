"""The compile-to-HEF stage, run by the DFC's own interpreter: ``python -m compile.dfc_stage REQUEST.json``.

Hailo's Dataflow Compiler wheel wants its own Python and NumPy (DFC 3.33: Python 3.10, ``numpy<2``; the
control venv has Python 3.11 and NumPy 2.x, see docs/HEF_COMPAT.md), so the stage talks to the control host
only through files, in a small versioned contract (``CONTRACT``):

request (JSON): ``contract``, ``hw_arch``, ``onnx`` (the z-scored graph), ``net_name``, ``start_node_names``,
``end_node_names``, ``net_input_shapes``, ``calibration`` (a float32 NHWC ``.npy``, already z-scored),
``emulator_windows``, ``model_script``, ``out_dir``.
response (JSON, ``<out_dir>/dfc_response.json``): ``contract``, ``ok``, ``dfc_version``, ``hw_arch``, ``hef``,
``hars``, ``emulated`` (one ``.npy`` per output layer of the quantized emulator on the first
``emulator_windows`` calibration windows), or ``ok: false`` with a one-line ``error``.

Exit 0: built; 1: the DFC refused (response says why); 2: the request is unusable. ``--version`` prints
``{"contract": 1, "hailo_sdk_client": <version or null>, "python": ..., "numpy": ...}``.
Standard library and NumPy only: this module must import in a venv that holds nothing but the DFC.
"""

import importlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

CONTRACT = 1
RESPONSE_FILE = "dfc_response.json"
REQUEST_KEYS = (
    "contract",
    "hw_arch",
    "onnx",
    "net_name",
    "start_node_names",
    "end_node_names",
    "net_input_shapes",
    "calibration",
    "emulator_windows",
    "model_script",
    "out_dir",
)


class RequestError(Exception):
    """The request file cannot be used (exit 2)."""


def installed_dfc_version() -> str | None:
    """``hailo_sdk_client.__version__``: the attribute HailoRT's own ``hailo --version`` prints as
    "Hailo Dataflow Compiler v..." (hailo-ai/hailort, hailort/libhailort/bindings/python/platform/
    hailo_platform/tools/hailocli/version_action.py); None when the DFC is not importable."""
    try:
        client = importlib.import_module("hailo_sdk_client")
    except ImportError:
        return None
    version = getattr(client, "__version__", None)
    return str(version) if version else None


def stage_versions() -> dict[str, Any]:
    """What ``--version`` prints: the request contract this stage speaks and the versions it runs with."""
    return {
        "contract": CONTRACT,
        "hailo_sdk_client": installed_dfc_version(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def read_request(path: Path) -> dict[str, Any]:
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"{path}: unreadable request ({exc})") from None
    if not isinstance(request, dict):
        raise RequestError(f"{path}: the request must be a JSON object")
    missing = [key for key in REQUEST_KEYS if key not in request]
    if missing:
        raise RequestError(f"{path}: request lacks {', '.join(missing)}")
    if request["contract"] != CONTRACT:
        raise RequestError(f"{path}: contract {request['contract']!r}, this stage speaks {CONTRACT}")
    return request


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Translate -> model script -> optimize -> emulate -> compile, as Hailo's ClientRunner documents it;
    returns the response (``ok: false`` with the DFC's first error line when it refuses)."""
    out = Path(request["out_dir"])
    arch = request["hw_arch"]
    version = installed_dfc_version()
    base = {"contract": CONTRACT, "dfc_version": version, "hw_arch": arch}
    if version is None:
        return base | {"ok": False, "error": "hailo_sdk_client is not importable in this interpreter"}
    from hailo_sdk_client import ClientRunner, InferenceContext  # the DFC, present only in its own venv

    calibration = np.load(request["calibration"])
    net = request["net_name"]
    hars = [out / f"{net}_{arch}_{stage}.har" for stage in ("parsed", "optimized", "compiled")]
    try:
        runner = ClientRunner(hw_arch=arch)
        runner.translate_onnx_model(
            request["onnx"],
            net,
            start_node_names=request["start_node_names"],
            end_node_names=request["end_node_names"],
            net_input_shapes=request["net_input_shapes"],
        )
        runner.save_har(str(hars[0]))
        runner.load_model_script(request["model_script"])
        runner.optimize(calibration)
        runner.save_har(str(hars[1]))
        with runner.infer_context(InferenceContext.SDK_QUANTIZED) as context:
            emulated = runner.infer(context, calibration[: request["emulator_windows"]])
        hef_bytes = runner.compile()
        runner.save_har(str(hars[2]))
    except Exception as exc:  # the DFC raises its own exception types; any of them ends the stage
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"
        return base | {"ok": False, "error": error}
    hef = out / f"{net}_{arch}.hef"
    hef.write_bytes(hef_bytes)
    arrays = emulated if isinstance(emulated, list | tuple) else [emulated]
    emulated_files = []
    for index, array in enumerate(arrays):
        path = out / f"{net}_{arch}_emulated_{index}.npy"
        np.save(path, np.asarray(array, np.float32))
        emulated_files.append(path.name)
    return base | {
        "ok": True,
        "hef": hef.name,
        "hars": [h.name for h in hars],
        "emulated": emulated_files,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        print(json.dumps(stage_versions()))
        return 0
    if len(args) != 1:
        print("usage: python -m compile.dfc_stage REQUEST.json | --version", file=sys.stderr)
        return 2
    try:
        request = read_request(Path(args[0]))
    except RequestError as exc:
        print(f"dfc_stage: {exc}", file=sys.stderr)
        return 2
    response = run(request)
    (Path(request["out_dir"]) / RESPONSE_FILE).write_text(json.dumps(response, indent=2) + "\n")
    return 0 if response["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
