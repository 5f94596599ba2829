"""Build what a Pi needs besides the bundle: the app wheel, its dependency wheels and their release manifest.

The Pis have no package index, so every wheel the app needs is downloaded here for the Pis' platform
(its CPython X.Y and its Debian release's glibc) and copied by the `inference_app` role.
A release is two content-addressed parts: the runtime (OUT/runtimes/<runtime id>/, the wheels; the id hashes
them and the interpreter they target) and the bundle (by version). The manifest names both with their sha256s.

playbooks/build.yml writes one manifest per kind of Pi, build/release-<kind>.json (architecture and CPython):

    python release/build_release.py --bundle build/bundles/tcn-0123456789ab --platform aarch64 \
        --python 3.13 --glibc 2.41 --manifest build/release-aarch64-cp313.json
    python release/build_release.py --bundle build/bundles/tcn-ba9876543210 --platform aarch64 \
        --python 3.13 --glibc 2.41 --manifest build/release-aarch64-cp313.json \
        --reuse-from build/release-aarch64-cp313.json   # model-only: the runtime kept, checked, not rebuilt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bundle_contract.files import METADATA_FILE, BundleError, file_digest, verify_bundle

REPO = Path(__file__).resolve().parent.parent
# Defaults: Raspberry Pi OS bookworm (CPython 3.11, glibc 2.36). Trixie is --python 3.13 --glibc 2.41.
DEFAULT_PYTHON = "3.11"
DEFAULT_GLIBC = "2.36"
# pip ships as a wheel too: the Pi bootstraps each release venv from it (no ensurepip, no python3-venv).
PIP_REQUIREMENT = "pip==25.3"
# Every dependency of the app pinned per Pi OS release, keyed by the one CPython each Debian release ships:
# the NumPy there must be the one that release's python3-hailort was built against (see the files).
PI_CONSTRAINTS = {
    "3.11": Path(__file__).resolve().parent / "pi_constraints.txt",  # bookworm
    "3.13": Path(__file__).resolve().parent / "pi_constraints-trixie.txt",  # trixie
}
# Fixed zip timestamps make the app wheel, and so the runtime id, depend only on the source.
SOURCE_DATE_EPOCH = "315532800"
# What the app wheel is built from; building a copy keeps setuptools' build/ folder out of ours.
WHEEL_SOURCES = ("pyproject.toml", "app", "bundle_contract", "compile")
# The wheel's long description (pyproject's readme) is this line, not README.md: a docs edit must not make a
# new runtime, and so a new venv, on every Pi.
WHEEL_README = "hailo_pipeline: the model backend EdgeInfer calls on each Pi (see the project's README).\n"
# The manifest's runtime part: what a model-only release takes over from the previous manifest.
RUNTIME_KEYS = (
    "runtime_id", "wheelhouse_dir", "wheels", "wheel_bytes", "installed_bytes", "app_version",
    "platform", "python",
)  # fmt: skip


class ReleaseError(Exception):
    """A one-line reason the release cannot be built."""


def platform_tags(arch: str, glibc: str) -> list[str]:
    """Wheel platform tags a Pi of this architecture and glibc accepts, newest first."""
    glibc_minor = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc_minor, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def constraints_for(python: str) -> Path:
    if python not in PI_CONSTRAINTS:
        known = ", ".join(sorted(PI_CONSTRAINTS))
        raise ReleaseError(f"no Pi pins for CPython {python} (pinned: {known})")
    return PI_CONSTRAINTS[python]


def read_bundle_version(bundle: Path) -> str:
    """The bundle's version, after checking it is intact with the same function the Pis use."""
    try:
        metadata = verify_bundle(bundle)
    except BundleError as exc:
        raise ReleaseError(f"bundle {bundle} does not verify: {exc}") from exc
    return str(metadata["version"])


def run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        raise ReleaseError(f"{what} failed: {lines[-1]}")


def build_app_wheel(dest: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="hp-wheel-src-") as tmp:
        src = Path(tmp)
        for name in WHEEL_SOURCES:
            path = REPO / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, src / name)
        (src / "README.md").write_text(WHEEL_README)
        run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest), str(src)],
            "pip wheel",
        )
    wheels = list(dest.glob("hailo_pipeline-*.whl"))
    if len(wheels) != 1:
        raise ReleaseError(f"pip wheel produced {len(wheels)} app wheels in {dest}, expected 1")
    return wheels[0]


def download_dependencies(app_wheel: Path, dest: Path, arch: str, python: str, glibc: str) -> None:
    constraints = constraints_for(python)
    cmd = [sys.executable, "-m", "pip", "download", "--dest", str(dest), "--only-binary=:all:"]
    for tag in platform_tags(arch, glibc):
        cmd += ["--platform", tag]
    abi = "cp" + python.replace(".", "")
    cmd += ["--python-version", python, "--implementation", "cp", "--abi", abi]
    cmd += ["--constraint", str(constraints), f"{app_wheel}[app]", PIP_REQUIREMENT]
    run(cmd, f"pip download for {arch} {abi}")


def wheel_checksums(wheelhouse: Path) -> dict[str, str]:
    """sha256 of every wheel, by file name: what the Pi checks the copied runtime against."""
    return {wheel.name: file_digest(wheel)["sha256"] for wheel in sorted(wheelhouse.glob("*.whl"))}


def runtime_id(checksums: dict[str, str], arch: str, python: str) -> str:
    """12 hex over the wheels and the interpreter they target: same wheels, arch and CPython, same id.

    The interpreter is in the key: one wheelhouse installed under another CPython is another venv."""
    digest = hashlib.sha256(f"{arch}\ncp{python}\n".encode())
    for name, sha256 in sorted(checksums.items()):
        digest.update(f"{name} {sha256}\n".encode())
    return digest.hexdigest()[:12]


def installed_bytes(wheelhouse: Path) -> int:
    """Uncompressed size of every wheel: what the venv adds on the Pi, for preflight's free-space check."""
    total = 0
    for wheel in wheelhouse.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            total += sum(info.file_size for info in archive.infolist())
    return total


def tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def app_version(app_wheel: Path) -> str:
    # Wheel file names are name-version-tags.whl (PEP 427).
    return app_wheel.name.split("-")[1]


def build_runtime(out: Path, arch: str, python: str, glibc: str) -> dict[str, Any]:
    """Build the app wheel and download its dependencies into OUT/runtimes/<runtime id>/."""
    # One folder per runtime id: a release that changes only the model reuses the runtime folder as it is.
    runtimes = out / "runtimes"
    runtimes.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=runtimes))
    try:
        app_wheel = build_app_wheel(staging)
        download_dependencies(app_wheel, staging, arch, python, glibc)
        checksums = wheel_checksums(staging)
        rid = runtime_id(checksums, arch, python)
        wheelhouse = runtimes / rid
        if wheelhouse.is_dir():
            print(f"reusing wheelhouse {wheelhouse}", file=sys.stderr)
        else:
            staging.rename(wheelhouse)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "runtime_id": rid,
        "wheelhouse_dir": str(wheelhouse),
        "wheels": checksums,
        "wheel_bytes": tree_bytes(wheelhouse),
        "installed_bytes": installed_bytes(wheelhouse),
        "app_version": app_version(app_wheel),
        "platform": arch,
        "python": python,
    }


def reusable_runtime(previous: Path, arch: str, python: str) -> tuple[dict[str, Any] | None, str]:
    """The runtime part of an earlier manifest while it is still what a build would make (same target, its
    wheels intact, no wheel source edited since), else None: a model-only release then costs no wheel build or
    download, and its name is known before anything is built (what `--check` predicts)."""
    try:
        manifest = json.loads(previous.read_text())
        part = {key: manifest[key] for key in RUNTIME_KEYS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{previous} is not a release manifest ({type(exc).__name__})"
    if (part["platform"], part["python"]) != (arch, python):
        return None, f"{previous} is for {part['platform']} CPython {part['python']}"
    built = previous.stat().st_mtime
    edited = [path for path in source_files() if path.stat().st_mtime > built]
    if edited:
        return None, f"{edited[0].relative_to(REPO)} changed since {previous}"
    wheelhouse = Path(part["wheelhouse_dir"])
    if not wheelhouse.is_dir() or wheel_checksums(wheelhouse) != part["wheels"]:
        return None, f"{wheelhouse} no longer holds the wheels {previous} lists"
    if runtime_id(part["wheels"], arch, python) != part["runtime_id"]:
        return None, f"{previous}'s runtime_id does not match its wheels"
    return part, f"reusing runtime {part['runtime_id']} of {previous}"


def source_files() -> list[Path]:
    """Every file a runtime is built from: the wheel sources, this script and the pins."""
    roots = [REPO / name for name in WHEEL_SOURCES] + [Path(__file__).resolve(), *PI_CONSTRAINTS.values()]
    return [
        path
        for root in roots
        for path in ([root] if root.is_file() else sorted(root.rglob("*")))
        if path.is_file() and "__pycache__" not in path.parts
    ]


def build_release(
    bundle: Path,
    arch: str,
    out: Path,
    manifest: Path,
    python: str = DEFAULT_PYTHON,
    glibc: str = DEFAULT_GLIBC,
    reuse_from: Path | None = None,
) -> dict[str, Any]:
    constraints_for(python)  # an unpinned Python is refused before anything is built
    bundle = bundle.resolve()
    if not (bundle / METADATA_FILE).is_file():
        raise ReleaseError(f"{bundle} is not a bundle folder (no {METADATA_FILE})")
    bundle_version = read_bundle_version(bundle)
    runtime = None
    if reuse_from is not None:
        runtime, reason = reusable_runtime(reuse_from, arch, python)
        print(reason if runtime else f"building a runtime: {reason}", file=sys.stderr)
    built = runtime is None
    if built:
        runtime = build_runtime(out, arch, python, glibc)

    # The manifest names both parts and their checksums; the Pi refers to a part only after checking them.
    release = {
        "release": f"{bundle_version}-{runtime['runtime_id']}",
        "bundle_version": bundle_version,
        "bundle_dir": str(bundle),
        "bundle_metadata_sha256": file_digest(bundle / METADATA_FILE)["sha256"],
        "bundle_bytes": tree_bytes(bundle),
        **runtime,
    }
    manifest.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(release, indent=2) + "\n"
    # The manifest's time says no wheel source was edited after it: kept when reused, renewed when built.
    if not manifest.is_file() or manifest.read_text() != text:
        manifest.write_text(text)
    elif built:
        os.utime(manifest)
    return release


def major_minor(value: str) -> str:
    """argparse type for "X.Y" (a CPython or glibc version)."""
    if re.fullmatch(r"[0-9]+\.[0-9]+", value) is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not X.Y")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle", type=Path, required=True, help="bundle folder from `python -m compile build`"
    )
    parser.add_argument(
        "--platform", choices=("x86_64", "aarch64"), required=True, help="the Pis' ansible_architecture"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "build", help="build folder (default: %(default)s)"
    )
    parser.add_argument(
        "--python", type=major_minor, default=DEFAULT_PYTHON, help="the Pis' CPython (default: %(default)s)"
    )
    parser.add_argument(
        "--glibc",
        type=major_minor,
        default=DEFAULT_GLIBC,
        help="glibc of the Pis' Debian release: the newest manylinux tag allowed (default: %(default)s)",
    )
    parser.add_argument("--manifest", type=Path, help="manifest path (default: OUT/release.json)")
    parser.add_argument(
        "--reuse-from",
        type=Path,
        help="an earlier manifest whose runtime is reused while it is still current (else one is built)",
    )
    args = parser.parse_args(argv)
    manifest = args.manifest or args.out / "release.json"
    try:
        release = build_release(
            args.bundle, args.platform, args.out, manifest, args.python, args.glibc, args.reuse_from
        )
    except ReleaseError as exc:
        print(f"build_release: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(release))
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
