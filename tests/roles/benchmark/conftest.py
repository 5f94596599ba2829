"""The benchmark role's on-Pi tool is a plain script: make it importable for its unit tests."""

import sys
from pathlib import Path

FILES = Path(__file__).resolve().parents[3] / "roles" / "benchmark" / "files"
if str(FILES) not in sys.path:
    sys.path.insert(0, str(FILES))
