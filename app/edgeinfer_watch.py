"""The EdgeInfer watch: is EdgeInfer answering with the model right now? Run by a systemd timer on each Pi.

    python -m app.edgeinfer_watch --metadata ROOT/current/bundle/model_metadata.json \
        --edgeinfer-url EDGEINFER/api/v1/analysis/infer --out /var/lib/hailo-inference-watch/edgeinfer.prom

as the inference_app role's unit runs it, with inference_app_root and inference_app_edgeinfer_watch_url.

EdgeInfer hides a failing backend: it answers random stub output with 200 (docs in the health role). So the
watch posts the bundle's golden window to the app and through EdgeInfer, and EdgeInfer "answers with the
model" only when one of its answers carries the app's latent (float32 rounding apart; the stub never comes
near). The result goes to a Prometheus textfile the metrics listener serves; HailoPipelineEdgeInferFallback
alerts on it. Standard library only. The exit code is non-zero only when the watch cannot run (unreadable
metadata, unwritable output): then the textfile's timestamp goes stale, which HailoPipelineEdgeInferWatchStale
alerts on.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from app.config import LOOPBACK_URL
from bundle_contract.golden import finite_latent, same_latent


def post_latent(url: str, window: list[list[float]], length: int, timeout_s: float) -> list[float] | None:
    """POST {"x": window}; the answer's finite latent of `length`, or None for any failure."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"x": window}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return None
    return finite_latent(answer, length)


def edgeinfer_answers_with_model(app: list[float] | None, edgeinfer: list[list[float] | None]) -> bool:
    """True when the app answered and one EdgeInfer answer carries its latent (a single real one suffices:
    a stub answer among real ones is a one-off timeout, not a fallback)."""
    if app is None:
        return False  # EdgeInfer calls the app: with no app answer, whatever EdgeInfer says is its stub
    return any(same_latent(latent, app) for latent in edgeinfer)


def textfile(app_ok: bool, model_ok: bool, now: float) -> str:
    return (
        "# HELP hailo_pipeline_edgeinfer_model_answers Whether EdgeInfer answered the golden window with "
        "the model (1) or with its stub (0), at the last watch run\n"
        "# TYPE hailo_pipeline_edgeinfer_model_answers gauge\n"
        f"hailo_pipeline_edgeinfer_model_answers {int(model_ok)}\n"
        "# HELP hailo_pipeline_edgeinfer_watch_app_answers Whether the app answered the golden window at the "
        "last watch run\n"
        "# TYPE hailo_pipeline_edgeinfer_watch_app_answers gauge\n"
        f"hailo_pipeline_edgeinfer_watch_app_answers {int(app_ok)}\n"
        "# HELP hailo_pipeline_edgeinfer_watch_timestamp_seconds When the watch last ran (Unix time)\n"
        "# TYPE hailo_pipeline_edgeinfer_watch_timestamp_seconds gauge\n"
        f"hailo_pipeline_edgeinfer_watch_timestamp_seconds {now:.3f}\n"
    )


def write_atomically(path: Path, text: str) -> None:
    # The listener may read at any moment: it must see the old file or the new one, never half of one.
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--metadata", type=Path, required=True, help="the served bundle's model_metadata.json"
    )
    parser.add_argument("--app-url", default=f"{LOOPBACK_URL}/infer", help="the app's POST /infer URL")
    # No default: where EdgeInfer listens is the fleet's to say (group_vars/pis), and the unit passes it.
    parser.add_argument("--edgeinfer-url", required=True, help="EdgeInfer's POST /api/v1/analysis/infer URL")
    parser.add_argument("--out", type=Path, required=True, help="Prometheus textfile to write (*.prom)")
    parser.add_argument(
        "--tries", type=int, default=3, help="EdgeInfer calls per run (one real answer suffices)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per HTTP call")
    args = parser.parse_args(argv)
    try:
        golden = json.loads(args.metadata.read_text())["golden"]
        window, length = golden["window"], len(golden["latent"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"edgeinfer_watch: no golden window in {args.metadata}: {exc!r}", file=sys.stderr)
        return 2
    app = post_latent(args.app_url, window, length, args.timeout)
    edgeinfer = [
        post_latent(args.edgeinfer_url, window, length, args.timeout) for _ in range(max(args.tries, 1))
    ]
    model_ok = edgeinfer_answers_with_model(app, edgeinfer)
    try:
        write_atomically(args.out, textfile(app is not None, model_ok, time.time()))
    except OSError as exc:
        print(f"edgeinfer_watch: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    print(
        f"edgeinfer_watch: app {'answered' if app else 'did not answer'}; EdgeInfer answers with "
        f"{'the model' if model_ok else 'its stub'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
