"""The control host's Python side of running a fleet: this repository's playbooks through ansible-runner
(`fleetops.runner`), the values group_vars/pis sets for every Pi (`fleetops.pi_vars`) and what EdgeInfer
holds the fleet to (`fleetops.edgeinfer`).

Shared by the scripts, the simulated fleet (simfleet/), the fleet report's filters and the fleet tests.
Not in the Pis' app wheel: release/build_release.py builds that from app/, bundle_contract/ and compile/ only.
"""

from pathlib import Path

# The checkout whose playbooks and group_vars these modules use.
REPO = Path(__file__).resolve().parent.parent
