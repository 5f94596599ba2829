"""The bundle a build writes: DESIGN.md's metadata keys, the golden window, versioning and reuse."""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bundle_contract.files import verify_bundle
from bundle_contract.input_ranges import default_ranges
from bundle_contract.metadata import Golden, Metadata, Model
from compile.build import BuildOptions, build, tool_versions
from compile.bundle import bundle_version, write_metadata
from compile.errors import CompileError
from compile.export import EXPORTER_VERSION
from compile.reference_windows import synthetic_window, synthetic_windows
from compile.timing import StageTimer
from compile.verify import run_exported

DESIGN_KEYS = {
    "schema_version",
    "name",
    "version",
    "untrained_default",
    "source",
    "files",
    "model",
    "inputs",
    "outputs",
    "normalization",
    "motifs",
    "verification",
    "tools",
    "golden",
}


@pytest.mark.parametrize("bundle_fixture", ["default_bundle", "trained_bundle"])
def test_metadata_has_the_design_keys(bundle_fixture: str, request: pytest.FixtureRequest):
    bundle = request.getfixturevalue(bundle_fixture)
    metadata = verify_bundle(bundle)
    assert set(metadata) >= DESIGN_KEYS
    assert metadata["version"] == bundle.name and bundle.name.startswith("tcn-") and len(bundle.name) == 16
    assert metadata["model"] == metadata["model"] | {
        "onnx": "tcn_encoder.onnx",
        "kind": "onnx-only",
        "hefs": {},
        "hw_archs": ["hailo8", "hailo8l"],
    }
    assert metadata["inputs"] == [{"name": "imu_window", "shape": ["N", 100, 9], "dtype": "float32"}]
    assert [o["name"] for o in metadata["outputs"]] == ["latent_embeddings", "motif_scores"]
    assert metadata["normalization"]["method"] == "z_score_per_channel"
    assert len(metadata["normalization"]["mean"]) == 9
    assert metadata["input_ranges"] == default_ranges().to_metadata()  # what the app checks raw windows with
    assert metadata["motifs"]["count"] == 12 and len(metadata["motifs"]["prototypes"]) == 12
    assert metadata["motifs"]["temperature"] > 0
    assert metadata["tools"]["hailo_sdk_client"] is None


def test_the_metadata_written_is_the_contracts_schema(default_bundle: Path):
    """compile writes the keys bundle_contract.metadata describes, in its order and no more: a new field is
    added there first."""
    metadata = verify_bundle(default_bundle)
    assert list(metadata) == list(Metadata.__annotations__)
    assert list(metadata["model"]) == list(Model.__annotations__)
    assert list(metadata["golden"]) == list(Golden.__annotations__)


def test_metadata_lacking_a_schema_key_is_never_written(tmp_path: Path):
    (tmp_path / "tcn_encoder.onnx").write_bytes(b"onnx")
    metadata: Any = {key: {} for key in Metadata.__annotations__ if key != "golden"}
    with pytest.raises(CompileError, match=r"model_metadata\.json: the metadata written lacks 'golden'"):
        write_metadata(tmp_path, metadata)
    assert not (tmp_path / "model_metadata.json").exists()


def test_default_bundle_is_labelled_untrained(default_bundle: Path):
    metadata = verify_bundle(default_bundle)
    assert metadata["untrained_default"] is True
    assert metadata["source"]["kind"] == "default" and metadata["source"]["path"] is None


def test_trained_bundle_records_its_source_and_figures(trained_bundle: Path, trained_onnx: Path):
    metadata = verify_bundle(trained_bundle)
    assert metadata["untrained_default"] is False
    assert metadata["source"] == metadata["source"] | {
        "kind": "onnx",
        "path": str(trained_onnx),
        "sha256": "6319428963a4b4ade1d26b6bec7e40b7c5da8602140f9501e7817f3c411cbd55",
    }
    verification = metadata["verification"]
    assert verification["windows"] >= 64
    assert verification["onnxruntime_vs_torch"]["latent_max_abs"] <= 1e-4
    assert verification["source_onnx_vs_export"]["latent_max_abs"] <= 1e-4
    assert verification["int8"]["latent_cosine_mean"] > 0.9


@pytest.mark.parametrize("bundle_fixture", ["default_bundle", "trained_bundle"])
def test_golden_window_reproduces_with_the_bundled_onnx(bundle_fixture: str, request: pytest.FixtureRequest):
    bundle = request.getfixturevalue(bundle_fixture)
    golden = verify_bundle(bundle)["golden"]
    window = np.asarray(golden["window"], np.float32)
    np.testing.assert_array_equal(window, synthetic_window("walking"))
    latent, scores = run_exported(bundle / "tcn_encoder.onnx", window[None])
    assert np.abs(latent[0] - golden["latent"]).max() <= golden["tolerance"]["latent_max_abs"]
    assert np.abs(scores[0] - golden["motif_scores"]).max() <= 1e-5
    assert golden["tolerance"] == {"latent_max_abs": 1e-3, "latent_min_cosine": 0.98}


def test_calibration_set_is_the_raw_reference_windows(default_bundle: Path):
    calibration = np.load(default_bundle / "calibration_set.npy")
    np.testing.assert_array_equal(calibration, synthetic_windows()[0])


def test_same_inputs_reuse_the_bundle(default_bundle: Path):
    metadata_file = default_bundle / "model_metadata.json"
    before = metadata_file.stat().st_mtime_ns
    again = build(BuildOptions(source=None, out=default_bundle.parent), StageTimer())
    assert again == default_bundle
    assert metadata_file.stat().st_mtime_ns == before


def test_damaged_bundle_is_rebuilt(tmp_path: Path):
    first = build(BuildOptions(source=None, out=tmp_path), StageTimer())
    (first / "tcn_encoder.onnx").write_bytes(b"broken")
    second = build(BuildOptions(source=None, out=tmp_path), StageTimer())
    assert second == first
    verify_bundle(second)
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no staging leftovers


def test_version_depends_on_every_input():
    windows = synthetic_windows(per_activity=2)[0]
    normalization = {"method": "z", "mean": [0.0] * 9, "std": [1.0] * 9, "channel_order": list("abcdefghi")}
    ranges = default_ranges().to_metadata()
    tools = tool_versions(None)

    def version(**changes: Any) -> str:
        args = {
            "source_sha256": "a" * 64,
            "normalization": normalization,
            "reference_windows": windows,
            "hw_archs": ["hailo8"],
            "exporter_version": EXPORTER_VERSION,
            "tools": tools,
            "input_ranges": ranges,
        }
        return bundle_version(**(args | changes))

    base = version()
    assert base == version(
        normalization=dict(normalization, source="elsewhere"), input_ranges=dict(ranges, source="elsewhere")
    )
    variants = [
        version(source_sha256="b" * 64),
        version(normalization=dict(normalization, std=[2.0] * 9)),
        version(reference_windows=windows * 1.01),
        version(hw_archs=["hailo8l"]),
        version(exporter_version=EXPORTER_VERSION + ".next"),
        version(tools=dict(tools, hailo_sdk_client="3.33.0")),
        version(tools=dict(tools, torch="0.0.1")),
        version(input_ranges=dict(ranges, max=[1.0] * 9)),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_a_rebuild_of_one_version_elsewhere_is_byte_for_byte_the_same(tmp_path: Path, default_bundle: Path):
    """A second control host (or a fresh checkout) builds the bundle a Pi already holds under that version:
    the release manifest's digests must match what the Pi has, so nothing of the build's run may be in it."""
    again = build(BuildOptions(source=None, out=tmp_path), StageTimer())
    assert again.name == default_bundle.name and again != default_bundle
    files = sorted(p.name for p in default_bundle.iterdir())
    assert files == sorted(p.name for p in again.iterdir())
    for name in files:
        assert (again / name).read_bytes() == (default_bundle / name).read_bytes(), name


def test_user_reference_windows_change_motifs_and_version(tmp_path: Path, default_bundle: Path):
    windows, _ = synthetic_windows(per_activity=4, seed=123)
    path = tmp_path / "mine.npy"
    np.save(path, windows)
    bundle = build(BuildOptions(source=None, out=tmp_path / "out", reference_windows=path), StageTimer())
    metadata = verify_bundle(bundle)
    assert bundle.name != default_bundle.name
    assert metadata["motifs"]["fit"]["reference"] == {
        "kind": "file",
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "windows": 28,
    }
    assert "dominant_activity" not in metadata["motifs"]["fit"]
    np.testing.assert_array_equal(np.load(bundle / "calibration_set.npy"), windows)
    # Verification covers the held-out synthetic windows plus the user's own.
    assert metadata["verification"]["windows"] == 70 + 28


def test_metadata_is_strict_json(default_bundle: Path):
    # Python would write NaN/Infinity, which other JSON parsers (Ansible's, Swift's) reject.
    def reject(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    json.loads((default_bundle / "model_metadata.json").read_text(), parse_constant=reject)


def test_too_few_user_windows_are_named(tmp_path: Path, shared_file):
    path = shared_file("samples", "realistic_imu_sample.json")
    with pytest.raises(CompileError, match=r"realistic_imu_sample\.json: 1 reference windows, the 12 motifs"):
        build(BuildOptions(source=None, out=tmp_path, reference_windows=path), StageTimer())


def test_near_duplicate_reference_windows_pass_verification_with_graded_scores(tmp_path: Path):
    # What users record: a few activities, mostly still, each repeated with a little sensor noise and a time
    # shift. The median nearest-prototype distance then collapses towards 0; before the temperature floor and
    # the centered Gemm, ONNX Runtime's float32 motif scores were ~5e-2 off and the build failed verification.
    rng = np.random.default_rng(3)
    bases = [synthetic_window(a, seed=s) for a, s in [("still", 1), ("still", 2), ("stationary", 3)]]
    bases += [synthetic_window("walking", seed=4), synthetic_window("turning", seed=5)]
    noise = np.array([0.05, 0.05, 0.05, 0.005, 0.005, 0.005, 0.4, 0.4, 0.4]) * 0.05
    windows = np.stack(
        [
            np.roll(bases[i % len(bases)], int(rng.integers(-3, 4)), axis=0)
            + rng.normal(0.0, 1.0, (100, 9)) * noise
            for i in range(100)
        ]
    ).astype(np.float32)
    path = tmp_path / "near_duplicates.npy"
    np.save(path, windows)
    bundle = build(BuildOptions(source=None, out=tmp_path / "out", reference_windows=path), StageTimer())
    metadata = verify_bundle(bundle)
    assert metadata["verification"]["onnxruntime_vs_torch"]["motif_max_abs"] <= 1e-4
    fit = metadata["motifs"]["fit"]
    assert fit["temperature_floored"] and metadata["motifs"]["temperature"] == fit["temperature_floor"]
    # Graded on windows unlike the recording (the collapsed temperature made ~90% of them one-hot). Windows
    # sitting on an isolated prototype of the recording may still be one-hot: they clearly are that motif.
    others, _ = synthetic_windows(per_activity=4, seed=99)
    _, scores = run_exported(bundle / "tcn_encoder.onnx", others)
    assert np.all((scores >= 0) & (scores <= 1))
    top = scores.max(axis=1)
    assert np.median(top) < 0.9 and np.mean(top > 0.99) < 0.5
