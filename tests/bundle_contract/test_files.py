"""bundle_contract.files and its `python -m app.bundle` entry: the one check of a bundle's integrity that
the app, the roles and compile share."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bundle_contract.files import METADATA_FILE, BundleError, file_digest, verify_bundle


@pytest.fixture
def bundle_copy(default_bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / default_bundle.name
    shutil.copytree(default_bundle, copy)
    return copy


def test_intact_bundle_returns_its_metadata(bundle_copy: Path):
    metadata = verify_bundle(bundle_copy)
    assert metadata["version"] == bundle_copy.name
    assert set(metadata["files"]) == {"tcn_encoder.onnx", "calibration_set.npy"}


def test_file_digest_matches_hashlib(tmp_path: Path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"hailo" * 1000)
    assert file_digest(target) == {"sha256": hashlib.sha256(b"hailo" * 1000).hexdigest(), "size": 5000}


def test_tampered_file_is_named(bundle_copy: Path):
    onnx_file = bundle_copy / "tcn_encoder.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-10] ^= 0xFF  # same size, different content
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"tcn_encoder\.onnx: sha256 .* does not match"):
        verify_bundle(bundle_copy)


def test_truncated_file_reports_size(bundle_copy: Path):
    calibration = bundle_copy / "calibration_set.npy"
    calibration.write_bytes(calibration.read_bytes()[:100])
    with pytest.raises(BundleError, match=r"calibration_set\.npy: size 100 bytes"):
        verify_bundle(bundle_copy)


def test_extra_file_is_rejected(bundle_copy: Path):
    (bundle_copy / "notes.txt").write_text("not part of the bundle")
    with pytest.raises(BundleError, match=r"notes\.txt: file is not listed"):
        verify_bundle(bundle_copy)


def test_missing_file_is_named(bundle_copy: Path):
    (bundle_copy / "calibration_set.npy").unlink()
    with pytest.raises(
        BundleError, match=r"calibration_set\.npy: listed in model_metadata\.json but missing"
    ):
        verify_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "missing"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ("{}", "'files'"),
    ],
)
def test_bad_metadata_is_named(bundle_copy: Path, content: str | None, reason: str):
    metadata = bundle_copy / METADATA_FILE
    if content is None:
        metadata.unlink()
    else:
        metadata.write_text(content)
    with pytest.raises(BundleError, match=reason) as error:
        verify_bundle(bundle_copy)
    assert METADATA_FILE in str(error.value)
    assert "\n" not in str(error.value)


def test_metadata_lacking_a_key_readers_need_is_named(bundle_copy: Path):
    metadata = json.loads((bundle_copy / METADATA_FILE).read_text())
    del metadata["golden"]
    (bundle_copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(BundleError, match=r"model_metadata\.json: lacks 'golden'$"):
        verify_bundle(bundle_copy)


def test_listed_path_outside_the_folder_is_rejected(bundle_copy: Path):
    metadata = json.loads((bundle_copy / METADATA_FILE).read_text())
    metadata["files"]["../escape"] = {"sha256": "0" * 64, "size": 1}
    (bundle_copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(BundleError, match="not a plain file name"):
        verify_bundle(bundle_copy)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(BundleError, match="does not exist"):
        verify_bundle(tmp_path / "nope")


# The Pi's entry (the release venv) and the control host's (inference_app's preflight): one main, one answer.
ENTRIES = ["app.bundle", "bundle_contract.files"]


def _module_cli(repo: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=repo, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("module", ENTRIES)
def test_cli_prints_summary_for_intact_bundle(bundle_copy: Path, repo_root: Path, module: str):
    result = _module_cli(repo_root, module, str(bundle_copy))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == {
        "version": bundle_copy.name,
        "files": ["calibration_set.npy", "tcn_encoder.onnx"],
        "untrained_default": True,
        "kind": "onnx-only",
        "hefs": {},
    }


@pytest.mark.parametrize("module", ENTRIES)
def test_cli_exit_1_with_reason_for_damaged_bundle(bundle_copy: Path, repo_root: Path, module: str):
    (bundle_copy / "extra.bin").write_bytes(b"x")
    result = _module_cli(repo_root, module, str(bundle_copy))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "extra.bin" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_preflight_names_the_damaged_file_and_its_sha256(bundle_copy: Path, repo_root: Path):
    # What inference_app's preflight puts in its refusal (the fleet fault test looks for these words).
    onnx_file = bundle_copy / "tcn_encoder.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    result = _module_cli(repo_root, "bundle_contract.files", str(bundle_copy))
    assert result.returncode == 1
    assert result.stderr.startswith(f"bundle invalid: {onnx_file}: sha256 ")


@pytest.mark.parametrize("module", ENTRIES)
def test_cli_usage_names_its_entry(repo_root: Path, module: str):
    result = _module_cli(repo_root, module)
    assert result.returncode == 2 and result.stderr == f"usage: python -m {module} BUNDLE_DIR\n"
