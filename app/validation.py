"""Strict checks of the `POST /infer` body: exactly 100 rows x 9 finite numbers, each problem named."""

from __future__ import annotations

import json
import math

import numpy as np
from flask import Request

from app.backends.base import WINDOW_SHAPE
from app.errors import ApiError

ROWS, COLUMNS = WINDOW_SHAPE
FLOAT32_MAX = float(np.finfo(np.float32).max)


def bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def check_content_type(request: Request) -> None:
    # EdgeInfer may send `Content-Type: application/json` twice; a server may join the copies with a comma.
    header = request.headers.get("Content-Type", "")
    types = [part.split(";")[0].strip().lower() for part in header.split(",")]
    if not header or any(t != "application/json" for t in types):
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be application/json, got {header!r}"
        )


def _reject_constant(name: str) -> float:
    raise bad("non_finite", f"{name} is not a finite number; x must hold finite numbers only")


def parse_window(request: Request) -> np.ndarray:
    check_content_type(request)
    body = request.get_data(cache=False)
    if not body.strip():
        raise bad("empty_body", 'request body is empty; expected JSON {"x": [[9 numbers] x 100]}')
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise bad("invalid_json", f"request body is not UTF-8 text: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise bad(
            "invalid_json",
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's 4300-digit limit
        raise bad("invalid_json", f"request body is not acceptable JSON: {exc}") from None
    except RecursionError:
        raise bad("invalid_json", "request body is nested too deeply") from None
    if not isinstance(document, dict):
        raise bad("invalid_body", f'expected a JSON object {{"x": ...}}, got {type(document).__name__}')
    if "x" not in document:
        raise bad("missing_x", 'the JSON object has no "x" key; expected {"x": [[9 numbers] x 100]}')
    return window_from(document["x"])


def window_from(x: object) -> np.ndarray:
    if not isinstance(x, list):
        raise bad("invalid_x", f"x must be a list of {ROWS} rows, got {type(x).__name__}")
    if len(x) != ROWS:
        raise bad("wrong_row_count", f"x must have exactly {ROWS} rows, got {len(x)}")
    for r, row in enumerate(x):
        if not isinstance(row, list):
            raise bad("invalid_row", f"x[{r}] must be a list of {COLUMNS} numbers, got {type(row).__name__}")
        if len(row) != COLUMNS:
            raise bad("wrong_column_count", f"x[{r}] must have exactly {COLUMNS} values, got {len(row)}")
        for c, value in enumerate(row):
            # type(), not isinstance(): bool is an int subclass, and true/false are not sensor readings.
            kind = type(value)
            if kind is not float and kind is not int:
                raise bad("not_a_number", f"x[{r}][{c}] must be a number, got {_json_type(value)}")
            if kind is float and not math.isfinite(value):
                raise bad("non_finite", f"x[{r}][{c}] is not a finite number")
            if abs(value) > FLOAT32_MAX:
                raise bad("out_of_range", f"x[{r}][{c}] = {value!r} does not fit in float32")
    return np.array(x, dtype=np.float32)


def _json_type(value: object) -> str:
    return {bool: "a boolean", str: "a string", type(None): "null", dict: "an object", list: "a list"}.get(
        type(value), type(value).__name__
    )
