"""The versioned bundle folder: ``<out>/<version>/`` with the ONNX, calibration set, optional HEF/HARs and
``model_metadata.json`` listing every file with sha256 and size (checked by
``bundle_contract.files.verify_bundle``)."""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bundle_contract.files import METADATA_FILE, BundleError, file_digest, verify_bundle
from bundle_contract.metadata import Metadata, MetadataError, check_metadata
from compile.errors import CompileError


def bundle_version(
    source_sha256: str,
    normalization: dict[str, Any],
    reference_windows: np.ndarray,
    hw_archs: list[str],
    exporter_version: str,
    tools: dict[str, str | None],
    input_ranges: dict[str, Any],
) -> str:
    """``tcn-<12 hex>`` over everything that determines the bundle's content, so one version is one set of
    bytes on every control host. The tools are part of it because they write the ONNX and (the DFC) the .hef,
    and the metadata records them."""
    identity = {
        "source": source_sha256,
        "normalization": {k: normalization[k] for k in ("method", "mean", "std", "channel_order")},
        "reference_windows": hashlib.sha256(
            np.ascontiguousarray(reference_windows, np.float32).tobytes()
        ).hexdigest(),
        "hw_archs": sorted(hw_archs),
        "exporter": exporter_version,
        "tools": tools,
        "input_ranges": {k: input_ranges[k] for k in ("min", "max")},
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"tcn-{digest[:12]}"


def existing_bundle(folder: Path) -> Metadata | None:
    """The metadata of an intact bundle already at ``folder``, or None (absent or damaged: rebuild it)."""
    if not folder.exists():
        return None
    try:
        return verify_bundle(folder)
    except BundleError:
        return None


@contextmanager
def staging(out: Path, version: str) -> Iterator[Path]:
    """Build in a hidden sibling folder and rename it into place, so a bundle folder is either whole or
    absent."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=out))
    except OSError as exc:
        raise CompileError(f"{out}: cannot create the bundle output folder ({exc.strerror})") from None
    try:
        yield stage
        target = out / version
        # A concurrent build of the same version may have finished first: its bytes are the same, keep it.
        if existing_bundle(target) is None:
            if target.exists():
                shutil.rmtree(target)
            os.replace(stage, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def write_metadata(folder: Path, metadata: Metadata) -> None:
    """Fill ``files`` from what is in the folder, then write the metadata file last; a document without every
    key bundle_contract.metadata requires fails the build (a field added there and not written here)."""
    metadata["files"] = {p.name: file_digest(p) for p in sorted(folder.iterdir()) if p.name != METADATA_FILE}
    try:
        check_metadata(metadata)
    except MetadataError as exc:
        raise CompileError(f"{folder / METADATA_FILE}: the metadata written {exc}") from None
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
