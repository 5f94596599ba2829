"""What the roles promise against what the app and the README say: argument specs accept exactly the values
the app accepts, and every role has the README the top-level README points to."""

from pathlib import Path

import pytest
import yaml

from app.config import LOG_LEVELS, AppConfig, ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _inference_app_option(name: str) -> dict:
    specs = yaml.safe_load((ROOT / "roles/inference_app/meta/argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"][name]


def test_log_level_choices_are_exactly_what_the_app_accepts() -> None:
    option = _inference_app_option("inference_app_log_level")
    choices = option["choices"]
    for choice in choices:
        # The unit passes the value through unchanged (HAILO_PIPELINE_LOG_LEVEL=...).
        AppConfig.from_env({"HAILO_PIPELINE_BUNDLE": "/b", "HAILO_PIPELINE_LOG_LEVEL": choice})
    # Every level the app knows is offered in both spellings operators write; nothing else is.
    assert set(choices) == {level.lower() for level in LOG_LEVELS} | set(LOG_LEVELS)
    assert option["default"] in choices


@pytest.mark.parametrize("level", ["critical", "CRITICAL", "trace"])
def test_levels_the_app_refuses_are_refused_by_the_spec(level: str) -> None:
    with pytest.raises(ConfigError):
        AppConfig.from_env({"HAILO_PIPELINE_BUNDLE": "/b", "HAILO_PIPELINE_LOG_LEVEL": level})
    assert level not in _inference_app_option("inference_app_log_level")["choices"]


@pytest.mark.parametrize("role", sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir()))
def test_every_role_has_a_readme_naming_it(role: str) -> None:
    readme = ROOT / "roles" / role / "README.md"
    assert readme.is_file(), f"roles/{role} has no README.md"
    assert readme.read_text().startswith(f"# {role}\n")
