"""roles/health/filter_plugins/golden_judgment.py: the control host's judgment of golden_check.py's
measurements (the scenarios through real HTTP stand-ins are tests/roles/health/files/test_golden_check.py)."""

from __future__ import annotations

import math
import struct
from typing import Any

import golden_judgment
import pytest
from ansible.errors import AnsibleFilterError
from golden_judgment import FilterModule, health_golden_judgment

from bundle_contract.golden import SAME_MAX_ABS, TOLERANCE

GOLDEN = {"latent": [math.sin(i / 3.0) for i in range(64)], "tolerance": dict(TOLERANCE)}
LATENCY = {"p50": 1.5, "max": 2.0}


def as_float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"{len(values)}f", struct.pack(f"{len(values)}f", *values)))


def run(*latents: Any, error: str = "") -> dict[str, Any]:
    return {"latents": list(latents), "latency_ms": LATENCY if latents else None, "error": error}


def measured(app: dict[str, Any], edgeinfer: dict[str, Any]) -> dict[str, Any]:
    """golden_check.py's JSON object."""
    return {"bundle_version": "v1", "golden": GOLDEN, "app": app, "edgeinfer": edgeinfer}


def test_agreeing_answers_pass_with_the_reports_shape() -> None:
    latent = GOLDEN["latent"]
    report = health_golden_judgment(
        measured(run(latent, latent), run(as_float32(latent), as_float32(latent))), "onnxruntime"
    )
    assert report == {
        "bundle_version": "v1",
        "golden_app": {
            "max_abs": 0.0,
            "cosine": pytest.approx(1.0),
            "ok": True,
            "reason": "onnxruntime: max abs diff 0 <= 0.001",
        },
        "golden_edgeinfer": {
            "ok": True,
            "real_model": True,
            "real_answers": 2,
            "answers": 2,
            "closest_max_abs": pytest.approx(0.0, abs=SAME_MAX_ABS),
            "reason": "2/2 EdgeInfer answers equal the app's latent",
        },
        "latency_ms": LATENCY,
        "edgeinfer_latency_ms": LATENCY,
    }


def test_hailort_latent_pointing_elsewhere_fails_by_cosine() -> None:
    scrambled = GOLDEN["latent"][::-1]
    app = health_golden_judgment(measured(run(scrambled), run(scrambled)), "hailort")["golden_app"]
    assert app["ok"] is False
    assert app["cosine"] < TOLERANCE["latent_min_cosine"]
    assert app["reason"].startswith("hailort: cosine") and app["reason"].endswith(">= 0.98 is false")


def test_edgeinfer_answers_near_but_not_equal_are_its_stub() -> None:
    latent = GOLDEN["latent"]
    near = [v + 10 * SAME_MAX_ABS for v in latent]
    edge = health_golden_judgment(measured(run(latent), run(near, near)), "onnxruntime")["golden_edgeinfer"]
    assert (edge["ok"], edge["real_model"], edge["real_answers"]) == (False, False, 0)
    assert edge["reason"] == (
        "0/2 EdgeInfer answers equal the app's latent, need 1: EdgeInfer answers from its random stub"
    )
    # health_edgeinfer_same_max_abs widens "the same"; unset, it is the contract's SAME_MAX_ABS.
    wide = health_golden_judgment(
        measured(run(latent), run(near, near)), "onnxruntime", same_max_abs=100 * SAME_MAX_ABS
    )
    assert wide["golden_edgeinfer"]["real_answers"] == 2


@pytest.mark.parametrize("latent", ["0.1, 0.2", {"0": 0.1}, None, 42, [0.1] * 63, [math.nan] * 64])
def test_an_answer_without_a_finite_latent_list_fails_naming_the_length(latent: Any) -> None:
    good = GOLDEN["latent"]
    app = health_golden_judgment(measured(run(latent), run(good)), "onnxruntime")["golden_app"]
    assert app == {"ok": False, "reason": "app answer has no finite latent of length 64"}
    edge = health_golden_judgment(measured(run(good), run(good, latent)), "onnxruntime")["golden_edgeinfer"]
    assert edge == {
        "ok": False,
        "real_model": None,
        "reason": "an EdgeInfer answer has no finite latent of length 64",
    }


def test_edgeinfer_is_compared_with_the_first_app_answer_even_after_a_later_app_error() -> None:
    latent = GOLDEN["latent"]
    report = health_golden_judgment(measured(run(latent, error="app: timed out"), run(latent)), "onnxruntime")
    assert report["golden_app"] == {"ok": False, "reason": "app: timed out"}
    assert report["golden_edgeinfer"]["ok"] is True


def test_a_deployed_golden_latent_of_another_length_fails_golden_app() -> None:
    latent = GOLDEN["latent"]
    twelve = {**measured(run(latent), run(latent)), "golden": {**GOLDEN, "latent": latent[:12]}}
    report = health_golden_judgment(twelve, "onnxruntime")
    assert report["golden_app"] == {
        "ok": False,
        "reason": "the deployed golden.latent is not 64 finite numbers",
    }


@pytest.mark.parametrize("value", ["", [], {"app": {}}, {"golden_app": {"ok": True}}])
def test_anything_but_the_scripts_object_is_refused(value: Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"takes golden_check\.py's JSON object"):
        health_golden_judgment(value, "onnxruntime")


def test_without_bundle_contract_it_says_to_run_from_the_projects_venv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = ImportError("No module named 'bundle_contract'")
    monkeypatch.setattr(golden_judgment, "_CONTRACT_MISSING", missing)
    with pytest.raises(AnsibleFilterError, match=r"bundle_contract.*make setup"):
        health_golden_judgment(measured(run(), run()), "onnxruntime")


def test_ansible_finds_it_by_its_role_prefixed_name() -> None:
    assert FilterModule().filters() == {"health_golden_judgment": health_golden_judgment}
