"""Hailo chips a bundle can target (Hailo-8 and Hailo-8L share DFC 3.33 / HailoRT 4.23).

A bundle carries one .hef per family in its list, so its version never depends on which Pis a run targets:
the AI Kit and the 13 TOPS AI HAT+ carry a Hailo-8L, the 26 TOPS AI HAT+ a Hailo-8."""

HW_ARCHS = ("hailo8", "hailo8l")
DEFAULT_CHIP_FAMILIES = HW_ARCHS
