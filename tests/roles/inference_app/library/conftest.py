"""The role's modules are plain files Ansible ships to the Pi: make them importable for their unit tests."""

import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[4] / "roles" / "inference_app" / "library"
if str(LIBRARY) not in sys.path:
    sys.path.insert(0, str(LIBRARY))
