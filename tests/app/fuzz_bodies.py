"""Seeded hostile `POST /infer` requests: value mutations, wrong shapes, byte damage, broken structure, odd
headers and chunked bodies. Each case is (label, body bytes, headers, chunked)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

Case = tuple[str, bytes, list[tuple[str, str]], bool]

JSON = [("Content-Type", "application/json")]
# Values a broken or hostile client sends; 1e30..3e38 fit float32 and overflow the z-scored model.
HOSTILE_VALUES: list[object] = [
    1e30, -1e30, 3e38, -3e38, 3.4028234e38, 3.5e38, 1e39, 1e308, -1e308, 5e-324, -0.0, 0, 1, -1,
    2**63, -(2**63), 10**40, 313.8128, -313.8128, 313.9, 69.8132, 69.9, 9800, 9800.1, -9800.1,
    True, False, None, "1.0", "", [], [1.0], {}, {"v": 1},
]  # fmt: skip
TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"0x10", b"+1", b".5", b"1.", b"01", b"1e"]
ODD_HEADERS: list[list[tuple[str, str]]] = [
    JSON * 2,
    [("Content-Type", "application/json, application/json")],
    [("Content-Type", "application/json; charset=utf-8")],
    [("content-type", "APPLICATION/JSON")],
    [("Content-Type", "text/plain")],
    [("Content-Type", "application/json, text/plain")],
    [("Content-Type", "")],
    [],
    [*JSON, ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"), ("Accept", "*/*"), ("Expect", "100-continue")],
    [*JSON, ("Connection", "close")],
    [*JSON, ("Content-Encoding", "gzip")],
    [*JSON, ("X-Junk", "a" * 4000)],
    [*JSON, ("X-Latin-1", "é")],
]


def plausible_window(rng: random.Random) -> list[list[float]]:
    """A raw window as a still or moving IMU gives it: gravity on az, small motion elsewhere."""
    return [
        [rng.gauss(0, 2), rng.gauss(0, 2), rng.gauss(9.8, 1), *(rng.gauss(0, 1) for _ in range(3)),
         *(rng.gauss(30, 20) for _ in range(3))]
        for _ in range(100)
    ]  # fmt: skip


_POOL: list[list[list[float]]] = []


def window(rng: random.Random) -> list[list[float]]:
    """A fresh copy of one of 64 plausible windows (drawing every value anew would dominate the run time)."""
    if not _POOL:
        pool_rng = random.Random(0)
        # Three decimals, as sensors report them; also keeps json.dumps (float repr) from dominating the run.
        _POOL.extend([[round(v, 3) for v in row] for row in plausible_window(pool_rng)] for _ in range(64))
    return [row[:] for row in rng.choice(_POOL)]


def _encode(document: object) -> bytes:
    return json.dumps(document, allow_nan=True).encode()


def value_mutation(rng: random.Random) -> bytes:
    x: list[list[object]] = window(rng)  # type: ignore[assignment]
    for _ in range(rng.choice((1, 1, 2, 5, 50))):
        r, c = rng.randrange(100), rng.randrange(9)
        if rng.random() < 0.7:
            x[r][c] = rng.choice(HOSTILE_VALUES)
        else:  # anywhere on a log scale up to float32's limit, either sign
            x[r][c] = rng.choice((-1, 1)) * 10 ** rng.uniform(-10, 38.5)
    body = _encode({"x": x})
    if rng.random() < 0.2:  # a literal json.dumps never writes
        body = body.replace(b"0.", rng.choice(TOKENS) + b",0.", 1) if rng.random() < 0.5 else body
        body = body.replace(b", ", b", " + rng.choice(TOKENS) + b", ", 1)
    return body


def wrong_shape(rng: random.Random) -> bytes:
    base = window(rng)
    kind = rng.randrange(7)
    if kind == 0:
        x: object = base[: rng.randrange(100)]
    elif kind == 1:
        x = base + base[: rng.randrange(1, 10)]
    elif kind == 2:
        width = rng.choice((0, 1, 8, 10, 12))
        x = [row[:width] if width < 9 else row + [1.0] * (width - 9) for row in base]
    elif kind == 3:  # one ragged row
        r = rng.randrange(100)
        x = [*base[:r], base[r][: rng.randrange(9)], *base[r + 1 :]]
    elif kind == 4:
        x = rng.choice((1.0, "x", None, True, {"rows": base}, [], [[]], [base]))
    elif kind == 5:
        x = [[[v] for v in row] for row in base]
    else:
        x = [[v for row in base for v in row]]
    document = (
        {"x": x} if rng.random() < 0.9 else rng.choice(({"X": base}, {"data": base}, {"x": base, "y": 1}))
    )
    return _encode(document)


def byte_damage(rng: random.Random) -> bytes:
    data = bytearray(_encode({"x": window(rng)}))
    for _ in range(rng.choice((1, 2, 5, 20))):
        if not data:
            break
        at = rng.randrange(len(data))
        action = rng.randrange(5)
        if action == 0:
            data[at] = rng.randrange(256)
        elif action == 1:
            del data[at]
        elif action == 2:
            data.insert(at, rng.choice(b'{}[],:"\\\x00\xff\xc3e-+.'))
        elif action == 3:
            del data[at:]
        else:
            data[at:at] = rng.choice((b"\xed\xa0\x80", b"\xc0\xaf", b"\\u0000", b"\\ud800", b"\x00" * 5))
    return bytes(data)


def broken_structure(rng: random.Random) -> bytes:
    good = _encode({"x": window(rng)})
    depth = rng.choice((10, 1000, 30_000))
    return rng.choice(
        (
            b"", b" \n\t", b"null", b"1", b'"x"', b"[]", b"{}", b'{"x"}', b'{"x": }', b'{"x": [}',
            b"[" * depth + b"]" * depth, b'{"x":' * depth, b'{"x": ' + b"[" * depth,
            good[:-1], good + b"}", good + b" garbage", good.replace(b"]]", b"],]"),
            b'{"x": [], "x": ' + good[6:], good.replace(b"{", b"{\"x\": 1, ", 1), b"\xef\xbb\xbf" + good,
            good.replace(b'"x"', b"x"), good.replace(b'"x"', b"'x'"), good.replace(b":", b"=", 1),
            good.decode().encode("utf-16"), b"[" + good + b"]",
        )
    )  # fmt: skip


GENERATORS = (value_mutation, wrong_shape, byte_damage, broken_structure)


def cases(seed: int, count: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for _ in range(count):
        generator = rng.choice(GENERATORS)
        body = generator(rng)
        headers = rng.choice(ODD_HEADERS) if rng.random() < 0.25 else JSON
        yield generator.__name__, body, headers, rng.random() < 0.15


def chunked(body: bytes, rng: random.Random) -> bytes:
    """The body in random-sized chunks, as `Transfer-Encoding: chunked` sends it."""
    out, at = bytearray(), 0
    while at < len(body):
        size = rng.randint(1, 4096)
        out += b"%x\r\n%s\r\n" % (len(body[at : at + size]), body[at : at + size])
        at += size
    return bytes(out + b"0\r\n\r\n")
