"""12,000 seeded hostile bodies against the real gunicorn server (`python -m app`, two workers): no 5xx, no
dropped connection, no non-finite number in a 200, and the server healthy afterwards (issue 12)."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app_server import AppServer
from fuzz_bodies import cases, chunked

SEED = 12
BODIES = 12_000


def reject_constant(name: str) -> float:
    raise ValueError(f"{name} in a 200 answer")


def send(server: AppServer, case: tuple, rng_seed: int) -> tuple[str, int | str, str]:
    label, body, headers, as_chunks = case
    try:
        if as_chunks:
            answer = server.request(
                "POST", "/infer", chunked(body, random.Random(rng_seed)),
                [*headers, ("Transfer-Encoding", "chunked")], content_length=False,
            )  # fmt: skip
        else:
            answer = server.request("POST", "/infer", body, headers)
    except OSError as exc:  # reset, refused, or closed without an answer (http.client raises OSErrors)
        return label, "dropped", f"{type(exc).__name__}: {exc}"
    problem = ""
    if answer.status >= 500:
        problem = answer.body[:300].decode(errors="replace")
    elif answer.status == 200:
        try:
            payload = json.loads(answer.body, parse_constant=reject_constant)
            values = payload["latent"] + payload["motif_scores"]
            if len(payload["latent"]) != 64 or len(payload["motif_scores"]) != 12:
                problem = "wrong output lengths"
            elif not all(isinstance(v, float | int) and math.isfinite(v) for v in values):
                problem = "non-finite number"
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"200 answer is not the model's: {exc}"
    return label, answer.status, problem


def test_hostile_bodies_never_get_5xx_drops_or_non_finite_answers(
    default_bundle: Path, tmp_path: Path
) -> None:
    with AppServer(default_bundle, tmp_path, workers=2) as server:
        server.wait_ready()
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(lambda item: send(server, item[1], item[0]), enumerate(cases(SEED, BODIES)))
            )
        failures = [r for r in results if r[1] == "dropped" or r[2]]
        statuses = Counter(r[1] for r in results)
        assert not failures, (len(failures), failures[:10], statuses)
        # The fuzz reaches every layer: accepted windows, 4xx of each family, the physical range check.
        assert {200, 400, 413, 415, 422} <= set(statuses), statuses
        assert len({r[0] for r in results}) == 4
        assert server.request("GET", "/healthz").status == 200
        assert server.ready_workers() == 2 and server.process.poll() is None
        print(f"fuzz: {BODIES} bodies, statuses {dict(sorted(statuses.items(), key=str))}")
