"""Judge the golden-window measurements golden_check.py took on a Pi (Ansible filter health_golden_judgment).

The Pi only measures, with its own python3, so any release can be checked (one from before bundle_contract
too); the control host judges with bundle_contract.golden, the rule the app's warm-up and the EdgeInfer watch
apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from bundle_contract.golden import SAME_MAX_ABS, finite_latent, judge, max_abs, same_latent
    from bundle_contract.tensors import LATENT_SIZE
except ImportError as exc:
    # Raised when the filter runs, not when Ansible loads its plugins (that only says "no filter named ...").
    _CONTRACT_MISSING: ImportError | None = exc
else:
    _CONTRACT_MISSING = None

_MEASURED_KEYS = ("bundle_version", "golden", "app", "edgeinfer")


def health_golden_judgment(
    measured: Mapping[str, Any],
    backend: str,
    expect_edgeinfer: str = "real",
    min_real: int = 1,
    same_max_abs: float | None = None,
) -> dict[str, Any]:
    """golden_check.py's JSON -> {bundle_version, golden_app, golden_edgeinfer, latency_ms,
    edgeinfer_latency_ms}; ``same_max_abs`` None is the contract's SAME_MAX_ABS."""
    if _CONTRACT_MISSING is not None:
        raise AnsibleFilterError(
            "health_golden_judgment needs the project's bundle_contract on the control host"
            f" ({_CONTRACT_MISSING}): run Ansible from the project's venv (make setup) or install the project"
            " (pip install -e .)"
        )
    if not isinstance(measured, Mapping) or any(key not in measured for key in _MEASURED_KEYS):
        raise AnsibleFilterError(
            f"health_golden_judgment takes golden_check.py's JSON object ({', '.join(_MEASURED_KEYS)}),"
            f" got {str(measured)[:200]}"
        )
    app, edge = measured["app"], measured["edgeinfer"]
    app_latent = _latent(app["latents"][0]) if app["latents"] else None
    return {
        "bundle_version": measured["bundle_version"],
        "golden_app": judge_app(measured["golden"], app, backend),
        "golden_edgeinfer": judge_edgeinfer(
            app_latent,
            edge,
            expect_edgeinfer == "real",
            SAME_MAX_ABS if same_max_abs is None else float(same_max_abs),
            int(min_real),
        ),
        "latency_ms": app["latency_ms"],
        "edgeinfer_latency_ms": edge["latency_ms"],
    }


def _latent(value: Any) -> list[float] | None:
    # The collector passes each answer's "latent" on as it came; finite_latent reads it from an answer object.
    return finite_latent({"latent": value}, LATENT_SIZE)


def judge_app(golden: Mapping[str, Any], run: Mapping[str, Any], backend: str) -> dict[str, Any]:
    if run["error"]:
        return {"ok": False, "reason": run["error"]}
    if finite_latent(golden, LATENT_SIZE) is None:
        return {"ok": False, "reason": f"the deployed golden.latent is not {LATENT_SIZE} finite numbers"}
    latent = _latent(run["latents"][0])
    if latent is None:
        return {"ok": False, "reason": f"app answer has no finite latent of length {LATENT_SIZE}"}
    judgment = judge(dict(golden), latent, backend)
    return {
        "max_abs": judgment.max_abs,
        "cosine": judgment.cosine,
        "ok": judgment.ok,
        "reason": f"{backend}: {judgment.rule}" + ("" if judgment.ok else " is false"),
    }


def judge_edgeinfer(
    app_latent: list[float] | None,
    run: Mapping[str, Any],
    expect_real: bool,
    same_max_abs: float,
    min_real: int,
) -> dict[str, Any]:
    if run["error"]:
        return {"ok": False, "real_model": None, "reason": run["error"]}
    if app_latent is None:
        return {"ok": False, "real_model": None, "reason": "no app latent to compare EdgeInfer's with"}
    latents = [_latent(value) for value in run["latents"]]
    if any(latent is None for latent in latents):
        return {
            "ok": False,
            "real_model": None,
            "reason": f"an EdgeInfer answer has no finite latent of length {LATENT_SIZE}",
        }
    # A single stub answer among real ones is EdgeInfer's silent fallback (e.g. its 45 ms read timeout), so
    # real answers are counted against a minimum.
    same = sum(same_latent(latent, app_latent, same_max_abs) for latent in latents)
    counts = f"{same}/{len(latents)} EdgeInfer answers equal the app's latent"
    if expect_real:
        ok = same >= min_real
        reason = counts if ok else f"{counts}, need {min_real}: EdgeInfer answers from its random stub"
    else:
        ok = same == 0
        reason = counts + (
            ": stub mode, as expected" if ok else ", but stub mode (USE_REAL_MODEL=false) was expected"
        )
    return {
        "ok": ok,
        "real_model": same > 0,
        "real_answers": same,
        "answers": len(latents),
        "closest_max_abs": min(max_abs(latent, app_latent) for latent in latents if latent is not None),
        "reason": reason,
    }


class FilterModule:
    """Ansible filter: health_golden_judgment."""

    def filters(self) -> dict[str, Any]:
        return {"health_golden_judgment": health_golden_judgment}
