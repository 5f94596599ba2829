"""Where simfleet keeps its state, caches and generated files."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout simfleet runs from (where .simfleet/ and inventory/local/ live)."""
    env = os.environ.get("HAILO_PIPELINE_ROOT")
    if env:
        return Path(env).resolve()
    # Editable install / source checkout: the package sits at the top of the repo.
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return PACKAGE_DIR.parent
    return Path.cwd()


def state_dir() -> Path:
    """Per-checkout secrets for the throwaway fleet (the test SSH key)."""
    return project_root() / ".simfleet"


def inventory_file() -> Path:
    return project_root() / "inventory" / "local" / "hosts.yml"


# Machine-wide because the rootfs and images are shared by every checkout and helper on this host.
CACHE_DIR = Path(os.environ.get("SIMFLEET_CACHE_DIR", "/var/cache/hailo_pipeline"))
DOCKERD_LOG = CACHE_DIR / "dockerd.log"
