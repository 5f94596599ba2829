"""``model_metadata.json``: its keys, what each holds, and the one check that a document has the keys.

A new bundle field starts here: its key in ``Metadata`` (``NotRequired`` when readers cope without it, as
bundles built before it lack it), then compile/build.py's ``bundle_metadata`` writes it, then app/ reads it.
"""

# No ``from __future__ import annotations``: TypedDict must see NotRequired itself to leave a key optional.
from typing import Any, NotRequired, TypedDict, cast

SCHEMA_VERSION = 2  # 2: model.hefs per chip family (was one model.hef)


class FileEntry(TypedDict):
    sha256: str
    size: int


class HefEntry(TypedDict):
    file: str
    hars: list[str]
    dfc_version: str


class Model(TypedDict):
    onnx: str  # files.ONNX_FILE
    kind: str  # "hef", or files.ONNX_ONLY without a .hef
    hefs: dict[str, HefEntry]  # chip family (chips.HW_ARCHS) -> its .hef
    hw_archs: list[str]
    opset: int
    exporter_version: str
    hef_input: dict[str, str] | None  # tensors.HEF_INPUT; None without a .hef


class Golden(TypedDict):
    activity: str
    window: list[list[float]]  # one raw window, tensors.WINDOW_SHAPE
    latent: list[float]
    motif_scores: list[float]
    tolerance: dict[str, float]  # golden.TOLERANCE


class Metadata(TypedDict):
    schema_version: int
    name: str
    version: str  # tcn-<12 hex>: a hash of the build's inputs, and the bundle folder's name
    untrained_default: bool
    source: dict[str, Any]
    model: Model
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    normalization: dict[str, Any]  # normalization.Normalization.to_metadata()
    input_ranges: NotRequired[dict[str, Any]]  # input_ranges.InputRanges.to_metadata(); absent: the defaults
    motifs: dict[str, Any]
    calibration_set: dict[str, Any]
    tools: dict[str, str | None]
    golden: Golden
    verification: dict[str, Any]
    files: dict[str, FileEntry]  # every other file in the folder (files.verify_bundle checks them)


class MetadataError(ValueError):
    """The document is not a bundle's metadata; the message says what it lacks."""


def check_metadata(document: object) -> Metadata:
    """``document`` when it is an object with every key ``Metadata`` requires: the one schema check that
    reading a bundle (files.read_metadata, so verify_bundle) and compile's writer share. The values are
    checked by their readers (verify_bundle the files, the app the rest)."""
    if not isinstance(document, dict):
        raise MetadataError("must hold a JSON object")
    missing = [key for key in Metadata.__annotations__ if key in Metadata.__required_keys__ - document.keys()]
    if missing:
        raise MetadataError(f"lacks {', '.join(repr(key) for key in missing)}")
    return cast(Metadata, document)
