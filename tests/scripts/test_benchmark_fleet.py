"""benchmark_fleet's verdicts on the rollout targets from measured wall times."""

from benchmark_fleet import busy_pct, cpu_times, disk_delta, fallback_summary, fallback_total, judge

from simfleet.traffic import Verdict


def test_targets_met_not_met_and_not_measured():
    verdicts = judge({"clean_2_s": 100.0, "clean_4_s": 300.0, "rerun_4_s": 90.0, "clean_8_s": 160.0})
    assert verdicts["clean_4_pis_s"]["status"] == "met"
    assert verdicts["rerun_ratio"]["value"] == 0.3
    assert verdicts["rerun_ratio"]["status"] == "not met"
    assert verdicts["scaling_8_vs_2"]["value"] == 1.6
    assert verdicts["scaling_8_vs_2"]["status"] == "not met"
    assert verdicts["rollback_s"] == {
        "target": "fleet rollback <= 60 s",
        "value": None,
        "limit": 60.0,
        "status": "not measured",
    }


def test_limits_are_inclusive():
    verdicts = judge({"clean_4_s": 360.0, "rerun_4_s": 90.0, "rollback_4_s": 60.0})
    assert verdicts["clean_4_pis_s"]["status"] == "met"
    assert verdicts["rerun_ratio"]["status"] == "met"
    assert verdicts["rollback_s"]["status"] == "met"
    assert verdicts["scaling_8_vs_2"]["status"] == "not measured"


def test_cpu_busy_share_between_readings():
    assert busy_pct((50, 100), (150, 300)) == 50.0
    assert busy_pct((50, 100), (50, 100)) == 0.0  # no time passed: not a division by zero
    busy, total = cpu_times()
    assert 0 < busy < total  # read from this machine's /proc/stat


def test_model_only_update_targets():
    verdicts = judge({"clean_4_s": 300.0, "new_version_4_s": 90.0, "new_version_4_max_disk_added_mb": 16.5})
    assert verdicts["model_update_ratio"]["value"] == 0.3
    assert verdicts["model_update_ratio"]["status"] == "met"
    assert verdicts["model_update_disk_mb"]["status"] == "not met"
    assert judge({})["model_update_disk_mb"]["status"] == "not measured"


def test_disk_delta_counts_only_new_parts_as_copied():
    before = {"pi-1": {".": 1000, "runtimes/r1/wheels": 600, "bundles/b1": 100}}
    after = {"pi-1": {".": 1250, "runtimes/r1/wheels": 600, "bundles/b1": 100, "bundles/b2": 120}}
    assert disk_delta(before, after) == {"pi-1": {"copied_bytes": 120, "disk_added_bytes": 250}}


def test_every_fallback_and_failed_request_counts_against_the_goal_of_zero():
    verdicts = {
        "pi-1": Verdict(
            answers=3000,
            from_model=2998,
            failures=["ConnectionRefusedError"],
            fallbacks={"read_timeout": 2, "connection_refused": 0},
            longest_gap=2,
        ),
        "pi-2": Verdict(answers=3000, from_model=3000, failures=[], fallbacks={"read_timeout": 0}),
    }
    summary = fallback_summary(verdicts)
    assert summary["pi-1"] == {
        "answers": 3000,
        "not_from_the_model": 2,
        "failed_requests": 1,
        "fallbacks": {"read_timeout": 2, "connection_refused": 0},
        "longest_gap": 2,
    }
    assert (
        fallback_total({"rerun_4_s": summary, "rollback_4_s": fallback_summary({"pi-2": verdicts["pi-2"]})})
        == 3
    )
    assert judge({"fallbacks_4": 3})["fallbacks"]["status"] == "not met"
    assert judge({"fallbacks_4": 0})["fallbacks"]["status"] == "met"
    assert judge({})["fallbacks"]["status"] == "not measured"
