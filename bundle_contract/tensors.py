"""The served model's tensors and the input the .hef takes."""

INPUT_NAME = "imu_window"
LATENT_NAME = "latent_embeddings"
MOTIF_NAME = "motif_scores"
WINDOW_LENGTH = 100
INPUT_CHANNELS = 9
WINDOW_SHAPE = (WINDOW_LENGTH, INPUT_CHANNELS)
LATENT_SIZE = 64
MOTIF_COUNT = 12
CHANNEL_ORDER = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")

# The one ``model.hef_input.values`` the app serves: the chip's 8-bit per-tensor input step only fits every
# channel when the host z-scores first (compile/hailo_compile.py says why).
HEF_INPUT_Z_SCORED = "z_scored"
HEF_INPUT = {
    "layout": f"NHWC (1, {WINDOW_LENGTH}, {INPUT_CHANNELS})",
    "dtype": "float32",
    "values": HEF_INPUT_Z_SCORED,
    "z_score": "per channel (x - normalization.mean) / normalization.std, on the host",
}


def float32_values(values: object, count: int) -> tuple[float, ...] | None:
    """``values`` as floats when it is a list of ``count`` JSON numbers a float32 holds (no bool, NaN or
    infinity), else None: per-channel figures the model computes with in float32."""
    if not isinstance(values, list) or len(values) != count:
        return None
    if not all(type(v) in (int, float) and abs(v) < 3.4e38 for v in values):
        return None
    return tuple(float(v) for v in values)
