"""validate_deployment's per-host rows and table, from an ansible-runner event stream and stats."""

from validate_deployment import format_table, validation_rows

from fleetops.runner import PlaybookRun


def _fact_event(host, report):
    return {
        "event": "runner_on_ok",
        "event_data": {"host": host, "res": {"ansible_facts": {"health_report": report}}},
    }


HEALTHY = {
    "healthy": True,
    "checks": {"app_healthz": True, "golden_app": True, "golden_edgeinfer": True},
    "details": {},
    "backend": "onnxruntime",
    "model_version": "tcn-0123456789ab",
    "latency_ms": {"p50": 2.5, "max": 4.0},
}
STUB = {
    **HEALTHY,
    "healthy": False,
    "checks": {"app_healthz": True, "golden_app": True, "golden_edgeinfer": False},
    "details": {"golden_edgeinfer": "EdgeInfer's latent differs from the app's: stub output"},
}


def _run(events, stats):
    return PlaybookRun(
        playbook="playbooks/validate.yml", rc=2, status="failed", wall_s=1.0, stats=stats, events=events
    )


def test_rows_combine_facts_and_unreachable_hosts():
    run = _run(
        [_fact_event("pi-1", {"healthy": False}), _fact_event("pi-1", HEALTHY), _fact_event("pi-2", STUB)],
        {"processed": {"pi-1": 1, "pi-2": 1, "pi-3": 1}, "dark": {"pi-3": 1}, "failures": {"pi-2": 1}},
    )
    rows = {row["pi"]: row for row in validation_rows(run)}
    assert rows["pi-1"]["ok"] is True  # the last value of the fact wins
    assert rows["pi-1"]["p50_ms"] == 2.5
    assert rows["pi-2"]["ok"] is False
    assert rows["pi-2"]["problems"] == [
        "golden_edgeinfer: EdgeInfer's latent differs from the app's: stub output"
    ]
    assert rows["pi-3"]["ok"] is False
    assert rows["pi-3"]["reachable"] is False
    assert rows["pi-3"]["problems"] == ["unreachable over SSH"]


def test_a_host_without_a_report_fails_with_the_failed_tasks_message():
    failed = {
        "event": "runner_on_failed",
        "event_data": {
            "host": "pi-1",
            "res": {"msg": "No deployed bundle on pi-1\n(model_metadata.json is missing)"},
        },
    }
    ignored = {
        "event": "runner_on_failed",
        "event_data": {"host": "pi-2", "ignore_errors": True, "res": {"msg": "probe failed"}},
    }
    rows = validation_rows(
        _run([failed, ignored], {"processed": {"pi-1": 1, "pi-2": 1}, "failures": {"pi-1": 1}})
    )
    assert rows[0]["ok"] is False
    assert rows[0]["problems"] == [
        "no health report: No deployed bundle on pi-1 (model_metadata.json is missing)"
    ]
    assert rows[1]["problems"] == ["no health report: the checks did not run to the end"]


def test_table_marks_pass_fail_and_lists_problems():
    rows = validation_rows(_run([_fact_event("pi-1", HEALTHY), _fact_event("pi-2", STUB)], {}))
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == [
        "pi",
        "ok",
        "reachable",
        "app_healthz",
        "golden_app",
        "golden_edgeinfer",
        "backend",
        "model",
        "p50_ms",
    ]
    assert lines[1].split()[:6] == ["pi-1", "PASS", "PASS", "PASS", "PASS", "PASS"]
    assert lines[2].split()[:6] == ["pi-2", "FAIL", "PASS", "PASS", "PASS", "FAIL"]
    assert lines[-1] == "  pi-2: golden_edgeinfer: EdgeInfer's latent differs from the app's: stub output"
