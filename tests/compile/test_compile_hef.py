"""The DFC flow against the ClientRunner test double (tests/doubles/hailo_sdk_client, not Hailo's DFC)."""

import json
from pathlib import Path

import numpy as np
import pytest

from app.backends.hailort_backend import hef_z_score
from bundle_contract.files import verify_bundle
from bundle_contract.metadata import HefEntry
from bundle_contract.tensors import HEF_INPUT
from compile import dfc_probe, hailo_compile
from compile.build import BuildOptions, build, plan
from compile.errors import CompileError
from compile.export import (
    HAILO_INPUT_NAME,
    LATENT_NODE,
    MOTIF_NODE,
    build_onnx,
    encode_latents,
    hailo_input,
    save_onnx,
)
from compile.load import load_source
from compile.motifs import fit_motifs
from compile.normalization import default_normalization
from compile.reference_windows import synthetic_windows
from compile.timing import StageTimer


def test_without_dfc_the_notice_names_the_wheel():
    assert dfc_probe.dfc_version() is None
    notice = dfc_probe.skip_notice()
    assert "hailo_sdk_client" in notice
    assert "hailo_dataflow_compiler-3.33" in notice


def test_compile_hef_without_dfc_fails_clearly(tmp_path: Path):
    with pytest.raises(CompileError, match=r"Dataflow Compiler 3\.33"):
        hailo_compile.compile_hef(
            tmp_path / "x.onnx",
            default_normalization(),
            np.zeros((64, 100, 9), np.float32),
            "hailo8",
            tmp_path,
            (np.zeros((64, 64)), np.zeros((64, 12))),
        )


def test_require_hef_without_dfc_fails_before_any_work(tmp_path: Path):
    with pytest.raises(CompileError, match="--require-hef: hailo_sdk_client is not importable"):
        build(BuildOptions(source=None, out=tmp_path, require_hef=True), StageTimer())
    assert list(tmp_path.iterdir()) == []


def test_model_script_leaves_the_z_score_to_the_host():
    """A ``normalization`` line would z-score again on chip what the host already z-scored."""
    assert hailo_compile.model_script(64).splitlines() == [
        "model_optimization_config(calibration, batch_size=8, calibset_size=64)"
    ]


@pytest.fixture
def double_bundle(dfc_double, tmp_path: Path, trained_onnx: Path, model_config: Path) -> Path:
    return build(
        BuildOptions(source=trained_onnx, out=tmp_path, require_hef=True, config=model_config),
        StageTimer(),
    )


def test_clientrunner_flow_with_the_double(dfc_double, double_bundle: Path):
    """Once per chip family of the default list, each with its own ClientRunner(hw_arch=...)."""
    calls = [name for name, _ in dfc_double.CALLS]
    assert calls == 2 * [
        "ClientRunner",
        "translate_onnx_model",
        "save_har",
        "load_model_script",
        "optimize",
        "save_har",
        "infer_context",
        "infer",
        "compile",
        "save_har",
    ]
    runners = [a for name, a in dfc_double.CALLS if name == "ClientRunner"]
    assert runners == [{"hw_arch": "hailo8"}, {"hw_arch": "hailo8l"}]
    args = dict(dfc_double.CALLS)
    translate = args["translate_onnx_model"]
    assert translate["start_node_names"] == [HAILO_INPUT_NAME]
    assert translate["end_node_names"] == [LATENT_NODE, MOTIF_NODE]
    assert translate["net_input_shapes"] == {HAILO_INPUT_NAME: [1, 9, 1, 100]}
    assert args["optimize"] == {"calib_shape": (168, 1, 100, 9), "dtype": "float32"}
    assert "normalization" not in args["load_model_script"]["model_script"]
    har_stages = [a["stage"] for name, a in dfc_double.CALLS if name == "save_har"]
    assert har_stages == 2 * ["parsed", "quantized", "compiled"]


def test_bundle_with_hef_lists_hef_and_hars(double_bundle: Path):
    metadata = verify_bundle(double_bundle)
    stages = ("parsed", "optimized", "compiled")
    assert metadata["model"]["kind"] == "hef"
    assert metadata["model"]["hw_archs"] == ["hailo8", "hailo8l"]
    assert metadata["model"]["hefs"] == {
        arch: {
            "file": f"tcn_encoder_{arch}.hef",
            "hars": [f"tcn_encoder_{arch}_{stage}.har" for stage in stages],
            "dfc_version": "3.33.0+test-double",
        }
        for arch in ("hailo8", "hailo8l")
    }
    assert all(list(entry) == list(HefEntry.__annotations__) for entry in metadata["model"]["hefs"].values())
    assert metadata["tools"]["hailo_sdk_client"] == "3.33.0+test-double"
    assert set(metadata["files"]) == {"tcn_encoder.onnx", "calibration_set.npy"} | {
        name
        for arch in ("hailo8", "hailo8l")
        for name in [f"tcn_encoder_{arch}.hef"] + [f"tcn_encoder_{arch}_{stage}.har" for stage in stages]
    }
    # Each .hef is the one compiled for its family (the double writes hw_arch after its magic).
    assert (double_bundle / "tcn_encoder_hailo8l.hef").read_bytes() == b"TEST-DOUBLE-HEF\nhailo8l"
    assert (double_bundle / "tcn_encoder_hailo8.hef").read_bytes() == b"TEST-DOUBLE-HEF\nhailo8"
    assert not (double_bundle / "tcn_encoder_hailo_input.onnx").exists()
    har = double_bundle / "tcn_encoder_hailo8_compiled.har"
    assert json.loads(har.read_text())["stage"] == "compiled"


def test_metadata_declares_the_z_scored_hef_input_the_app_accepts(double_bundle: Path):
    metadata = verify_bundle(double_bundle)
    assert metadata["model"]["hef_input"] == HEF_INPUT
    assert metadata["model"]["hef_input"]["values"] == "z_scored"
    mean, std = hef_z_score(metadata)  # the HailoRT backend reads this very metadata
    np.testing.assert_array_equal(mean, np.float32(metadata["normalization"]["mean"]))
    np.testing.assert_array_equal(std, np.float32(metadata["normalization"]["std"]))


def test_a_compile_that_forgot_the_z_score_is_caught_by_the_double(
    dfc_double, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def raw_nhwc(normalization, windows):
        return np.ascontiguousarray(windows.reshape(-1, 1, 100, 9), dtype=np.float32)

    monkeypatch.setattr(hailo_compile, "hailo_input", raw_nhwc)
    with pytest.raises(CompileError, match=r"ValueError: test double .* takes z-scored input"):
        build(BuildOptions(source=None, out=tmp_path), StageTimer())


def test_the_double_rejects_raw_and_twice_z_scored_calibration(dfc_double, tmp_path: Path):
    normalization = default_normalization()
    windows, _ = synthetic_windows()
    z = hailo_input(normalization, windows)
    onnx_path = tmp_path / "hailo.onnx"
    source = load_source(None)
    motifs = fit_motifs(encode_latents(source.encoder, normalization, windows), None)
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}, raw_input=False), onnx_path)

    def runner(script: str):
        r = dfc_double.ClientRunner(hw_arch="hailo8")
        r.translate_onnx_model(
            str(onnx_path),
            "t",
            start_node_names=[HAILO_INPUT_NAME],
            end_node_names=[LATENT_NODE, MOTIF_NODE],
            net_input_shapes={HAILO_INPUT_NAME: [1, 9, 1, 100]},
        )
        r.load_model_script(script)
        return r

    runner("").optimize(z)  # z-scored: accepted
    with pytest.raises(ValueError, match=r"channels \[2, 6, 7, 8\]"):  # gravity and magnetometer
        runner("").optimize(np.ascontiguousarray(windows.reshape(-1, 1, 100, 9)))
    mean, std = (", ".join(map(str, v)) for v in (normalization.mean, normalization.std))
    with pytest.raises(ValueError, match="takes z-scored input"):
        runner(f"normalization1 = normalization([{mean}], [{std}])").optimize(z)


def test_emulator_figures_replace_the_ort_proxy(double_bundle: Path):
    int8 = verify_bundle(double_bundle)["verification"]["int8"]
    assert int8["method"] == "Hailo DFC 3.33.0+test-double SDK_QUANTIZED emulator (hailo8)"
    per_family = verify_bundle(double_bundle)["verification"]["int8_per_family"]
    assert sorted(per_family) == ["hailo8", "hailo8l"] and per_family["hailo8"] == int8
    assert int8["windows"] == hailo_compile.EMULATOR_WINDOWS
    # The double runs the real graph with the script's normalization: a wrong script or layout would
    # scramble the latents and the cosine would collapse.
    assert int8["latent_cosine_mean"] > 0.98
    assert int8["top_motif_agreement"] > 0.8


def test_dfc_version_changes_the_bundle_version(dfc_double, tmp_path: Path, default_bundle: Path):
    with_dfc = build(BuildOptions(source=None, out=tmp_path, hw_archs=("hailo8",)), StageTimer())
    assert with_dfc.name != default_bundle.name
    assert verify_bundle(with_dfc)["model"]["hefs"]["hailo8"]["file"] == "tcn_encoder_hailo8.hef"


def test_the_family_list_not_the_targeted_pis_sets_the_version(dfc_double, tmp_path: Path):
    """The bundle version hashes the configured family list (order-free), never which Pis a run targets."""
    timer = StageTimer()
    both = plan(BuildOptions(source=None, out=tmp_path, hw_archs=("hailo8", "hailo8l")), timer)[0]
    swapped = plan(BuildOptions(source=None, out=tmp_path, hw_archs=("hailo8l", "hailo8")), timer)[0]
    one = plan(BuildOptions(source=None, out=tmp_path, hw_archs=("hailo8",)), timer)[0]
    assert both == swapped and both != one


def test_a_family_listed_twice_is_refused(tmp_path: Path):
    with pytest.raises(CompileError, match="each once"):
        build(BuildOptions(source=None, out=tmp_path, hw_archs=("hailo8", "hailo8")), StageTimer())


def test_dfc_errors_become_one_line(dfc_double, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(self, calib_data):
        raise RuntimeError("Unsupported layer: Pad\nstack...")

    monkeypatch.setattr(dfc_double.ClientRunner, "optimize", broken)
    with pytest.raises(CompileError, match=r"Hailo DFC failed on .*: RuntimeError: Unsupported layer: Pad$"):
        build(BuildOptions(source=None, out=tmp_path), StageTimer())
    assert [p.name for p in tmp_path.iterdir()] == []


def test_our_translated_graph_uses_only_layers_hailos_parser_supports(dfc_double):
    """What compile hands the DFC (z-scored imu_nchw in) holds only ops of the DFC docs' supported layers."""
    normalization = default_normalization()
    windows, _ = synthetic_windows()
    source = load_source(None)
    motifs = fit_motifs(encode_latents(source.encoder, normalization, windows), None)
    graph = build_onnx(source.encoder, normalization, motifs, {}, raw_input=False).graph
    used = {node.op_type for node in graph.node}
    supported = dfc_double.SUPPORTED_ONNX_OPS  # the double's list, cited in tests/doubles/hailo_sdk_client
    # Pad only as the zero padding of a causal convolution, which the parser folds into the Conv.
    assert used - supported == {"Pad"}
    for pad in (n for n in graph.node if n.op_type == "Pad"):
        assert [n.op_type for n in graph.node if pad.output[0] in n.input] == ["Conv"]
    assert {"Conv", "Relu", "Add", "GlobalAveragePool", "Gemm", "Softmax"} <= used


def test_the_double_refuses_layers_the_parser_does_not_support(dfc_double, tmp_path: Path):
    """The served graph's raw-input prologue (Transpose, Unsqueeze) is why the DFC gets the z-scored graph."""
    normalization = default_normalization()
    windows, _ = synthetic_windows()
    source = load_source(None)
    motifs = fit_motifs(encode_latents(source.encoder, normalization, windows), None)
    served = tmp_path / "served.onnx"
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}), served)
    with pytest.raises(dfc_double.UnsupportedLayerError, match=r"Transpose \(layout/transpose\).*Unsqueeze"):
        dfc_double.ClientRunner(hw_arch="hailo8").translate_onnx_model(
            str(served), "t", start_node_names=["imu_window"], end_node_names=[LATENT_NODE, MOTIF_NODE]
        )
