"""Hailo chip families a bundle carries a .hef for, and which family a Pi's chip is.

Hailo-8 and Hailo-8L share DFC 3.33 / HailoRT 4.23. A bundle carries one .hef per family in its list, so its
version never depends on which Pis a run targets: the AI Kit and the 13 TOPS AI HAT+ carry a Hailo-8L, the
26 TOPS AI HAT+ a Hailo-8.
"""

# The DFC's hw_arch names compile can build a .hef for (ClientRunner(hw_arch=...)).
HW_ARCHS = ("hailo8", "hailo8l")
# What a build makes when not told (group_vars' model_chip_families is the fleet's choice).
DEFAULT_CHIP_FAMILIES = HW_ARCHS
# A chip's "Device Architecture" (`hailortcli fw-control identify`, or the VDevice's) -> its family.
ARCHITECTURE_FAMILIES = {"HAILO8": "hailo8", "HAILO8_B0": "hailo8", "HAILO8R": "hailo8", "HAILO8L": "hailo8l"}


def chip_family(architecture: str | None) -> str | None:
    """``HAILO8L`` -> ``hailo8l``: the family whose .hef this chip loads; None for an unknown chip."""
    return ARCHITECTURE_FAMILIES.get(str(architecture or "").upper())
