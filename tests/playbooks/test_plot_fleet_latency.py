"""The per-Pi latency plot: which values are drawn, and that a PNG is written."""

import json

from plot_fleet_latency import figure, latency_series, main

from fleetops.edgeinfer import READ_TIMEOUT_MS

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


def test_few_ms_bars_and_edgeinfers_budget_are_both_readable():
    fig = figure({**REPORT, "latency_calls": 5})
    ax = fig.axes[0]
    # Log axis: a 3 ms bar is a large share of the plot's height, not a sliver under the budget line.
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert low < 3.0 and high > READ_TIMEOUT_MS
    assert f"{READ_TIMEOUT_MS:g}" in [label.get_text() for label in ax.get_yticklabels()]
    assert {"5.0", "4.0", "3.0", "6.0", "n/a"} <= {text.get_text() for text in ax.texts}
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "health check (median of 5 calls)" in legend
    assert f"EdgeInfer budget {READ_TIMEOUT_MS:g} ms" in legend


def test_the_axis_grows_for_a_pi_slower_than_the_budget():
    slow = {"hosts": {"pi-1": {"latency_ms": 120.0}}}
    assert figure(slow).axes[0].get_ylim()[1] > 120.0
