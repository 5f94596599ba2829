"""The benchmark role's filter: its figures, each judged against the seed target it measures."""

from seed_targets import SEED_TARGETS, benchmark_measurements, seed_target_status

from fleetops.edgeinfer import READ_TIMEOUT_MS

LOAD = {
    "latency_p95_ms": 8.0,
    "latency_p99_ms": 12.0,
    "success_pct": 100.0,
    "rate_per_s": 400.0,
    "after": {"rss_mb": 300.0, "soc_temp_c": None},
}


def test_seed_targets_met_not_met_and_not_measurable_with_reason():
    status = seed_target_status(
        {
            "latency_p95_ms": 12.0,
            "latency_p99_ms": READ_TIMEOUT_MS + 1,
            "rss_mb": 512.0,
            "success_pct": 99.0,
            "hailo_utilization_pct": {"reason": "no Hailo accelerator on this host"},
        }
    )
    assert status["latency_p95_ms"]["status"] == "met"
    assert status["latency_p99_ms"]["status"] == "not_met"
    assert status["rss_mb"]["status"] == "not_met"  # the limit is strict: < 512 MB
    assert status["success_pct"]["status"] == "met"  # 99%+ includes 99
    assert status["hailo_utilization_pct"] == {
        "title": "Hailo utilization > 80% under load",
        "limit": 80.0,
        "op": ">",
        "status": "not_measurable",
        "value": None,
        "reason": "no Hailo accelerator on this host",
    }
    assert status["soc_temp_c"]["status"] == "not_measurable"
    assert status["soc_temp_c"]["reason"]


def test_a_boolean_is_not_a_measurement():
    assert seed_target_status({"success_pct": True})["success_pct"]["status"] == "not_measurable"


def test_the_p99_target_is_edgeinfers_read_timeout():
    p99 = next(target for target in SEED_TARGETS if target["key"] == "latency_p99_ms")
    assert p99["limit"] == READ_TIMEOUT_MS
    assert f"{READ_TIMEOUT_MS:g} ms" in p99["title"]


def test_measurements_without_accelerator_say_why_chip_figures_are_missing():
    measured = benchmark_measurements(LOAD, None, None, accelerator_present=False)
    assert set(measured) == {target["key"] for target in SEED_TARGETS}
    assert (measured["latency_p95_ms"]["value"], measured["latency_p95_ms"]["status"]) == (8.0, "met")
    assert measured["rss_mb"]["value"] == 300.0
    assert measured["soc_temp_c"]["reason"] == "no thermal zone under /sys/class/thermal on this host"
    assert measured["hailo_utilization_pct"]["reason"] == "no Hailo accelerator on this host"
    assert measured["power_added_w"]["status"] == "not_measurable"
    assert measured["success_pct"]["status"] == "met"


def test_measurements_with_accelerator_derive_utilization_and_read_power():
    measured = benchmark_measurements(
        LOAD, {"power_avg_w": 1.3}, {"fps_hw_only": 2000.0}, accelerator_present=True
    )
    assert measured["hailo_utilization_pct"]["value"] == 20.0
    assert measured["hailo_utilization_pct"]["status"] == "not_met"
    assert (measured["power_added_w"]["value"], measured["power_added_w"]["status"]) == (1.3, "met")


def test_failed_hailortcli_and_missing_load_run_are_not_measurable_with_reasons():
    measured = benchmark_measurements(None, None, None, accelerator_present=True, hailortcli_error="busy")
    assert measured["power_added_w"]["reason"] == "hailortcli failed: busy"
    assert measured["latency_p95_ms"]["reason"] == "the on-Pi load run did not complete"
    assert all(entry["status"] == "not_measurable" for entry in measured.values())
