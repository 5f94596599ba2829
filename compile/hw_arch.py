"""Hailo chips a bundle can target (Hailo-8 and Hailo-8L share DFC 3.33 / HailoRT 4.23)."""

HW_ARCHS = ("hailo8", "hailo8l")
