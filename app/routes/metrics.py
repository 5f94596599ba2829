"""`GET /metrics`: Prometheus text summed over every live gunicorn worker."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from app import metrics
from app.service import ModelService

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def scrape() -> Response:
    service: ModelService = current_app.extensions["hailo_pipeline"]
    service.refresh_scrape_gauges()
    body, content_type = metrics.render(service.config.thermal_root)
    return Response(body, mimetype=None, content_type=content_type)
