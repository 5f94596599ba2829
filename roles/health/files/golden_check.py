#!/usr/bin/env python3
"""Golden-window checks run ON THE PI by the health role (standard library only: Pi OS's python3).

Posts the bundle's golden window to the app and through EdgeInfer, compares the latents and times the calls.
Prints one JSON object; a failed check is data in that object (the role decides and names it), so the exit
code is non-zero only when the script itself cannot run (unreadable metadata, bad arguments).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import statistics
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def read_metadata(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        metadata = json.load(handle)
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not a JSON object")
    missing = [key for key in ("window", "latent", "tolerance") if key not in (metadata.get("golden") or {})]
    if missing:
        raise ValueError(f"'golden' lacks {', '.join(missing)}")
    return metadata


def post_window(
    url: str, window: list[list[float]], timeout_s: float
) -> tuple[dict[str, Any] | None, float, str]:
    """POST {"x": window}; return (JSON answer or None, wall time in ms, error text or "")."""
    body = json.dumps({"x": window}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return (
            None,
            _ms_since(started),
            f"HTTP {exc.code} from {url}: {exc.read()[:200].decode(errors='replace')}",
        )
    # OSError: timeouts and dropped connections; HTTPException: a body cut short (IncompleteRead) or a garbled
    # status line; ValueError: an answer that is not JSON text (bad JSON, not UTF-8).
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        return None, _ms_since(started), f"{url}: {exc.__class__.__name__}: {exc}"
    return answer, _ms_since(started), ""


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def latent_of(answer: Any, length: int) -> list[float] | None:
    # Any JSON can come back (a list, a string from the wrong service): only an object can hold a latent.
    latent = answer.get("latent") if isinstance(answer, dict) else None
    if not isinstance(latent, list) or len(latent) != length:
        return None
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in latent):
        return None
    return [float(v) for v in latent]


def max_abs(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def timed_calls(url: str, window: list[list[float]], calls: int, timeout_s: float) -> dict[str, Any]:
    """The first answer plus p50/max wall time over `calls` POSTs (the first one included)."""
    answers, times, error = [], [], ""
    for _ in range(calls):
        answer, elapsed_ms, error = post_window(url, window, timeout_s)
        if error:
            break
        answers.append(answer)
        times.append(elapsed_ms)
    latency = {"p50": round(statistics.median(times), 3), "max": round(max(times), 3)} if times else None
    return {"answers": answers, "latency_ms": latency, "error": error}


def check_app(golden: dict[str, Any], run: dict[str, Any], backend: str) -> dict[str, Any]:
    if run["error"]:
        return {"ok": False, "reason": run["error"]}
    expected = [float(v) for v in golden["latent"]]
    latent = latent_of(run["answers"][0], len(expected))
    if latent is None:
        return {"ok": False, "reason": f"app answer has no finite latent of length {len(expected)}"}
    tolerance = golden["tolerance"]
    result = {"max_abs": max_abs(latent, expected), "cosine": cosine(latent, expected)}
    # A float backend must match the golden latent closely; a quantized one (HailoRT) only in direction.
    if backend == "hailort":
        ok = result["cosine"] >= tolerance["latent_min_cosine"]
        rule = f"cosine {result['cosine']:.6f} >= {tolerance['latent_min_cosine']}"
    else:
        ok = result["max_abs"] <= tolerance["latent_max_abs"]
        rule = f"max abs diff {result['max_abs']:.3g} <= {tolerance['latent_max_abs']}"
    return {**result, "ok": ok, "reason": f"{backend}: {rule}" + ("" if ok else " is false")}


def check_edgeinfer(
    app_latent: list[float] | None, run: dict[str, Any], expect_real: bool, same_max_abs: float, min_real: int
) -> dict[str, Any]:
    if run["error"]:
        return {"ok": False, "real_model": None, "reason": run["error"]}
    if app_latent is None:
        return {"ok": False, "real_model": None, "reason": "no app latent to compare EdgeInfer's with"}
    latents = [latent_of(answer, len(app_latent)) for answer in run["answers"]]
    if any(latent is None for latent in latents):
        return {
            "ok": False,
            "real_model": None,
            "reason": "an EdgeInfer answer has no finite latent of length 64",
        }
    # EdgeInfer re-encodes the backend's floats as float32, so "same" allows float32 rounding; its random stub
    # output never comes near the model's. A single stub answer among real ones is EdgeInfer's silent fallback
    # (e.g. its 45 ms read timeout), so real answers are counted against a minimum.
    diffs = [max_abs(latent, app_latent) for latent in latents if latent is not None]
    same = sum(diff <= same_max_abs for diff in diffs)
    counts = f"{same}/{len(diffs)} EdgeInfer answers equal the app's latent"
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
        "answers": len(diffs),
        "closest_max_abs": min(diffs),
        "reason": reason,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata", required=True, help="deployed model_metadata.json")
    parser.add_argument("--app-url", required=True, help="the app's POST /infer URL")
    parser.add_argument("--edgeinfer-url", required=True, help="EdgeInfer's POST /api/v1/analysis/infer URL")
    parser.add_argument(
        "--backend", required=True, help="backend the app reports (hailort compares by cosine)"
    )
    parser.add_argument("--calls", type=int, default=5, help="timed calls per endpoint")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP call")
    parser.add_argument("--edgeinfer-same-max-abs", type=float, default=1e-5)
    parser.add_argument(
        "--edgeinfer-min-real", type=int, default=1, help="EdgeInfer answers that must be real"
    )
    parser.add_argument("--expect-edgeinfer", choices=("real", "stub"), default="real")
    args = parser.parse_args()

    try:
        metadata = read_metadata(args.metadata)
    except (OSError, ValueError) as exc:
        print(f"golden_check: cannot read the golden window from {args.metadata}: {exc}", file=sys.stderr)
        return 2
    golden = metadata["golden"]
    window = golden["window"]

    app_run = timed_calls(args.app_url, window, max(args.calls, 1), args.timeout)
    app = check_app(golden, app_run, args.backend)
    app_latent = latent_of(app_run["answers"][0], len(golden["latent"])) if app_run["answers"] else None
    edge_run = timed_calls(args.edgeinfer_url, window, max(args.calls, 1), args.timeout)
    edge = check_edgeinfer(
        app_latent,
        edge_run,
        args.expect_edgeinfer == "real",
        args.edgeinfer_same_max_abs,
        args.edgeinfer_min_real,
    )
    print(
        json.dumps(
            {
                "bundle_version": metadata.get("version"),
                "golden_app": app,
                "golden_edgeinfer": edge,
                "latency_ms": app_run["latency_ms"],
                "edgeinfer_latency_ms": edge_run["latency_ms"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
