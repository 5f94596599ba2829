"""The compile pipeline: ``Pipeline.run(stop_after)`` over ``STAGES``; ``build`` runs all into a bundle."""

import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from bundle_contract.chips import DEFAULT_CHIP_FAMILIES, HW_ARCHS
from bundle_contract.files import CALIBRATION_FILE, ONNX_FILE, ONNX_ONLY, bundle_kind, file_digest
from bundle_contract.golden import TOLERANCE as GOLDEN_TOLERANCE
from bundle_contract.input_ranges import InputRanges, default_ranges
from bundle_contract.metadata import SCHEMA_VERSION, Golden, HefEntry, Metadata, Model
from bundle_contract.normalization import Normalization
from bundle_contract.tensors import (
    HEF_INPUT,
    INPUT_CHANNELS,
    INPUT_NAME,
    LATENT_NAME,
    LATENT_SIZE,
    MOTIF_NAME,
    WINDOW_LENGTH,
)
from compile import dfc_probe, hailo_compile
from compile.bundle import bundle_version, existing_bundle, staging, write_metadata
from compile.errors import CompileError
from compile.export import EXPORTER_VERSION, OPSET, build_onnx, encode_latents, save_onnx
from compile.int8_check import int8_proxy
from compile.load import LoadedSource, load_source
from compile.motifs import MOTIF_COUNT, MotifHead, fit_motifs
from compile.normalization import load_input_ranges, load_normalization
from compile.reference_windows import (
    ACTIVITIES,
    DEFAULT_PER_ACTIVITY,
    DEFAULT_SEED,
    load_windows,
    synthetic_window,
    synthetic_windows,
)
from compile.timing import StageTimer
from compile.verify import run_exported, verify_export

GOLDEN_ACTIVITY = "walking"
# Held out from motif fitting and calibration: a second synthetic draw the figures are computed on.
VERIFICATION_SEED = 1001
VERIFICATION_PER_ACTIVITY = 10


@dataclass(frozen=True)
class BuildOptions:
    source: Path | None
    out: Path
    reference_windows: Path | None = None
    hw_archs: tuple[str, ...] = DEFAULT_CHIP_FAMILIES
    require_hef: bool = False
    config: Path | None = None
    trust_pickle: bool = False
    dfc_python: str | None = None  # the DFC venv's interpreter; None: $HAILO_PIPELINE_DFC_PYTHON or this one


@dataclass(frozen=True)
class Inputs:
    source: LoadedSource
    normalization: Normalization
    windows: np.ndarray
    labels: list[str] | None
    reference: dict[str, Any]
    input_ranges: InputRanges = field(default_factory=default_ranges)


def load_inputs(options: BuildOptions, timer: StageTimer) -> Inputs:
    unknown = [arch for arch in options.hw_archs if arch not in HW_ARCHS]
    if unknown or not options.hw_archs or len(set(options.hw_archs)) != len(options.hw_archs):
        raise CompileError(
            f"--hw-arch {list(options.hw_archs)}: name one or more of {', '.join(HW_ARCHS)}, each once"
        )
    with timer.stage("load", f"model source {options.source or 'untrained default (seeded weights)'}"):
        source = load_source(options.source, trust_pickle=options.trust_pickle)
        normalization = load_normalization(options.config)
        input_ranges = load_input_ranges(options.config)
    if source.untrained_default:
        timer.note(
            "UNTRAINED DEFAULT model: seeded weights, not the trained encoder (pass --source to deploy one)"
        )
    with timer.stage("reference", "reference windows"):
        if options.reference_windows is None:
            windows, labels = synthetic_windows()
            reference: dict[str, Any] = {
                "kind": "synthetic",
                "generator": "compile.reference_windows.synthetic_windows",
                "seed": DEFAULT_SEED,
                "per_activity": DEFAULT_PER_ACTIVITY,
                "activities": list(ACTIVITIES),
            }
        else:
            windows, labels = load_windows(options.reference_windows), None
            if len(windows) < MOTIF_COUNT:
                raise CompileError(
                    f"{options.reference_windows}: {len(windows)} reference windows, "
                    f"the {MOTIF_COUNT} motifs need at least {MOTIF_COUNT}"
                )
            reference = {
                "kind": "file",
                "path": str(options.reference_windows.resolve()),
                "sha256": file_digest(options.reference_windows)["sha256"],
            }
    reference["windows"] = int(windows.shape[0])
    return Inputs(source, normalization, windows, labels, reference, input_ranges)


def verification_windows(inputs: Inputs) -> np.ndarray:
    """A held-out synthetic draw, plus up to 256 of the user's own windows when they gave some."""
    held_out, _ = synthetic_windows(VERIFICATION_PER_ACTIVITY, VERIFICATION_SEED)
    if inputs.reference["kind"] != "file":
        return held_out
    return np.concatenate([held_out, inputs.windows[:256]])


def _planned(options: BuildOptions, timer: StageTimer) -> tuple[Inputs, str | None, Path]:
    """The loaded inputs, the DFC version and ``options.out/<version>/``: everything short of writing."""
    dfc = dfc_probe.dfc_version(dfc_probe.dfc_python(options.dfc_python))
    if dfc is None:
        if options.require_hef:
            raise CompileError(f"--require-hef: {dfc_probe.skip_notice()}")
        timer.note(dfc_probe.skip_notice())
    inputs = load_inputs(options, timer)
    version = bundle_version(
        inputs.source.sha256,
        inputs.normalization.to_metadata(),
        inputs.windows,
        sorted(options.hw_archs),
        EXPORTER_VERSION,
        tool_versions(dfc),
        inputs.input_ranges.to_metadata(),
    )
    return inputs, dfc, options.out / version


def plan(options: BuildOptions, timer: StageTimer) -> tuple[Path, bool]:
    """The bundle folder ``build`` would write or reuse, and whether an intact one is there; writes nothing
    (``build --plan``: playbooks/build.yml under --check)."""
    _, _, target = _planned(options, timer)
    return target, existing_bundle(target) is not None


def build(options: BuildOptions, timer: StageTimer) -> Path:
    """Write (or reuse) ``options.out/<version>/`` and return it."""
    inputs, dfc, target = _planned(options, timer)
    if existing_bundle(target) is not None:
        timer.note(f"bundle {target.name} already built and intact: reusing {target}")
        return target
    with staging(options.out, target.name) as folder:
        Pipeline(options, timer, folder, dfc=dfc, version=target.name, inputs=inputs).run("bundle")
    return target


# Each stage makes what it is named for (quantized: the .hefs with the DFC, else the int8 proxy's figures); a
# subcommand runs them in order and stops after the one it needs (export, verify/hef, build).
STAGES = ("inputs", "motif_head", "served_onnx", "figures", "quantized", "bundle")


@dataclass
class Pipeline:
    options: BuildOptions
    timer: StageTimer
    folder: Path  # receives the served ONNX, the .hefs and HARs, and (stage bundle) the rest of the bundle
    dfc: str | None = None  # the DFC version the quantized stage compiles with; None: the int8 proxy
    version: str | None = None  # the bundle's, stamped into the served ONNX
    onnx_file: str = ONNX_FILE
    inputs: Inputs | None = None
    motif_head: MotifHead | None = None
    served_onnx: Path | None = None
    figures: dict[str, Any] = field(default_factory=dict)  # verification figures, int8 ones included
    hefs: list[hailo_compile.HefResult] = field(default_factory=list)  # stage quantized with the DFC

    def run(self, stop_after: str) -> "Pipeline":
        for stage in STAGES[: STAGES.index(stop_after) + 1]:
            getattr(self, f"_{stage}")()
        return self

    def _model(self) -> tuple[Inputs, MotifHead, Path]:
        assert self.inputs and self.motif_head and self.served_onnx, "run the earlier stages first"
        return self.inputs, self.motif_head, self.served_onnx

    def _inputs(self) -> None:
        if self.inputs is None:  # build has loaded them already, to name the bundle
            self.inputs = load_inputs(self.options, self.timer)

    def _motif_head(self) -> None:
        assert self.inputs is not None
        inputs = self.inputs
        with self.timer.stage("motifs", f"k-means on {len(inputs.windows)} reference latents"):
            latents = encode_latents(inputs.source.encoder, inputs.normalization, inputs.windows)
            self.motif_head = fit_motifs(latents, inputs.labels)
        self.motif_head.fit["reference"] = inputs.reference

    def _served_onnx(self) -> None:
        assert self.inputs is not None and self.motif_head is not None
        source = self.inputs.source
        path = self.folder / self.onnx_file
        properties = {}
        if self.version is not None:
            properties = {"bundle_version": self.version, "untrained_default": str(source.untrained_default)}
        with self.timer.stage("export", f"ONNX opset {OPSET} -> {path}"):
            save_onnx(
                build_onnx(source.encoder, self.inputs.normalization, self.motif_head, properties), path
            )
        self.served_onnx = path

    def _figures(self) -> None:
        inputs, motifs, onnx_path = self._model()
        held_out = verification_windows(inputs)
        with self.timer.stage("verify", f"onnx.checker + ONNX Runtime vs PyTorch on {len(held_out)} windows"):
            self.figures = verify_export(onnx_path, inputs.source, inputs.normalization, motifs, held_out)

    def _quantized(self) -> None:
        inputs, motifs, onnx_path = self._model()
        with dfc_input_onnx(inputs, motifs, self.folder) as dfc_onnx:
            if self.dfc is None:
                with self.timer.stage("int8", "int8 proxy (ONNX Runtime static QDQ from the z-scored input)"):
                    held_out = verification_windows(inputs)
                    self.figures["int8"] = int8_proxy(
                        onnx_path, dfc_onnx, inputs.normalization, inputs.windows, held_out
                    )
                return
            python = dfc_probe.dfc_python(self.options.dfc_python)
            float_outputs = run_exported(onnx_path, inputs.windows[: hailo_compile.EMULATOR_WINDOWS])
            for arch in self.options.hw_archs:
                with self.timer.stage(f"hef_{arch}", f"Hailo DFC {self.dfc} for {arch}"):
                    hef = hailo_compile.compile_hef(
                        dfc_onnx,
                        inputs.normalization,
                        inputs.windows,
                        arch,
                        self.folder,
                        float_outputs,
                        python,
                    )
                self.hefs.append(hef)
        # One figure set per family; the first (default hailo8) is the one the summary prints.
        self.figures["int8"] = self.hefs[0].int8
        self.figures["int8_per_family"] = {h.hw_arch: h.int8 for h in self.hefs}

    def _bundle(self) -> None:
        inputs, motifs, onnx_path = self._model()
        assert self.version is not None
        np.save(self.folder / CALIBRATION_FILE, inputs.windows)
        metadata = bundle_metadata(
            inputs, motifs, self.version, self.options.hw_archs, onnx_path, self.hefs, self.dfc, self.figures
        )
        write_metadata(self.folder, metadata)


@contextmanager
def dfc_input_onnx(inputs: Inputs, motifs: MotifHead, folder: Path) -> Iterator[Path]:
    """The graph the DFC translates (z-scored ``imu_nchw`` in), for the DFC or the int8 proxy; not part of the
    bundle (the parsed HAR keeps the translated graph)."""
    path = folder / "tcn_encoder_hailo_input.onnx"
    save_onnx(build_onnx(inputs.source.encoder, inputs.normalization, motifs, {}, raw_input=False), path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def tool_versions(dfc: str | None) -> dict[str, str | None]:
    """What wrote the bundle: part of its version and of its metadata."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "hailo_sdk_client": dfc,
    }


def bundle_metadata(
    inputs: Inputs,
    motifs: MotifHead,
    version: str,
    hw_archs: tuple[str, ...],
    onnx_path: Path,
    hefs: list[hailo_compile.HefResult],
    dfc: str | None,
    figures: dict[str, Any],
) -> Metadata:
    """``model_metadata.json`` as bundle_contract.metadata describes it, ``files`` left empty until the folder
    is complete. Nothing of the build's own run (no clock, no timings): a bundle rebuilt from the same inputs
    is byte for byte what a Pi has."""
    window = synthetic_window(GOLDEN_ACTIVITY)
    latent, scores = run_exported(onnx_path, window[None])
    hef_entries = {
        h.hw_arch: HefEntry(file=h.hef.name, hars=[p.name for p in h.hars], dfc_version=h.dfc_version)
        for h in hefs
    }
    return Metadata(
        schema_version=SCHEMA_VERSION,
        name="tcn-vae-encoder",
        version=version,
        untrained_default=inputs.source.untrained_default,
        source=inputs.source.to_metadata(),
        model=Model(
            onnx=ONNX_FILE,
            kind=bundle_kind({"model": {"hefs": hef_entries}}),
            hefs=hef_entries,
            hw_archs=list(hw_archs),
            opset=OPSET,
            exporter_version=EXPORTER_VERSION,
            hef_input=dict(HEF_INPUT) if hefs else None,
        ),
        inputs=[{"name": INPUT_NAME, "shape": ["N", WINDOW_LENGTH, INPUT_CHANNELS], "dtype": "float32"}],
        outputs=[
            {"name": LATENT_NAME, "shape": ["N", LATENT_SIZE], "dtype": "float32"},
            {"name": MOTIF_NAME, "shape": ["N", int(motifs.prototypes.shape[0])], "dtype": "float32"},
        ],
        normalization=inputs.normalization.to_metadata(),
        input_ranges=inputs.input_ranges.to_metadata(),
        motifs=motifs.to_metadata(),
        calibration_set={"file": CALIBRATION_FILE, "shape": list(inputs.windows.shape), "raw": True},
        tools=tool_versions(dfc),
        golden=Golden(
            activity=GOLDEN_ACTIVITY,
            window=window.astype(float).tolist(),
            latent=latent[0].astype(float).tolist(),
            motif_scores=scores[0].astype(float).tolist(),
            tolerance=dict(GOLDEN_TOLERANCE),
        ),
        verification=figures,
        files={},
    )


def summary_lines(metadata: Metadata, timings: dict[str, float] | None = None) -> list[str]:
    """The figures a person reads after a build."""
    v = metadata.get("verification", {})
    lines = [f"bundle {metadata.get('version')}  untrained_default={metadata.get('untrained_default')}"]
    if "onnxruntime_vs_torch" in v:
        ort_torch = v["onnxruntime_vs_torch"]
        lines.append(
            f"verify: {v['windows']} windows, ONNX Runtime vs PyTorch max abs latent "
            f"{ort_torch['latent_max_abs']:.2e}"
            f", motif {ort_torch['motif_max_abs']:.2e} (tolerance {v['tolerance']:g})"
        )
    if "source_onnx_vs_export" in v:
        lines.append(
            f"verify: source ONNX vs export max abs latent {v['source_onnx_vs_export']['latent_max_abs']:.2e}"
        )
    if "int8" in v:
        q = v["int8"]
        lines.append(
            f"int8 ({q['method']}): latent cosine mean {q['latent_cosine_mean']:.4f} "
            f"min {q['latent_cosine_min']:.4f}"
            f", top-motif agreement {q['top_motif_agreement']:.1%}"
        )
    hefs = metadata.get("model", {}).get("hefs") or {}
    built = ", ".join(f"{arch} {entry['file']} (DFC {entry['dfc_version']})" for arch, entry in hefs.items())
    lines.append(f"hef: {built or ONNX_ONLY + ' (no Hailo DFC: ONNX Runtime on every Pi)'}")
    if timings:
        lines.append("timings: " + ", ".join(f"{k} {t:.2f}s" for k, t in timings.items()))
    return lines
