"""The Flask app factory: one ModelService per process, blueprints per concern, JSON errors, metrics."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from app import metrics
from app.config import AppConfig
from app.errors import register_error_handlers
from app.routes import health, infer
from app.routes import metrics as metrics_route
from app.service import ModelService

LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def create_app(config: AppConfig, start_loading: bool = True) -> Flask:
    """Build the app; with start_loading the model loads in a background thread of *this* process, so under
    gunicorn (no --preload) every worker opens its own runtime and device after the fork."""
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger("app").setLevel(config.log_level)

    app = Flask(__name__)
    # Werkzeug answers larger bodies with 413 before the view reads them.
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    service = ModelService(config)
    app.extensions["hailo_pipeline"] = service

    app.register_blueprint(infer.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(metrics_route.blueprint)
    register_error_handlers(app)

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        requests, latency = metrics.request_series(endpoint, request.method, response.status_code)
        requests.inc()
        started = g.get("started")
        if started is not None:
            latency.observe(time.perf_counter() - started)
        if response.status_code >= 400:
            metrics.count_error(response.status_code, g.get("error_kind", "unknown"))
        metrics.sample_worker_rss()
        return response

    if start_loading:
        service.start()
    return app
