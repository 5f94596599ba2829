"""JSON answers that can never carry NaN/Infinity (Swift's decoder, hence EdgeInfer, rejects them)."""

from __future__ import annotations

import json

from flask import Response


def json_response(body: dict[str, object], status: int = 200) -> Response:
    text = json.dumps(body, allow_nan=False, separators=(",", ":"))
    return Response(text, status=status, mimetype="application/json")
