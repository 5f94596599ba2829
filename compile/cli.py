"""``python -m compile build|export|verify|hef|inspect``: one-line reasons and exit 1 on bad input, never a
traceback."""

import argparse
import json
import sys
from pathlib import Path

from app.bundle import BundleError, verify_bundle
from compile import hailo_compile
from compile.build import (
    BuildOptions,
    build,
    compile_to_hef,
    fit_head,
    load_inputs,
    read_metadata,
    summary_lines,
    verification_windows,
)
from compile.errors import CompileError
from compile.export import INPUT_NAME, build_onnx, save_onnx
from compile.int8_check import int8_proxy
from compile.timing import StageTimer
from compile.verify import verify_export


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", type=Path, help="trained .onnx, state_dict/module .pth; omit for the untrained default"
    )
    parser.add_argument(
        "--config", type=Path, help="model_config.json with normalization mean/std (default: built in)"
    )
    parser.add_argument(
        "--reference-windows", type=Path, help=".npy [N,100,9] or JSON raw windows for the motifs"
    )
    parser.add_argument(
        "--trust-pickle", action="store_true", help="allow a pickled module of unknown classes"
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m compile", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="all stages -> OUT/<version>/ (prints that path last)")
    _model_arguments(build_cmd)
    build_cmd.add_argument(
        "--out", type=Path, required=True, help="folder that receives the <version>/ bundle"
    )
    build_cmd.add_argument("--hw-arch", choices=hailo_compile.HW_ARCHS, default="hailo8")
    build_cmd.add_argument(
        "--require-hef", action="store_true", help="fail unless the Hailo DFC builds a .hef"
    )
    export_cmd = commands.add_parser("export", help="load + motifs + ONNX export to one file")
    _model_arguments(export_cmd)
    export_cmd.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    verify_cmd = commands.add_parser(
        "verify", help="export in memory and print the verification figures as JSON"
    )
    _model_arguments(verify_cmd)
    hef_cmd = commands.add_parser("hef", help="compile to .hef with the Hailo DFC into a folder")
    _model_arguments(hef_cmd)
    hef_cmd.add_argument("--out", type=Path, required=True, help="folder for the .hef and the HARs")
    hef_cmd.add_argument("--hw-arch", choices=hailo_compile.HW_ARCHS, default="hailo8")
    inspect_cmd = commands.add_parser("inspect", help="check a bundle's files and print its summary")
    inspect_cmd.add_argument("bundle", type=Path)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    timer = StageTimer()
    try:
        return _run(args, timer)
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BundleError as exc:
        print(f"error: bundle invalid: {exc}", file=sys.stderr)
        return 1


def _options(args: argparse.Namespace, out: Path) -> BuildOptions:
    return BuildOptions(
        source=args.source,
        out=out,
        reference_windows=args.reference_windows,
        hw_arch=getattr(args, "hw_arch", "hailo8"),
        require_hef=getattr(args, "require_hef", False),
        config=args.config,
        trust_pickle=args.trust_pickle,
    )


def _run(args: argparse.Namespace, timer: StageTimer) -> int:
    if args.command == "inspect":
        metadata = verify_bundle(args.bundle)
        print("\n".join(summary_lines(metadata)))
        return 0
    if args.command == "build":
        folder = build(_options(args, args.out), timer)
        print("\n".join(summary_lines(read_metadata(folder))))
        print(folder)
        return 0
    inputs = load_inputs(_options(args, getattr(args, "out", Path("."))), timer)
    motifs = fit_head(inputs, timer)
    if args.command == "export":
        with timer.stage("export", f"ONNX -> {args.out}"):
            save_onnx(build_onnx(inputs.source.encoder, inputs.normalization, motifs, {}), args.out)
        print(args.out)
        return 0
    if args.command == "hef":
        args.out.mkdir(parents=True, exist_ok=True)
        onnx_path = args.out / "tcn_encoder.onnx"
        save_onnx(build_onnx(inputs.source.encoder, inputs.normalization, motifs, {}), onnx_path)
        with timer.stage("hef", f"Hailo DFC for {args.hw_arch}"):
            result = compile_to_hef(inputs, motifs, args.hw_arch, args.out, onnx_path)
        print(json.dumps(result.int8, indent=2))
        print(result.hef)
        return 0
    import tempfile  # verify: the export lives only as long as the check

    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        onnx_path = Path(tmp) / "tcn_encoder.onnx"
        with timer.stage("export", "ONNX (temporary)"):
            save_onnx(build_onnx(inputs.source.encoder, inputs.normalization, motifs, {}), onnx_path)
        checks = verification_windows(inputs)
        with timer.stage("verify", f"onnx.checker + ONNX Runtime vs PyTorch on {len(checks)} windows"):
            figures = verify_export(onnx_path, inputs.source, inputs.normalization, motifs, checks)
        with timer.stage("int8", "int8 proxy (ONNX Runtime static QDQ)"):
            figures["int8"] = int8_proxy(onnx_path, INPUT_NAME, inputs.windows, checks)
    figures["timings_s"] = timer.timings
    print(json.dumps(figures, indent=2))
    return 0
