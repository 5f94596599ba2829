"""JSON answers that can never carry NaN/Infinity (Swift's decoder, hence EdgeInfer, rejects them)."""

from __future__ import annotations

import orjson
from flask import Response


def json_response(body: dict[str, object], status: int = 200) -> Response:
    # orjson has no NaN/Infinity tokens at all (it would write null); /infer's numbers are checked finite
    # before they get here (checked_inference). ~25x faster than json.dumps on the /infer answer's 76 floats.
    return Response(orjson.dumps(body), status=status, mimetype="application/json")
