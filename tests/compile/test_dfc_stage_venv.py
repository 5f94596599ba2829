"""The compile-to-HEF contract end to end, with the DFC test double (tests/doubles/hailo_sdk_client, not
Hailo's DFC) installed in a SEPARATE venv: the control side (torch, the project) never shares its interpreter.

The venv is made with ``python -m venv`` under tmp, without network: the double and the three libraries it
runs on (numpy, onnx, onnxruntime, with whatever they import) are linked in from this venv's site-packages,
and nothing else is, so ``compile.dfc_stage`` importing torch or the app's dependencies would fail there."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from bundle_contract.files import verify_bundle
from compile import dfc_probe, dfc_stage, hailo_compile
from compile.build import BuildOptions, build
from compile.errors import CompileError
from compile.normalization import default_normalization
from compile.timing import StageTimer

REPO = Path(__file__).resolve().parents[2]
DOUBLE = REPO / "tests" / "doubles" / "hailo_sdk_client"
# What the double needs at run time; everything these import at import time comes along (found below).
DOUBLE_DEPENDENCIES = ("numpy", "onnx", "onnxruntime")


def _top_level_packages() -> set[Path]:
    """The site-packages entries this venv loads for the double's dependencies (packages, their .libs)."""
    code = (
        f"import sys, {', '.join(DOUBLE_DEPENDENCIES)}\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    names = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    site = Path(sysconfig.get_paths()["purelib"])
    entries = set()
    for name in names:
        for candidate in (site / name, site / f"{name}.py", site / f"{name}.libs"):
            if candidate.exists():
                entries.add(candidate)
    return entries


@pytest.fixture(scope="module")
def dfc_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("dfc") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site = Path(purelib)
    (site / "hailo_sdk_client").symlink_to(DOUBLE, target_is_directory=True)
    for entry in _top_level_packages():
        (site / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return python


def test_the_dfc_venv_is_separate(dfc_python: Path):
    for module in ("torch", "flask", "sklearn"):
        probe = subprocess.run([str(dfc_python), "-c", f"import {module}"], capture_output=True, check=False)
        assert probe.returncode != 0, f"{module} must not be importable in the DFC venv"
    assert str(dfc_python) != sys.executable


def test_the_stage_reports_its_dfc_through_the_contract(dfc_python: Path):
    assert dfc_probe.dfc_version(str(dfc_python)) == "3.33.0+test-double"
    # The control venv itself has no DFC at all.
    assert dfc_probe.dfc_version(None) is None


def test_build_runs_the_dfc_stage_in_its_own_interpreter(dfc_python: Path, tmp_path: Path):
    bundle = build(
        BuildOptions(source=None, out=tmp_path, require_hef=True, dfc_python=str(dfc_python)), StageTimer()
    )
    metadata = verify_bundle(bundle)
    assert metadata["model"]["kind"] == "hef"
    assert {arch: e["dfc_version"] for arch, e in metadata["model"]["hefs"].items()} == {
        "hailo8": "3.33.0+test-double",
        "hailo8l": "3.33.0+test-double",
    }
    assert (bundle / "tcn_encoder_hailo8l.hef").read_bytes() == b"TEST-DOUBLE-HEF\nhailo8l"
    # The emulator ran in the DFC venv and its outputs came back as .npy files: the figures are real.
    assert metadata["verification"]["int8"]["latent_cosine_mean"] > 0.98
    assert not [p for p in bundle.iterdir() if p.name.startswith("dfc_")]  # the contract's files stay out


def test_a_dfc_refusal_comes_back_as_one_line(dfc_python: Path, tmp_path: Path):
    """The DFC cannot read the graph; the stage's response carries the first line of its error."""
    bad_onnx = tmp_path / "missing.onnx"
    with pytest.raises(CompileError, match=r"Hailo DFC failed on missing\.onnx: "):
        hailo_compile.compile_hef(
            bad_onnx,
            default_normalization(),
            np.zeros((64, 100, 9), np.float32),
            "hailo8",
            tmp_path,
            (np.zeros((64, 64)), np.zeros((64, 12))),
            str(dfc_python),
        )


def test_a_request_of_another_contract_is_refused(dfc_python: Path, tmp_path: Path):
    request = dict.fromkeys(dfc_stage.REQUEST_KEYS, "") | {"contract": dfc_stage.CONTRACT + 1}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run(
        [str(dfc_python), "-m", "compile.dfc_stage", str(path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 2
    assert f"contract {dfc_stage.CONTRACT + 1}, this stage speaks {dfc_stage.CONTRACT}" in done.stderr
