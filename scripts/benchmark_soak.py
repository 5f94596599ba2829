"""Bounded soak of the inference app: N clients for a while, good and bad bodies mixed, then what it cost.

Starts the real server (`python -m app` -> gunicorn, loopback only) on a bundle, has --clients keep-alive
clients send raw windows (the bundle's calibration windows) with one bad body in --bad-every (wrong rows, NaN,
1e30 outside the physical ranges, broken JSON, wrong Content-Type), and stops at --seconds or --requests,
whichever comes first. Prints errors (a good body not answered 200, a bad one not answered 4xx, any 5xx or
dropped connection), answers per second, and each worker's RSS at the start and end (from the app's /metrics)
with its growth. Exit status 1 when there was any error.

  .venv/bin/python scripts/benchmark_soak.py [--bundle DIR] [--seconds 180] [--requests 0] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from app_process import AppProcess, post_infer

from bundle_contract.files import CALIBRATION_FILE

REPO = Path(__file__).resolve().parents[1]
JSON_TWICE = [("Content-Type", "application/json")] * 2  # as EdgeInfer sends it
RSS_METRIC = "hailo_pipeline_worker_resident_memory_bytes"


def bad_bodies() -> list[tuple[bytes, list[tuple[str, str]]]]:
    window = [[0.1 * c for c in range(9)] for _ in range(100)]
    huge = [row[:] for row in window]
    huge[50][6] = 1e30
    return [
        (json.dumps({"x": window[:99]}).encode(), JSON_TWICE),
        (json.dumps({"x": window}).replace("0.2", "NaN", 1).encode(), JSON_TWICE),
        (json.dumps({"x": huge}).encode(), JSON_TWICE),
        (b'{"x": [[1, 2,', JSON_TWICE),
        (json.dumps({"x": window}).encode(), [("Content-Type", "text/plain")]),
    ]


def build_default_bundle() -> Path:
    out = REPO / "build" / "bundles"
    result = subprocess.run(
        [sys.executable, "-m", "compile", "build", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(result.stdout.strip().splitlines()[-1])


def worker_rss(server: AppProcess) -> dict[str, float]:
    """RSS in bytes of each live worker, by pid, from the app's /metrics."""
    return {s.labels["pid"]: s.value for s in server.samples() if s.name == RSS_METRIC}


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers = 0
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []

    def add(self, status: int, error: str) -> None:
        with self.lock:
            self.answers += 1
            self.statuses[status] += 1
            if error and len(self.errors) < 1000:
                self.errors.append(error)


def client(
    port: int, good: list[bytes], bad_every: int, stop_at: float, budget: list[int], tally: Tally
) -> None:
    bad = bad_bodies()
    conn: http.client.HTTPConnection | None = None
    sent = 0
    while time.monotonic() < stop_at:
        with tally.lock:
            if budget[0] == 0:
                return
            budget[0] -= 1
        is_bad = bad_every > 0 and sent % bad_every == bad_every - 1
        body, headers = (
            bad[(sent // bad_every) % len(bad)] if is_bad else (good[sent % len(good)], JSON_TWICE)
        )
        sent += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            response, _ = post_infer(conn, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            tally.add(0, f"dropped connection: {type(exc).__name__}: {exc}")
            conn = None
            continue
        status = response.status
        expected = 400 <= status < 500 if is_bad else status == 200
        tally.add(status, "" if expected else f"{'bad' if is_bad else 'good'} body answered {status}")
        if response.will_close:
            conn.close()
            conn = None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, help="bundle folder (default: build the default bundle)")
    p.add_argument("--seconds", type=float, default=180.0, help="duration limit (default 180)")
    p.add_argument("--requests", type=int, default=0, help="request limit, 0 = none (default)")
    p.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients (default 4)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument("--bad-every", type=int, default=10, help="one bad body in N, 0 = none (default 10)")
    args = p.parse_args(argv)

    bundle = args.bundle or build_default_bundle()
    windows = np.load(bundle / CALIBRATION_FILE)[:64]
    good = [json.dumps({"x": w.astype(float).round(4).tolist()}).encode() for w in windows]
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        server = AppProcess(bundle, Path(workdir), args.workers)
        try:
            server.wait_ready(args.workers)
            rss_start = worker_rss(server)
            tally = Tally()
            budget = [args.requests if args.requests > 0 else -1]
            started = time.monotonic()
            threads = [
                threading.Thread(
                    target=client,
                    args=(server.port, good, args.bad_every, started + args.seconds, budget, tally),
                )
                for _ in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            rss_end = worker_rss(server)
            alive = server.alive()
        finally:
            server.stop()

    print(
        f"soak: {tally.answers} requests in {elapsed:.1f} s, {args.clients} clients, {args.workers} workers"
    )
    print(f"answers/s: {tally.answers / elapsed:.1f}   statuses: {dict(sorted(tally.statuses.items()))}")
    print(f"errors: {len(tally.errors)}" + "".join(f"\n  {e}" for e in Counter(tally.errors).most_common(10)))
    for worker in sorted(set(rss_start) | set(rss_end)):
        start, end = rss_start.get(worker), rss_end.get(worker)
        if start is None or end is None:
            print(f"worker {worker}: RSS {start or '-'} -> {end or '-'} (replaced during the soak)")
        else:
            growth = (end - start) / 1e6
            print(f"worker {worker}: RSS {start / 1e6:.1f} MB -> {end / 1e6:.1f} MB ({growth:+.1f} MB)")
    if not alive:
        print("server died during the soak")
    return 1 if tally.errors or not alive or set(rss_start) != set(rss_end) else 0


if __name__ == "__main__":
    sys.exit(main())
