"""The simulated 3-Pi fleet for the end-to-end tests, and the playbook driver (ansible-runner) they use.

The tests bring up their own fleet (prefix hp-e2e unless HP_E2E_PREFIX says otherwise, its own subnet and
inventory) so the demo fleet (`python -m simfleet up`) and other suites' fleets stay untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleet_state import E2E_PREFIX, E2E_SUBNET, Fleet, fleet_spec

from fleetops.runner import yield_cpu_to_simulated_pis
from simfleet import engine, images
from simfleet import fleet as simfleet

# The rollout story starts from clean Pis (its first test deploys the old layout): it runs before other files.
STORY = "test_fleet_rollout.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name != STORY)  # stable: each file keeps its own order


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three clean Pis (removed and recreated), so the first deploy starts from scratch."""
    yield_cpu_to_simulated_pis()
    client = engine.ensure_engine()
    images.build_images(client)
    spec = fleet_spec(tmp_path_factory.mktemp("e2e-inventory"), prefix=E2E_PREFIX, subnet=E2E_SUBNET)
    simfleet.down(client, spec)
    simfleet.up(client, 3, spec)
    yield Fleet(client, spec, 3)
    simfleet.down(client, spec)
