"""The per-Pi latency plot: which values are drawn, and that a PNG is written."""

import json

from plot_fleet_latency import latency_series, main

REPORT = {
    "run_id": "20261125T030000Z",
    "hosts": {
        "pi-2": {"latency_ms": 4.0, "benchmark": {"load": {"latency_p50_ms": 3.0, "latency_p95_ms": 6.0}}},
        "pi-1": {"latency_ms": 5.0},
        "pi-3": {"latency_ms": None},
    },
}


def test_series_per_pi_with_gaps_for_unmeasured_and_no_empty_series():
    names, series = latency_series(REPORT)
    assert names == ["pi-1", "pi-2", "pi-3"]
    assert series == {
        "health check": [5.0, 4.0, None],
        "load p50": [None, 3.0, None],
        "load p95": [None, 6.0, None],
    }


def test_writes_a_png(tmp_path):
    source = tmp_path / "fleet_report.json"
    source.write_text(json.dumps(REPORT))
    out = tmp_path / "latency.png"
    assert main([str(source), str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    source = tmp_path / "fleet_report.json"
    source.write_text("{}")
    assert main([str(source), str(tmp_path / "x.png")]) == 1
    assert "is not a readable fleet report" in capsys.readouterr().err
