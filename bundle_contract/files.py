"""The bundle folder's files, and whether a folder is an intact bundle (one answer for app, roles, compile).

``python -m bundle_contract.files DIR`` (preflight, on the control host) and ``python -m app.bundle DIR`` (the
roles on the Pi, with the release venv) run ``main``: exit 0 + JSON summary, or exit 1 + one-line reason on
stderr.
"""

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from bundle_contract.metadata import FileEntry, Metadata, MetadataError, check_metadata

METADATA_FILE = "model_metadata.json"
ONNX_FILE = "tcn_encoder.onnx"
CALIBRATION_FILE = "calibration_set.npy"
# model.kind of a bundle built without Hailo's DFC (no .hef at all): every Pi serves it with ONNX Runtime.
ONNX_ONLY = "onnx-only"


class BundleError(Exception):
    """The bundle is not usable; the message is one line naming the file and what is wrong."""


def file_digest(path: Path | str) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def verify_bundle(path: Path | str) -> Metadata:
    """Return the metadata when every listed file matches its size and sha256 and nothing unlisted is
    present."""
    folder = Path(path)
    metadata = read_metadata(folder)
    files = metadata["files"]
    if not isinstance(files, dict) or not files:
        raise BundleError(
            f"{folder / METADATA_FILE}: 'files' must be a non-empty object of name -> sha256/size"
        )
    for name, expected in files.items():
        _check_file(folder, name, expected)
    unlisted = sorted(p.name for p in folder.iterdir() if p.name != METADATA_FILE and p.name not in files)
    if unlisted:
        raise BundleError(f"{folder / unlisted[0]}: file is not listed in {METADATA_FILE}")
    return metadata


def read_metadata(path: Path | str) -> Metadata:
    """The metadata of a folder that is a bundle at all (metadata.check_metadata), without reading its other
    files (cheap)."""
    folder = Path(path)
    if not folder.exists():
        raise BundleError(f"{folder}: bundle folder does not exist")
    if not folder.is_dir():
        raise BundleError(f"{folder}: is not a folder")
    return _read_metadata(folder / METADATA_FILE)


def _read_metadata(path: Path) -> Metadata:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except OSError as exc:
        raise BundleError(f"{path}: unreadable ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: invalid JSON ({str(exc).splitlines()[0]})") from None
    try:
        return check_metadata(document)
    except MetadataError as exc:
        raise BundleError(f"{path}: {exc}") from None


def _check_file(folder: Path, name: str, expected: object) -> None:
    # A listed name must be a plain file name: the metadata must not point outside the folder.
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise BundleError(f"{folder / METADATA_FILE}: listed file name {name!r} is not a plain file name")
    if (
        not isinstance(expected, dict)
        or not isinstance(expected.get("sha256"), str)
        or "size" not in expected
    ):
        raise BundleError(f"{folder / METADATA_FILE}: entry for {name} needs 'sha256' and 'size'")
    target = folder / name
    if not target.is_file():
        raise BundleError(f"{target}: listed in {METADATA_FILE} but missing")
    try:
        actual = file_digest(target)
    except OSError as exc:
        raise BundleError(f"{target}: unreadable ({exc.strerror})") from None
    if actual["size"] != expected["size"]:
        raise BundleError(f"{target}: size {actual['size']} bytes, metadata says {expected['size']}")
    if actual["sha256"] != expected["sha256"]:
        raise BundleError(f"{target}: sha256 {actual['sha256'][:12]}... does not match metadata")


def hefs(metadata: dict[str, Any]) -> dict[str, str]:
    """chip family (the DFC's hw_arch, e.g. ``hailo8l``) -> .hef file name; empty for an onnx-only bundle."""
    entries = metadata.get("model", {}).get("hefs") or {}
    return {
        arch: entry["file"]
        for arch, entry in entries.items()
        if isinstance(entry, dict) and entry.get("file")
    }


def bundle_kind(metadata: dict[str, Any]) -> str:
    """``hef`` when the bundle carries at least one .hef, else ``onnx-only`` (the report's label)."""
    return "hef" if hefs(metadata) else ONNX_ONLY


def main(argv: list[str] | None = None, prog: str = "python -m bundle_contract.files") -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {prog} BUNDLE_DIR", file=sys.stderr)
        return 2
    try:
        metadata = verify_bundle(args[0])
    except BundleError as exc:
        print(f"bundle invalid: {exc}", file=sys.stderr)
        return 1
    summary = {
        "version": metadata.get("version"),
        "files": sorted(metadata["files"]),
        "untrained_default": metadata.get("untrained_default"),
        "kind": bundle_kind(metadata),
        "hefs": hefs(metadata),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
