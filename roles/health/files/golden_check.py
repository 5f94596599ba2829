#!/usr/bin/env python3
"""Golden-window measurements run ON THE PI by the health role (standard library only: Pi OS's python3).

Posts the deployed bundle's golden window to the app and through EdgeInfer, times the calls and prints one
JSON object: each answer's latent as it came, the errors, the latency figures, the bundle version and the
golden latent and tolerance. It judges nothing: the control host does, with bundle_contract
(filter_plugins/golden_judgment.py), so a release from before bundle_contract is judged by the same rule.
The exit code is non-zero only when the script itself cannot run (unreadable metadata, bad arguments).
"""

from __future__ import annotations

import argparse
import http.client
import json
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


def post_window(url: str, window: list[list[float]], timeout_s: float) -> tuple[Any, float, str]:
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


def latent_of(answer: Any) -> Any:
    # Any JSON can come back (a list, a string from the wrong service): only an object can hold a latent.
    # Whether it is a usable one is the judge's question.
    return answer.get("latent") if isinstance(answer, dict) else None


def timed_calls(url: str, window: list[list[float]], calls: int, timeout_s: float) -> dict[str, Any]:
    """Each answer's latent plus p50/max wall time over `calls` POSTs, stopping at the first error."""
    latents, times, error = [], [], ""
    for _ in range(calls):
        answer, elapsed_ms, error = post_window(url, window, timeout_s)
        if error:
            break
        latents.append(latent_of(answer))
        times.append(elapsed_ms)
    latency = {"p50": round(statistics.median(times), 3), "max": round(max(times), 3)} if times else None
    return {"latents": latents, "latency_ms": latency, "error": error}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata", required=True, help="the deployed bundle's metadata file")
    parser.add_argument("--app-url", required=True, help="the app's POST /infer URL")
    parser.add_argument("--edgeinfer-url", required=True, help="EdgeInfer's POST /api/v1/analysis/infer URL")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per endpoint")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP call")
    args = parser.parse_args()

    try:
        metadata = read_metadata(args.metadata)
    except (OSError, ValueError) as exc:
        print(f"golden_check: cannot read the golden window from {args.metadata}: {exc}", file=sys.stderr)
        return 2
    golden = metadata["golden"]
    calls = max(args.calls, 1)
    print(
        json.dumps(
            {
                "bundle_version": metadata.get("version"),
                "golden": {"latent": golden["latent"], "tolerance": golden["tolerance"]},
                "app": timed_calls(args.app_url, golden["window"], calls, args.timeout),
                "edgeinfer": timed_calls(args.edgeinfer_url, golden["window"], calls, args.timeout),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
