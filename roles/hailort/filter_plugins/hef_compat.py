"""Does the fleet's .hef run on this Pi's HailoRT? (Ansible filter ``hailort_hef_refusal``, for preflight.)

A .hef is built by one Dataflow Compiler release and loads on the HailoRT release paired with it; Hailo ships
them in pairs (hailo_model_zoo docs/CHANGELOG.rst: "Update to use Dataflow Compiler v3.31.0 ... HailoRT
4.21.0", and so on; the table and its sources are in docs/HEF_COMPAT.md). The role's ``hailort_dfc_compat``
holds the table as DFC major.minor -> HailoRT major.minor.
"""

from __future__ import annotations

import re
from typing import Any

_MAJOR_MINOR = re.compile(r"^(?:\d+:)?(\d+)\.(\d+)")


def _major_minor(version: Any) -> str | None:
    match = _MAJOR_MINOR.match(str(version or "").strip())
    return f"{match.group(1)}.{match.group(2)}" if match else None


def hailort_hef_refusal(dfc_version: str | None, hailort_version: str | None, table: dict[str, str]) -> str:
    """Why the .hef built by ``dfc_version`` cannot run on ``hailort_version`` ('' when it can, or when the
    bundle has no .hef: ``dfc_version`` None, an onnx-only bundle)."""
    # Ansible hands an unset value over as None or as the text "None".
    dfc_version, hailort_version = (
        None if str(v or "") in ("", "None") else str(v) for v in (dfc_version, hailort_version)
    )
    if not dfc_version:
        return ""
    dfc = _major_minor(dfc_version)
    wanted = {str(k): str(v) for k, v in (table or {}).items()}.get(dfc or "")
    if wanted is None:
        return (
            f"the bundle's .hef is built by DFC {dfc_version}, which hailort_dfc_compat (docs/HEF_COMPAT.md) "
            "pairs with no HailoRT release: add the pair from Hailo's release notes or use a listed DFC"
        )
    if not hailort_version:
        return (
            f"the bundle's .hef (DFC {dfc_version}) needs HailoRT {wanted}, but this Pi has no HailoRT "
            "installed and its apt offers none at or under hailort_version"
        )
    if _major_minor(hailort_version) != wanted:
        return (
            f"the bundle's .hef is built by DFC {dfc_version} and needs HailoRT {wanted}.x, but this Pi runs "
            f"HailoRT {hailort_version}: set hailort_version to {wanted} or build with the DFC paired with it"
        )
    return ""


class FilterModule:
    """Ansible filter: hailort_hef_refusal."""

    def filters(self) -> dict[str, Any]:
        return {"hailort_hef_refusal": hailort_hef_refusal}
