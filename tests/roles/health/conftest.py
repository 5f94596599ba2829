"""The health role's filter plugins are plain modules: make them importable for their unit tests."""

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "roles" / "health" / "filter_plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
