"""`/healthz` (readiness: EdgeInfer counts only 200 as "backend usable") and `/livez` (process is up)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from app.json_response import json_response
from app.service import ModelService

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    service: ModelService = current_app.extensions["hailo_pipeline"]
    status, body = service.health()
    return json_response(body, status)


@blueprint.get("/livez")
def livez() -> Response:
    return json_response({"status": "alive"})
