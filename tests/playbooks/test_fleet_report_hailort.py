"""The fleet report shows each Pi's HailoRT driver, firmware and library versions and flags a mismatch."""

from fleet_report import fleet_report, fleet_report_markdown
from hailort_versions import hailort_versions


def test_a_driver_of_another_version_is_a_problem_in_the_report() -> None:
    hostvars = {
        "pi-a": {"hailort_versions": hailort_versions("4.20.0", "4.23.0 (release,app)", "4.23.0-1")},
        "pi-b": {"hailort_versions": hailort_versions("4.23.0", "4.23.0 (release,app)", "4.23.0-1")},
    }
    report = fleet_report(hostvars, ["pi-a", "pi-b"])
    assert report["hosts"]["pi-b"]["hailort_versions"] == {
        "driver": "4.23.0",
        "firmware": "4.23.0",
        "library": "4.23.0",
        "mismatch": False,
    }
    text = fleet_report_markdown(report)
    assert "- pi-a: HailoRT versions differ: driver 4.20.0, firmware 4.23.0, library 4.23.0" in text
    assert "pi-b: HailoRT" not in text
