"""Strict checks of the `POST /infer` body: exactly 100 rows x 9 finite numbers inside each channel's physical
range, each problem named. Malformed bodies are 400; well-formed windows no IMU can produce are 422."""

from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np
import orjson
from flask import Request

from app.errors import ApiError
from bundle_contract.input_ranges import InputRanges
from bundle_contract.tensors import CHANNEL_ORDER, WINDOW_SHAPE

ROWS, COLUMNS = WINDOW_SHAPE
EXPECTED_BODY = f'{{"x": [[{COLUMNS} numbers] x {ROWS}]}}'
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The bytes a plain {"x": [[numbers]]} body is made of, besides its one key: no strings, booleans, nulls or
# other objects. Deleting them from the body and finding {"x":} left is a C-speed proof that every leaf is a
# JSON number, which spares the per-value type pass (the slowest part of a valid body's checks).
_NUMERIC_BYTES = b"0123456789+-.eE[], \t\r\n"
_NUMERIC_SKELETON = b'{"x":}'


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


def parse_precisely(body: bytes) -> object:
    try:
        return json.loads(body, parse_constant=_reject_constant)
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


def parse_window(request: Request, ranges: InputRanges | None = None) -> np.ndarray:
    check_content_type(request)
    body = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(body) >= limit:
        # A chunked body is cut at the limit rather than refused: say so instead of "invalid JSON".
        raise ApiError(413, "body_too_large", f"request body is larger than the {limit}-byte limit")
    if not body.strip():
        raise bad("empty_body", f"request body is empty; expected JSON {EXPECTED_BODY}")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        # The error path: the standard parser names the problem (NaN, position, nesting, encoding).
        document = parse_precisely(body)
    if not isinstance(document, dict):
        raise bad("invalid_body", f'expected a JSON object {{"x": ...}}, got {type(document).__name__}')
    if "x" not in document:
        raise bad("missing_x", f'the JSON object has no "x" key; expected {EXPECTED_BODY}')
    return window_from(
        document["x"], ranges, numbers_only=body.translate(None, _NUMERIC_BYTES) == _NUMERIC_SKELETON
    )


@lru_cache(maxsize=4)
def _bounds(ranges: InputRanges) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(ranges.low, np.float64), np.asarray(ranges.high, np.float64)


def window_from(x: object, ranges: InputRanges | None = None, numbers_only: bool = False) -> np.ndarray:
    """The float32 window; ``ranges`` (the served bundle's) is None only before a model is loaded;
    ``numbers_only``: the body is known to hold JSON numbers and lists only (parse_window's byte check)."""
    if not isinstance(x, list):
        raise bad("invalid_x", f"x must be a list of {ROWS} rows, got {type(x).__name__}")
    if len(x) != ROWS:
        raise bad("wrong_row_count", f"x must have exactly {ROWS} rows, got {len(x)}")
    # Fast path for the usual valid body (one vectorised conversion and range check: ~4x cheaper than the
    # element-wise walk below, which only runs to name the first problem). type(), not isinstance(): bool is
    # an int subclass, and true/false are not sensor readings.
    if numbers_only or all(
        type(row) is list and all(type(v) is float or type(v) is int for v in row) for row in x
    ):
        try:
            values = np.array(x, dtype=np.float64)
        except (OverflowError, ValueError):  # an integer beyond float64; ragged or deeper-nested rows
            values = None
        if values is not None and values.shape != WINDOW_SHAPE:
            values = None
        # NaN fails the comparisons too, so this also rejects NaN/Infinity (e.g. 1e999 parses to inf).
        if values is not None:
            if ranges is None:
                inside = np.all(np.abs(values) <= FLOAT32_MAX)
            else:
                low, high = _bounds(ranges)
                inside = np.all((values >= low) & (values <= high))
            if inside:
                return values.astype(np.float32)
    raise first_problem(x, ranges)


def first_problem(x: list, ranges: InputRanges | None = None) -> ApiError:
    for r, row in enumerate(x):
        if not isinstance(row, list):
            return bad("invalid_row", f"x[{r}] must be a list of {COLUMNS} numbers, got {type(row).__name__}")
        if len(row) != COLUMNS:
            return bad("wrong_column_count", f"x[{r}] must have exactly {COLUMNS} values, got {len(row)}")
        for c, value in enumerate(row):
            # type(), not isinstance(): bool is an int subclass, and true/false are not sensor readings.
            kind = type(value)
            if kind is not float and kind is not int:
                return bad("not_a_number", f"x[{r}][{c}] must be a number, got {_json_type(value)}")
            if kind is float and not math.isfinite(value):
                return bad("non_finite", f"x[{r}][{c}] is not a finite number")
            if ranges is not None and not ranges.low[c] <= value <= ranges.high[c]:
                return ApiError(
                    422,
                    "out_of_range",
                    f"x[{r}][{c}] = {_shown(value)} (row {r}, channel {CHANNEL_ORDER[c]}) is outside the "
                    f"channel's physical range {ranges.describe(c)}",
                )
            if abs(value) > FLOAT32_MAX:
                return ApiError(422, "out_of_range", f"x[{r}][{c}] = {_shown(value)} does not fit in float32")
    return bad("invalid_x", f"x must be {ROWS} rows of {COLUMNS} finite numbers")


def _shown(value: float) -> str:
    try:
        return f"{value:.10g}"
    except OverflowError:  # an integer beyond float64
        return f"an integer of {len(str(abs(value)))} digits"


def _json_type(value: object) -> str:
    return {bool: "a boolean", str: "a string", type(None): "null", dict: "an object", list: "a list"}.get(
        type(value), type(value).__name__
    )
