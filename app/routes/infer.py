"""`POST /infer`: EdgeInfer's model backend call."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, request

from app import metrics
from app.backends.base import BackendError
from app.errors import ApiError
from app.json_response import json_response
from app.service import ModelService, NotReady
from app.validation import parse_window

blueprint = Blueprint("infer", __name__)


@blueprint.post("/infer")
def infer() -> Response:
    service: ModelService = current_app.extensions["hailo_pipeline"]
    window = parse_window(request, service.input_ranges)
    started = time.perf_counter()
    try:
        result = service.infer(window)
    except NotReady as exc:
        raise ApiError(503, "not_ready", f"model is not ready: {exc}") from None
    except BackendError as exc:
        metrics.INFERENCE_FAILURE.inc()
        raise ApiError(503, exc.kind, str(exc)) from None
    metrics.INFERENCE_SUCCESS.inc()
    return json_response(
        {
            "latent": result.latent.tolist(),
            "motif_scores": result.motif_scores.tolist(),
            "model_version": service.model_version,
            "backend": service.backend_name,
            "inference_ms": round((time.perf_counter() - started) * 1000.0, 3),
        }
    )
