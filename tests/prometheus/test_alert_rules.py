"""The fleet's alert rules under `promtool` (Debian's prometheus package, installed by .ci/run): the rule
file is valid and every alert fires for the Pi it should and for no other (prometheus/tests/)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "prometheus"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install prometheus")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def test_rule_file_is_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = (PROMETHEUS / "alerts.yml").read_text()
    tests = (PROMETHEUS / "tests" / "alerts_test.yml").read_text()
    alerts = [
        line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")
    ]
    assert len(alerts) == 9
    for alert in alerts:
        assert f"alertname: {alert}\n" in tests, f"{alert} has no promtool test"


def test_endpoint_labels_are_routes_the_app_labels_its_metrics_with(default_bundle: Path) -> None:
    """The app labels request metrics with the Flask rule (`/infer`): a rule or test on any other value would
    select nothing and never fire, while its promtool test still passed on made-up series."""
    from app.config import AppConfig
    from app.factory import create_app

    routes = {
        rule.rule
        for rule in create_app(AppConfig(bundle_dir=default_bundle), start_loading=False).url_map.iter_rules()
    }
    for name in ("alerts.yml", "tests/alerts_test.yml"):
        labels = set(re.findall(r'endpoint="([^"]*)"', (PROMETHEUS / name).read_text()))
        assert labels, f"{name} names no endpoint"
        assert labels <= routes, f"{name}: endpoint labels {sorted(labels - routes)} are not app routes"
