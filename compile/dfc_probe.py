"""Which DFC a build would use, asked without importing torch or onnx (``python -m compile dfc-version``
answers preflight at once)."""

import json
import os
import subprocess
from pathlib import Path

from compile import dfc_stage
from compile.errors import CompileError

# The DFC venv's interpreter (`make dfc-venv` makes one from Hailo's wheel); unset: this interpreter.
DFC_PYTHON_ENV = "HAILO_PIPELINE_DFC_PYTHON"
DFC_INSTALL_HINT = (
    "install Hailo's Dataflow Compiler 3.33 for Hailo-8/8L "
    "(hailo_dataflow_compiler-3.33.*-py3-none-linux_x86_64.whl from the Hailo Developer Zone) into its own "
    f"venv with `make dfc-venv DFC_WHEEL=...` and point {DFC_PYTHON_ENV} (or --dfc-python) at its python"
)
_REPO = Path(__file__).resolve().parents[1]


def dfc_python(explicit: str | None = None) -> str | None:
    """The interpreter that runs the DFC stage: ``explicit``, else $HAILO_PIPELINE_DFC_PYTHON, else None (this
    interpreter, in-process)."""
    return explicit or os.environ.get(DFC_PYTHON_ENV) or None


def dfc_version(python: str | None = None) -> str | None:
    """The DFC's version as the interpreter that will run it reports it, or None when it has no DFC."""
    if python is None:
        return dfc_stage.installed_dfc_version()
    done = in_dfc_python(python, "--version")
    if done.returncode != 0:
        raise CompileError(f"DFC interpreter {python}: `-m compile.dfc_stage --version` failed: {tail(done)}")
    versions = json.loads(done.stdout)
    if versions.get("contract") != dfc_stage.CONTRACT:
        raise CompileError(
            f"DFC interpreter {python} speaks contract {versions.get('contract')!r}, "
            f"this compile step {dfc_stage.CONTRACT}"
        )
    return versions.get("hailo_sdk_client")


def skip_notice() -> str:
    return f"hailo_sdk_client is not importable: no .hef built (ONNX only); {DFC_INSTALL_HINT}"


def in_dfc_python(python: str, argument: str) -> subprocess.CompletedProcess[str]:
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


def tail(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return lines[-1][:200] if lines else f"exit code {done.returncode}"
