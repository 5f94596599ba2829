"""``python -m compile build|export|verify|hef|inspect|dfc-version``: build, export, verify and hef run
``compile.build``'s one pipeline and stop after the stage they need.

Bad input ends with exit 1 and one ``error: ...`` line on stderr, never a traceback. Progress and stage
timings go to stderr; ``build`` prints its figures, then the bundle folder as the last stdout line (playbooks
parse it). Heavy modules (torch, onnx) are imported after argument parsing, so usage errors and ``--help``
answer at once.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bundle_contract.chips import DEFAULT_CHIP_FAMILIES, HW_ARCHS
from bundle_contract.files import BundleError, verify_bundle
from compile.errors import CompileError

if TYPE_CHECKING:
    from compile.build import BuildOptions


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", type=Path, help="trained .onnx, or .pth/.pt state_dict or module; omit: untrained default"
    )
    parser.add_argument("--config", type=Path, help="model_config.json with normalization mean/std")
    parser.add_argument("--reference-windows", type=Path, help=".npy [N,100,9] or JSON raw IMU windows")
    parser.add_argument(
        "--trust-pickle", action="store_true", help="load a pickled module of unknown classes"
    )
    _dfc_argument(parser)


def _dfc_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dfc-python",
        help="the DFC venv's python (`make dfc-venv`); default $HAILO_PIPELINE_DFC_PYTHON, else this one",
    )


def _hw_arch_argument(parser: argparse.ArgumentParser, many: bool) -> None:
    if many:
        parser.add_argument(
            "--hw-arch",
            choices=HW_ARCHS,
            action="append",
            help=f"chip family to build a .hef for, repeatable (default: {', '.join(DEFAULT_CHIP_FAMILIES)})",
        )
    else:
        parser.add_argument("--hw-arch", choices=HW_ARCHS, default=DEFAULT_CHIP_FAMILIES[0])


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m compile", description="TCN-VAE encoder -> Hailo bundle")
    commands = root.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="all stages -> OUT/<version>/ (printed last)")
    _model_arguments(build_cmd)
    build_cmd.add_argument("--out", type=Path, required=True, help="folder receiving the <version>/ bundle")
    _hw_arch_argument(build_cmd, many=True)
    build_cmd.add_argument("--require-hef", action="store_true", help="fail unless the DFC builds a .hef")
    build_cmd.add_argument(
        "--plan", action="store_true", help="print OUT/<version> (a hash of the inputs) only; write nothing"
    )
    export_cmd = commands.add_parser("export", help="load, fit motifs, write the ONNX to one file")
    _model_arguments(export_cmd)
    export_cmd.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    verify_cmd = commands.add_parser("verify", help="export to a temporary file, print the figures as JSON")
    _model_arguments(verify_cmd)
    hef_cmd = commands.add_parser("hef", help="compile to .hef with the Hailo DFC into a folder")
    _model_arguments(hef_cmd)
    hef_cmd.add_argument("--out", type=Path, required=True, help="folder for the ONNX, .hef and HARs")
    _hw_arch_argument(hef_cmd, many=False)
    inspect_cmd = commands.add_parser("inspect", help="check a bundle's files, print its summary")
    inspect_cmd.add_argument("bundle", type=Path)
    version_cmd = commands.add_parser(
        "dfc-version",
        help="print the DFC version a build would use (JSON), for preflight's HEF/HailoRT check",
    )
    _dfc_argument(version_cmd)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BundleError as exc:
        print(f"error: bundle invalid: {exc}", file=sys.stderr)
        return 1


def _options(args: argparse.Namespace) -> "BuildOptions":
    from compile.build import BuildOptions

    return BuildOptions(
        source=args.source,
        out=getattr(args, "out", Path(".")),
        reference_windows=args.reference_windows,
        hw_archs=tuple(_hw_archs(args)),
        require_hef=getattr(args, "require_hef", False),
        config=args.config,
        trust_pickle=args.trust_pickle,
        dfc_python=args.dfc_python,
    )


def _hw_archs(args: argparse.Namespace) -> list[str]:
    chosen = getattr(args, "hw_arch", None)
    if chosen is None:
        return list(DEFAULT_CHIP_FAMILIES)
    return [chosen] if isinstance(chosen, str) else chosen


def _build(args: argparse.Namespace) -> int:
    from compile.build import build, plan, summary_lines
    from compile.timing import StageTimer

    if args.plan:
        folder, built = plan(_options(args), StageTimer())
        print(f"bundle {folder.name} {'already built' if built else 'not built yet: build would write it'}")
        print(folder)
        return 0
    timer = StageTimer()
    folder = build(_options(args), timer)
    print("\n".join(summary_lines(verify_bundle(folder), timer.timings)))
    print(folder)
    return 0


def _export(args: argparse.Namespace) -> int:
    from compile.build import Pipeline
    from compile.timing import StageTimer

    Pipeline(_options(args), StageTimer(), args.out.parent, onnx_file=args.out.name).run("served_onnx")
    print(args.out)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from compile.build import Pipeline
    from compile.timing import StageTimer

    timer = StageTimer()
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        figures = Pipeline(_options(args), timer, Path(tmp)).run("quantized").figures
    figures["timings_s"] = timer.timings
    print(json.dumps(figures, indent=2))
    return 0


def _hef(args: argparse.Namespace) -> int:
    from compile import dfc_probe
    from compile.build import Pipeline
    from compile.timing import StageTimer

    dfc = dfc_probe.dfc_version(dfc_probe.dfc_python(args.dfc_python))
    if dfc is None:
        raise CompileError(dfc_probe.skip_notice())
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CompileError(f"{args.out}: cannot create output folder ({exc.strerror})") from None
    (hef,) = Pipeline(_options(args), StageTimer(), args.out, dfc=dfc).run("quantized").hefs
    print(json.dumps(hef.int8, indent=2))
    print(hef.hef)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from compile.build import summary_lines

    print("\n".join(summary_lines(verify_bundle(args.bundle))))
    return 0


def _dfc_version(args: argparse.Namespace) -> int:
    from compile import dfc_probe

    python = dfc_probe.dfc_python(args.dfc_python)
    print(json.dumps({"dfc_version": dfc_probe.dfc_version(python), "dfc_python": python}))
    return 0


COMMANDS = {
    "build": _build,
    "export": _export,
    "verify": _verify,
    "hef": _hef,
    "inspect": _inspect,
    "dfc-version": _dfc_version,
}
