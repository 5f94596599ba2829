"""The benchmark role's filter plugin is a plain module: make it importable for its unit tests."""

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[4] / "roles" / "benchmark" / "filter_plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
