"""Build what a Pi needs besides the bundle: the app wheel and its dependency wheels, plus build/release.json.

The Pis have no package index, so every wheel the app needs is downloaded here for the Pis' platform
(Raspberry Pi OS / Debian bookworm: glibc 2.36, CPython 3.11) and copied by the `inference_app` role.
A release is two content-addressed parts: the runtime (OUT/runtimes/<runtime id>/, the wheels; the id hashes
them and the interpreter they target) and the bundle (by version). The manifest names both with their sha256s.

    python scripts/build_release.py --bundle build/bundles/tcn-0123456789ab --platform aarch64
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
# Bookworm ships glibc 2.36: every manylinux tag up to that is installable there.
GLIBC_MINOR_MAX = 36
# pip ships as a wheel too: the Pi bootstraps each release venv from it (no ensurepip, no python3-venv).
PIP_REQUIREMENT = "pip==25.3"
# Every dependency of the app pinned for the Pis (numpy 1.x for Pi OS's hailo_platform; see the file).
PI_CONSTRAINTS = Path(__file__).resolve().parent / "pi_constraints.txt"
# Fixed zip timestamps make the app wheel, and so the build id, depend only on the source.
SOURCE_DATE_EPOCH = "315532800"
# What the app wheel is built from; building a copy keeps setuptools' build/ folder out of ours.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "app", "compile")


class ReleaseError(Exception):
    """A one-line reason the release cannot be built."""


def platform_tags(arch: str) -> list[str]:
    """Wheel platform tags a bookworm Pi of this architecture accepts, newest first."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR_MAX, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def read_bundle_version(bundle: Path) -> str:
    """The bundle's version, after checking it is intact with the same function the Pis use."""
    from app.bundle import BundleError, verify_bundle

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
        run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest), str(src)],
            "pip wheel",
        )
    wheels = list(dest.glob("hailo_pipeline-*.whl"))
    if len(wheels) != 1:
        raise ReleaseError(f"pip wheel produced {len(wheels)} app wheels in {dest}, expected 1")
    return wheels[0]


def download_dependencies(app_wheel: Path, dest: Path, arch: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--dest", str(dest), "--only-binary=:all:"]
    for tag in platform_tags(arch):
        cmd += ["--platform", tag]
    cmd += ["--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311"]
    cmd += ["--constraint", str(PI_CONSTRAINTS), f"{app_wheel}[app]", PIP_REQUIREMENT]
    run(cmd, f"pip download for {arch}")


def wheel_checksums(wheelhouse: Path) -> dict[str, str]:
    """sha256 of every wheel, by file name: what the Pi checks the copied runtime against."""
    return {
        wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest()
        for wheel in sorted(wheelhouse.glob("*.whl"))
    }


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


def build_release(bundle: Path, arch: str, out: Path, manifest: Path) -> dict[str, str]:
    bundle = bundle.resolve()
    if not (bundle / "model_metadata.json").is_file():
        raise ReleaseError(f"{bundle} is not a bundle folder (no model_metadata.json)")
    bundle_version = read_bundle_version(bundle)

    # One folder per runtime id: a release that changes only the model reuses the runtime folder as it is.
    runtimes = out / "runtimes"
    runtimes.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=runtimes))
    try:
        app_wheel = build_app_wheel(staging)
        download_dependencies(app_wheel, staging, arch)
        checksums = wheel_checksums(staging)
        rid = runtime_id(checksums, arch, PYTHON_VERSION)
        wheelhouse = runtimes / rid
        if wheelhouse.is_dir():
            print(f"reusing wheelhouse {wheelhouse}", file=sys.stderr)
        else:
            staging.rename(wheelhouse)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    # The manifest names both parts and their checksums; the Pi refers to a part only after checking them.
    release = {
        "release": f"{bundle_version}-{rid}",
        "bundle_version": bundle_version,
        "bundle_dir": str(bundle),
        "bundle_metadata_sha256": hashlib.sha256((bundle / "model_metadata.json").read_bytes()).hexdigest(),
        "bundle_bytes": tree_bytes(bundle),
        "runtime_id": rid,
        "wheelhouse_dir": str(wheelhouse),
        "wheels": checksums,
        "wheel_bytes": tree_bytes(wheelhouse),
        "installed_bytes": installed_bytes(wheelhouse),
        "app_version": app_version(app_wheel),
        "platform": arch,
        "python": PYTHON_VERSION,
    }
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(release, indent=2) + "\n")
    return release


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
    parser.add_argument("--manifest", type=Path, help="manifest path (default: OUT/release.json)")
    args = parser.parse_args(argv)
    manifest = args.manifest or args.out / "release.json"
    try:
        release = build_release(args.bundle, args.platform, args.out, manifest)
    except ReleaseError as exc:
        print(f"build_release: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(release))
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
