"""The values every role shares on a Pi (the app's root and port, EdgeInfer's URL...), read where they are
written once: group_vars/pis/main.yml. Each value is as written there: a templated one stays a template."""

from __future__ import annotations

from typing import Any

import yaml

from fleetops import REPO

PI_VARS: dict[str, Any] = yaml.safe_load((REPO / "group_vars" / "pis" / "main.yml").read_text())
