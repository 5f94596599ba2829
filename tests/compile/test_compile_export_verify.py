"""The exported graph (layout, names, dynamic batch, opset) and its numerical verification."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import numpy_helper

from compile.build import Inputs, verification_windows
from compile.errors import CompileError
from compile.export import HAILO_INPUT_NAME, INPUT_NAME, OPSET, build_onnx, encode_latents, save_onnx
from compile.int8_check import int8_proxy, quantize_dfc_input
from compile.load import load_source
from compile.motifs import fit_motifs
from compile.normalization import default_normalization, load_normalization, z_score
from compile.reference_windows import synthetic_windows
from compile.verify import MIN_WINDOWS, run_exported, verify_export


@pytest.fixture(scope="module")
def default_parts():
    source = load_source(None)
    normalization = default_normalization()
    windows, labels = synthetic_windows()
    motifs = fit_motifs(encode_latents(source.encoder, normalization, windows), labels)
    return source, normalization, motifs, windows


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_io_names_shapes_and_opset(default_parts):
    source, normalization, motifs, _ = default_parts
    model = build_onnx(source.encoder, normalization, motifs, {"bundle_version": "tcn-x"})
    assert model.opset_import[0].version == OPSET == 13
    assert [(i.name, _dims(i)) for i in model.graph.input] == [(INPUT_NAME, ["N", 100, 9])]
    assert [(o.name, _dims(o)) for o in model.graph.output] == [
        ("latent_embeddings", ["N", 64]),
        ("motif_scores", ["N", 12]),
    ]
    assert {p.key: p.value for p in model.metadata_props} == {"bundle_version": "tcn-x"}


def test_convolutions_are_2d_with_height_one(default_parts):
    source, normalization, motifs, _ = default_parts
    model = build_onnx(source.encoder, normalization, motifs, {})
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 9
    dilations = set()
    for conv in convs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
        assert weights[conv.input[1]].ndim == 4 and weights[conv.input[1]].shape[2] == 1
        assert attrs["kernel_shape"][0] == 1 and attrs["dilations"][0] == 1
        dilations.add(attrs["dilations"][1])
    assert dilations == {1, 2, 4}
    # No Slice (chomp) left: causality is a left pad only.
    assert "Slice" not in {n.op_type for n in model.graph.node}


def test_normalization_is_inside_the_graph(default_parts):
    source, normalization, motifs, _ = default_parts
    model = build_onnx(source.encoder, normalization, motifs, {})
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_allclose(weights["normalize/mean"].ravel(), normalization.mean, rtol=1e-6)
    np.testing.assert_allclose(weights["normalize/std"].ravel(), normalization.std, rtol=1e-6)


def test_motif_head_centers_the_latent_before_its_gemm(default_parts):
    source, normalization, motifs, _ = default_parts
    model = build_onnx(source.encoder, normalization, motifs, {})
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    assert list(nodes["motifs/center"].input) == ["latent_embeddings", "motifs/mean"]
    assert nodes["motifs/gemm"].input[0] == nodes["motifs/center"].output[0]
    np.testing.assert_allclose(weights["motifs/mean"], motifs.prototypes.mean(axis=0), atol=1e-6)
    # Centered, the Gemm's weights and biases stay small next to the uncentered 2C/T and ||c||^2/T.
    c = motifs.prototypes.astype(np.float64)
    uncentered_bias = (c**2).sum(axis=1) / motifs.temperature
    assert np.abs(weights["motifs/bias"]).max() < np.abs(uncentered_bias).max()


def test_dynamic_batch_and_raw_input(default_parts, tmp_path: Path):
    source, normalization, motifs, windows = default_parts
    path = tmp_path / "m.onnx"
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}), path)
    for batch in (1, 5):
        latent, scores = run_exported(path, windows[:batch])
        assert latent.shape == (batch, 64) and scores.shape == (batch, 12)
        reference = encode_latents(source.encoder, normalization, windows[:batch])
        assert np.abs(latent - reference).max() <= 1e-4


def test_hailo_variant_takes_z_scored_nchw(default_parts, tmp_path: Path):
    source, normalization, motifs, windows = default_parts
    model = build_onnx(source.encoder, normalization, motifs, {}, raw_input=False)
    assert [(i.name, _dims(i)) for i in model.graph.input] == [(HAILO_INPUT_NAME, ["N", 9, 1, 100])]
    assert not {"Div", "Transpose"} & {n.op_type for n in model.graph.node}
    # The only Sub left centers the latent for the motif Gemm; the z-score is the host's job.
    assert [n.name for n in model.graph.node if n.op_type == "Sub"] == ["motifs/center"]
    path = tmp_path / "hailo.onnx"
    save_onnx(model, path)
    z = (windows[:4] - np.float32(normalization.mean)) / np.float32(normalization.std)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    latent = session.run(["latent_embeddings"], {HAILO_INPUT_NAME: z.transpose(0, 2, 1)[:, :, None, :]})[0]
    assert np.abs(latent - encode_latents(source.encoder, normalization, windows[:4])).max() <= 1e-4


def test_verify_reports_figures_within_tolerance(default_parts, tmp_path: Path):
    source, normalization, motifs, windows = default_parts
    path = tmp_path / "m.onnx"
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}), path)
    figures = verify_export(path, source, normalization, motifs, windows[:MIN_WINDOWS])
    assert figures["windows"] == MIN_WINDOWS
    assert figures["onnxruntime_vs_torch"]["latent_max_abs"] <= 1e-4
    assert figures["onnxruntime_vs_torch"]["motif_max_abs"] <= 1e-4
    assert figures["motif_scores_sum_max_dev"] < 1e-5
    assert "source_onnx_vs_export" not in figures


def test_verify_catches_a_wrong_weight(default_parts, tmp_path: Path):
    source, normalization, motifs, windows = default_parts
    model = build_onnx(source.encoder, normalization, motifs, {})
    for init in model.graph.initializer:
        if init.name == "block1/conv2/weight":
            array = numpy_helper.to_array(init).copy()
            array[0, 0, 0, 0] += 0.5
            init.CopyFrom(numpy_helper.from_array(array, init.name))
    path = tmp_path / "tampered.onnx"
    save_onnx(model, path)
    with pytest.raises(CompileError, match="ONNX Runtime vs PyTorch latent max abs diff"):
        verify_export(path, source, normalization, motifs, windows[:MIN_WINDOWS])


def test_verify_catches_a_wrong_normalization(default_parts, tmp_path: Path):
    source, normalization, motifs, windows = default_parts
    shifted = type(normalization)(tuple(m + 0.5 for m in normalization.mean), normalization.std)
    path = tmp_path / "shifted.onnx"
    save_onnx(build_onnx(source.encoder, shifted, motifs, {}), path)
    with pytest.raises(CompileError, match="verification failed"):
        verify_export(path, source, normalization, motifs, windows[:MIN_WINDOWS])


def test_verify_needs_enough_windows(default_parts, tmp_path: Path):
    source, normalization, motifs, windows = default_parts
    with pytest.raises(CompileError, match="at least 64 windows"):
        verify_export(tmp_path / "unused.onnx", source, normalization, motifs, windows[:10])


def test_trained_encoder_matches_its_source_onnx(trained_onnx: Path, model_config: Path, tmp_path: Path):
    source = load_source(trained_onnx)
    normalization = load_normalization(model_config)
    windows, labels = synthetic_windows()
    motifs = fit_motifs(encode_latents(source.encoder, normalization, windows), labels)
    path = tmp_path / "trained.onnx"
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}), path)
    held_out = verification_windows(Inputs(source, normalization, windows, labels, {"kind": "synthetic"}))
    assert len(held_out) >= MIN_WINDOWS
    figures = verify_export(path, source, normalization, motifs, held_out)
    assert figures["source_onnx_vs_export"]["latent_max_abs"] <= 1e-4
    assert figures["onnxruntime_vs_torch"]["latent_max_abs"] <= 1e-4


def _served_and_dfc_input(default_parts, folder: Path) -> tuple[Path, Path]:
    source, normalization, motifs, _ = default_parts
    served, hailo = folder / "m.onnx", folder / "hailo.onnx"
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}), served)
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}, raw_input=False), hailo)
    return served, hailo


def test_int8_proxy_reports_cosine_and_motif_agreement(default_parts, tmp_path: Path):
    _, normalization, _, windows = default_parts
    served, hailo = _served_and_dfc_input(default_parts, tmp_path)
    figures = int8_proxy(served, hailo, normalization, windows, windows[:MIN_WINDOWS])
    assert figures["method"].startswith("onnxruntime static QDQ")
    assert figures["windows"] == MIN_WINDOWS
    assert 0.9 < figures["latent_cosine_mean"] <= 1.0 + 1e-6
    assert figures["latent_cosine_min"] <= figures["latent_cosine_mean"]
    assert 0.5 <= figures["top_motif_agreement"] <= 1.0
    # Quantization does change the numbers: a proxy that returned the float model would show exactly 0.
    assert figures["latent_max_abs"] > 0


def test_int8_proxy_quantizes_the_z_scored_input_as_the_chip_does(default_parts, tmp_path: Path):
    """The chip's 8-bit input step is (max - min) / 255 of the z-scored calibration set, one per tensor; the
    proxy's graph input must carry that step, not one set by raw magnetometer values."""
    _, normalization, _, windows = default_parts
    _, hailo = _served_and_dfc_input(default_parts, tmp_path)
    quantized = tmp_path / "int8.onnx"
    quantize_dfc_input(hailo, quantized, normalization, windows)
    model = onnx.load(str(quantized))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    (q_input,) = [
        n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == HAILO_INPUT_NAME
    ]
    z = z_score(normalization, windows)
    step = (max(z.max(), 0.0) - min(z.min(), 0.0)) / 255  # ONNX Runtime's uint8 range always includes 0
    assert values[q_input.input[1]].shape == ()
    assert values[q_input.input[1]] == pytest.approx(step, rel=1e-4)
    assert step < (windows.max() - windows.min()) / 255 / 5  # the raw range's step: 5x coarser at least


def test_source_onnx_that_cannot_take_a_window_is_named(trained_onnx: Path, tmp_path: Path, default_parts):
    _, normalization, _, windows = default_parts
    model = onnx.load(str(trained_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 50
    path = tmp_path / "short_window.onnx"
    onnx.save(model, str(path))
    source = load_source(path)  # the weights still map onto the architecture
    motifs = fit_motifs(encode_latents(source.encoder, normalization, windows), None)
    exported = tmp_path / "export.onnx"
    save_onnx(build_onnx(source.encoder, normalization, motifs, {}), exported)
    with pytest.raises(CompileError, match=r"short_window\.onnx: source ONNX does not run on \[N, 100, 9\]"):
        verify_export(exported, source, normalization, motifs, windows[:MIN_WINDOWS])


def test_unwritable_export_target_is_named(default_parts, tmp_path: Path):
    source, normalization, motifs, _ = default_parts
    target = tmp_path / "missing-dir" / "m.onnx"
    with pytest.raises(CompileError, match=r"m\.onnx: cannot write ONNX"):
        save_onnx(build_onnx(source.encoder, normalization, motifs, {}), target)
