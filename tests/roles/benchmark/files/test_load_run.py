"""The on-Pi load run's statistics and its bounded request loop, against a local HTTP server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from load_run import load_windows, percentile, run_load, summarize

from bundle_contract.files import METADATA_FILE
from bundle_contract.tensors import WINDOW_SHAPE


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_summary_counts_failures_in_success_ratio_not_in_latency():
    summary = summarize([10.0, 20.0, 30.0], failures=1, wall_s=2.0)
    assert summary["success_pct"] == 75.0
    assert summary["rate_per_s"] == 2.0
    assert summary["latency_p50_ms"] == 20.0
    assert summary["latency_max_ms"] == 30.0


@pytest.fixture
def app_url():
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls["n"] += 1
            # Every third answer has the wrong shape, as a broken backend would.
            latent = [0.0] * (63 if calls["n"] % 3 == 0 else 64)
            payload = json.dumps(
                {"latent": latent, "motif_scores": [0.0] * 12, "rows": len(body["x"])}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/infer", calls
    server.shutdown()


def test_run_load_sends_exactly_count_and_counts_bad_answers(app_url):
    url, calls = app_url
    window = [[0.0] * 9 for _ in range(100)]
    result = run_load(url, [window], count=30, concurrency=3, max_s=30.0)
    assert calls["n"] == 30
    assert result["requests"] == 30
    assert result["failed"] == 10
    assert result["errors"] == {"bad answer shape": 10}
    assert result["success_pct"] == pytest.approx(200 / 3)


def test_run_load_counts_refused_connections_as_failures():
    window = [[0.0] * 9 for _ in range(100)]
    result = run_load("http://127.0.0.1:9/infer", [window], count=3, concurrency=1, max_s=10.0)
    assert result["failed"] == 3
    assert result["succeeded"] == 0
    assert result["latency_p50_ms"] is None


def test_windows_come_from_the_bundles_calibration_set(default_bundle):
    windows = load_windows(default_bundle, limit=3)
    assert len(windows) == 3
    assert all((len(window), len(window[0])) == WINDOW_SHAPE for window in windows)


def test_without_a_readable_calibration_set_the_golden_window_is_sent(tmp_path):
    window = [[0.5] * WINDOW_SHAPE[1]] * WINDOW_SHAPE[0]
    (tmp_path / METADATA_FILE).write_text(json.dumps({"golden": {"window": window}}))
    assert load_windows(tmp_path, limit=3) == [window]
