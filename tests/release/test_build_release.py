"""release/build_release.py run as the build playbook runs it: the real pip, PyPI, wheels for x86_64."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]
# What build_release.py reads from the repo (its own folder, the wheel sources).
SNAPSHOT = (
    "release/build_release.py",
    "release/pi_constraints.txt",
    "release/pi_constraints-trixie.txt",
    "pyproject.toml",
    "app",
    "bundle_contract",
    "compile",
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the script and the sources it builds from, so every build in this module sees the same
    source even while the working tree is being edited."""
    root = tmp_path_factory.mktemp("source")
    for name in SNAPSHOT:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, root / name)
    return root


def build_release(source: Path, bundle: Path, out: Path, *extra: str, env: dict[str, str] | None = None):
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(source)  # the snapshot's bundle_contract, not the working tree's
    command = [sys.executable, str(source / "release" / "build_release.py")]
    return subprocess.run(
        [*command, "--bundle", str(bundle), "--platform", "x86_64", "--out", str(out), *extra],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def constraints(source: Path) -> dict[str, str]:
    pins = {}
    for line in (source / "release" / "pi_constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def wheels(wheelhouse: Path) -> dict[str, tuple[str, Path]]:
    found: dict[str, tuple[str, Path]] = {}
    for wheel in wheelhouse.glob("*.whl"):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        assert name not in found, f"two wheels of {name} in {wheelhouse}"
        found[name] = (str(version), wheel)
    return found


def app_wheel(wheelhouse: Path) -> Path:
    (wheel,) = wheelhouse.glob("hailo_pipeline-*.whl")
    return wheel


@pytest.fixture(scope="module")
def first_build(
    source: Path, default_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("release-a")
    result = build_release(source, default_bundle, out)
    assert result.returncode == 0, result.stderr
    return {"out": out, "stdout": result.stdout, "manifest": json.loads((out / "release.json").read_text())}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("build_release: ")
    for needle in needles:
        assert needle in lines[0]
    assert result.stdout == ""


def test_folder_without_metadata_is_not_a_bundle(source: Path, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-bundle"
    folder.mkdir()
    (folder / "tcn_encoder.onnx").write_bytes(b"onnx")
    out = tmp_path / "out"
    result = build_release(source, folder, out)
    assert_one_line_error(result, str(folder), "is not a bundle folder (no model_metadata.json)")
    assert not out.exists()


def test_missing_bundle_path_is_refused(source: Path, tmp_path: Path) -> None:
    result = build_release(source, tmp_path / "nowhere", tmp_path / "out")
    assert_one_line_error(result, "nowhere", "is not a bundle folder")


def tampered_copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    return copy


def test_tampered_model_file_names_the_file(source: Path, default_bundle: Path, tmp_path: Path) -> None:
    bundle = tampered_copy(default_bundle, tmp_path)
    with (bundle / "tcn_encoder.onnx").open("ab") as handle:
        handle.write(b"\0")
    result = build_release(source, bundle, tmp_path / "out")
    assert_one_line_error(result, "does not verify", "tcn_encoder.onnx")
    assert not (tmp_path / "out").exists()


def test_same_size_corruption_is_caught(source: Path, default_bundle: Path, tmp_path: Path) -> None:
    bundle = tampered_copy(default_bundle, tmp_path)
    data = bytearray((bundle / "calibration_set.npy").read_bytes())
    data[-1] ^= 0xFF
    (bundle / "calibration_set.npy").write_bytes(bytes(data))
    result = build_release(source, bundle, tmp_path / "out")
    assert_one_line_error(result, "does not verify", "calibration_set.npy")


def test_unlisted_file_in_bundle_is_refused(source: Path, default_bundle: Path, tmp_path: Path) -> None:
    bundle = tampered_copy(default_bundle, tmp_path)
    (bundle / "extra.bin").write_bytes(b"x")
    result = build_release(source, bundle, tmp_path / "out")
    assert_one_line_error(result, "does not verify", "extra.bin")


def test_unreadable_metadata_is_refused(source: Path, default_bundle: Path, tmp_path: Path) -> None:
    bundle = tampered_copy(default_bundle, tmp_path)
    (bundle / "model_metadata.json").write_text("{not json")
    result = build_release(source, bundle, tmp_path / "out")
    assert_one_line_error(result, "does not verify", "model_metadata.json", "invalid JSON")


def test_pip_failure_is_one_line_and_leaves_no_wheelhouse(
    source: Path, default_bundle: Path, tmp_path: Path
) -> None:
    # An index nobody listens on, no cache, no config: pip fails fast; the staging folder must not survive.
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PIP_")},
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_CONFIG_FILE": os.devnull,
    }
    out = tmp_path / "out"
    result = build_release(source, default_bundle, out, env=env)
    assert_one_line_error(result, "failed: ")
    assert list((out / "runtimes").iterdir()) == []
    assert not (out / "release.json").exists()


def test_manifest_names_bundle_and_wheelhouse(
    source: Path, first_build: dict[str, Any], bundle_metadata: dict[str, Any], default_bundle: Path
) -> None:
    manifest = first_build["manifest"]
    out: Path = first_build["out"]
    wheelhouse = Path(manifest["wheelhouse_dir"])
    assert wheelhouse.parent == out / "runtimes"
    assert re.fullmatch("[0-9a-f]{12}", wheelhouse.name)
    assert manifest["runtime_id"] == wheelhouse.name
    assert manifest["bundle_version"] == bundle_metadata["version"]
    assert manifest["release"] == f"{bundle_metadata['version']}-{wheelhouse.name}"
    assert manifest["python"] == "3.11"
    assert Path(manifest["bundle_dir"]) == default_bundle.resolve()
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    assert manifest["app_version"] == project["version"]
    assert manifest["platform"] == "x86_64"
    # stdout: the manifest as JSON, then its path (what the build playbook reads).
    printed, path = first_build["stdout"].strip().splitlines()
    assert json.loads(printed) == manifest
    assert Path(path) == out / "release.json"
    # Only the finished wheelhouse: no staging folder left behind.
    assert [p.name for p in (out / "runtimes").iterdir()] == [wheelhouse.name]


def test_manifest_carries_every_parts_checksum_and_size(
    first_build: dict[str, Any], default_bundle: Path
) -> None:
    # What the Pi verifies each part against, and what preflight's free-space check adds up.
    manifest = first_build["manifest"]
    wheelhouse = Path(manifest["wheelhouse_dir"])
    on_disk = {
        wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in wheelhouse.glob("*.whl")
    }
    assert manifest["wheels"] == on_disk
    metadata = (default_bundle / "model_metadata.json").read_bytes()
    assert manifest["bundle_metadata_sha256"] == hashlib.sha256(metadata).hexdigest()
    assert manifest["bundle_bytes"] == sum(p.stat().st_size for p in default_bundle.rglob("*") if p.is_file())
    assert manifest["wheel_bytes"] == sum(p.stat().st_size for p in wheelhouse.iterdir())
    # Wheels are zip files: installed, they take more room than compressed.
    assert manifest["installed_bytes"] > manifest["wheel_bytes"]


def test_the_runtime_id_covers_the_interpreter(source: Path, first_build: dict[str, Any]) -> None:
    sys.path.insert(0, str(source / "release"))
    try:
        import build_release as script
    finally:
        sys.path.pop(0)
    wheels_ = first_build["manifest"]["wheels"]
    rid = script.runtime_id(wheels_, "x86_64", "3.11")
    assert rid == first_build["manifest"]["runtime_id"]
    assert script.runtime_id(wheels_, "x86_64", "3.13") != rid
    assert script.runtime_id(wheels_, "aarch64", "3.11") != rid
    one_wheel_changed = {**wheels_, next(iter(wheels_)): "0" * 64}
    assert script.runtime_id(one_wheel_changed, "x86_64", "3.11") != rid


def test_wheelhouse_matches_the_pi_constraints_exactly(source: Path, first_build: dict[str, Any]) -> None:
    wheelhouse = Path(first_build["manifest"]["wheelhouse_dir"])
    found = wheels(wheelhouse)
    pins = constraints(source)
    pins["pip"] = "25.3"
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    pins[canonicalize_name(project["name"])] = project["version"]
    assert {name: version for name, (version, _) in found.items()} == pins
    assert found["numpy"][0] == "1.26.4"


def test_app_wheel_carries_the_bundle_contract(first_build: dict[str, Any]) -> None:
    # The roles' `python -m app.bundle` imports it from the release venv.
    with zipfile.ZipFile(app_wheel(Path(first_build["manifest"]["wheelhouse_dir"]))) as archive:
        names = set(archive.namelist())
    assert {"app/bundle.py", "bundle_contract/files.py", "bundle_contract/golden.py"} <= names


def test_wheelhouse_installs_on_a_cp311_x86_64_linux(first_build: dict[str, Any]) -> None:
    for wheel in Path(first_build["manifest"]["wheelhouse_dir"]).glob("*.whl"):
        tags = parse_wheel_filename(wheel.name)[3]
        assert any(
            tag.interpreter in ("py3", "cp311", "cp310", "py2.py3")
            and tag.abi in ("none", "cp311", "abi3")
            and (tag.platform == "any" or tag.platform.endswith("_x86_64"))
            for tag in tags
        ), wheel.name
        # Bookworm's glibc is 2.36: no wheel may need a newer one.
        for tag in tags:
            if tag.platform.startswith("manylinux_2_"):
                assert int(tag.platform.split("_")[2]) <= 36, wheel.name


def test_rebuild_gives_the_same_app_wheel_and_build_id(
    source: Path, first_build: dict[str, Any], default_bundle: Path, tmp_path: Path
) -> None:
    # A fresh checkout has other file times: the app wheel, and so the build id, must not depend on them.
    later = time.time() + 86400
    for path in source.rglob("*"):
        os.utime(path, (later, later))
    result = build_release(source, default_bundle, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "release.json").read_text())
    first = Path(first_build["manifest"]["wheelhouse_dir"])
    second = Path(manifest["wheelhouse_dir"])
    assert app_wheel(second).read_bytes() == app_wheel(first).read_bytes()
    assert manifest["release"] == first_build["manifest"]["release"]


def test_second_run_reuses_the_wheelhouse(
    source: Path, first_build: dict[str, Any], default_bundle: Path
) -> None:
    out: Path = first_build["out"]
    wheelhouse = Path(first_build["manifest"]["wheelhouse_dir"])
    before = {p.name: p.stat().st_mtime_ns for p in wheelhouse.iterdir()}
    manifest = out / "other" / "release.json"
    result = build_release(source, default_bundle, out, "--manifest", str(manifest))
    assert result.returncode == 0, result.stderr
    assert f"reusing wheelhouse {wheelhouse}" in result.stderr
    assert json.loads(manifest.read_text()) == first_build["manifest"]
    assert [p.name for p in (out / "runtimes").iterdir()] == [wheelhouse.name]
    assert {p.name: p.stat().st_mtime_ns for p in wheelhouse.iterdir()} == before


# Target flags (--python, --glibc): a trixie Pi's wheelhouse is cp313 with its own pins.
def test_trixie_wheelhouse_is_cp313_with_trixie_numpy(
    source: Path, default_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = build_release(source, default_bundle, out, "--python", "3.13", "--glibc", "2.41")
    assert result.returncode == 0, result.stderr
    wheelhouse = Path(json.loads((out / "release.json").read_text())["wheelhouse_dir"])
    found = wheels(wheelhouse)
    # Debian trixie's python3-numpy is 2.2.4: the venv carries that one (release/pi_constraints-trixie.txt).
    assert found["numpy"][0] == "2.2.4"
    compiled = [wheel for _, wheel in found.values() if not wheel.name.endswith("-none-any.whl")]
    assert compiled, "no compiled wheels: the interpreter tag was not exercised"
    for wheel in compiled:
        tags = parse_wheel_filename(wheel.name)[3]
        assert any(tag.interpreter == "cp313" or tag.abi == "abi3" for tag in tags), wheel.name
        for tag in tags:
            if tag.platform.startswith("manylinux_2_"):
                assert int(tag.platform.split("_")[2]) <= 41, wheel.name


def test_python_without_pins_is_refused(source: Path, default_bundle: Path, tmp_path: Path) -> None:
    result = build_release(source, default_bundle, tmp_path / "out", "--python", "3.12")
    assert_one_line_error(result, "no Pi pins for CPython 3.12", "3.11, 3.13")
    assert not (tmp_path / "out").exists()


def test_malformed_target_versions_are_usage_errors(
    source: Path, default_bundle: Path, tmp_path: Path
) -> None:
    for flag, value in (("--python", "3"), ("--glibc", "2.41.1")):
        result = build_release(source, default_bundle, tmp_path / "out", flag, value)
        assert result.returncode == 2
        assert f"argument {flag}: '{value}' is not X.Y" in result.stderr


def test_a_docs_edit_keeps_the_runtime(
    source: Path, first_build: dict[str, Any], default_bundle: Path
) -> None:
    # The wheel's long description is a fixed line, so a README edit is no reason for a new venv on every Pi.
    out: Path = first_build["out"]
    # The manifest newer than every wheel source (an earlier test moved their times), the README newer still.
    newest = max(path.stat().st_mtime for path in source.rglob("*") if path.is_file())
    os.utime(out / "release.json", (newest + 10, newest + 10))
    (source / "README.md").write_text("edited after the release was built\n")
    os.utime(source / "README.md", (newest + 20, newest + 20))
    result = build_release(
        source, default_bundle, out, "--manifest", str(out / "again.json"),
        "--reuse-from", str(out / "release.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"reusing runtime {first_build['manifest']['runtime_id']}" in result.stderr
    assert json.loads((out / "again.json").read_text())["release"] == first_build["manifest"]["release"]
