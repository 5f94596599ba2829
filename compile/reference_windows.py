"""Raw IMU windows ``[N, 100, 9]`` (ax ay az m/s^2, gx gy gz rad/s, mx my mz uT) used to fit the motif
prototypes, calibrate quantization and pick the golden window: the user's file, or a deterministic synthetic
set.

The synthetic generator models a body-worn IMU sampled at 50 Hz (a window is 2 s). Each activity rotates
gravity (9.81 m/s^2) and an Earth field of ~(22, -9, 43) uT into the sensor frame of a randomly tilted device,
then adds its motion and Gaussian sensor noise:

- ``still``: device at rest on a surface, sensor noise only.
- ``stationary``: held in hand, 8-12 Hz physiological tremor of a few hundredths of g and rad/s.
- ``walking``: 1.6-2.2 Hz steps, vertical bounce ~2-4 m/s^2, sway at half the step rate, pitch swing in gyro.
- ``running``: 2.6-3.2 Hz strides, vertical impacts ~8-14 m/s^2 (rectified sine), larger swings.
- ``turning``: walking while yawing at 0.8-1.6 rad/s, so the magnetometer rotates in the horizontal plane.
- ``tilting``: slow 0.2-0.5 Hz roll, gravity moves between axes while gyro shows the roll rate.
- ``shaking``: vigorous 4-6 Hz shaking on all axes.

Same ``seed`` and ``per_activity`` give bit-identical windows (numpy's PCG64), so bundle versions are
reproducible."""

import json
from pathlib import Path

import numpy as np

from bundle_contract.tensors import INPUT_CHANNELS, WINDOW_LENGTH
from compile.errors import CompileError

ACTIVITIES = ("still", "stationary", "walking", "running", "turning", "tilting", "shaking")
SAMPLE_RATE_HZ = 50.0
GRAVITY = 9.81
EARTH_FIELD_UT = np.array([22.0, -9.0, 43.0])
DEFAULT_SEED = 7
DEFAULT_PER_ACTIVITY = 24


def synthetic_windows(
    per_activity: int = DEFAULT_PER_ACTIVITY, seed: int = DEFAULT_SEED
) -> tuple[np.ndarray, list[str]]:
    """``(windows [N,100,9] float32, activity label per window)``, activities in ``ACTIVITIES`` order."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW_LENGTH) / SAMPLE_RATE_HZ
    windows, labels = [], []
    for activity in ACTIVITIES:
        for _ in range(per_activity):
            windows.append(_window(activity, t, rng))
            labels.append(activity)
    return np.stack(windows).astype(np.float32), labels


def synthetic_window(activity: str, seed: int = DEFAULT_SEED) -> np.ndarray:
    """One ``[100, 9]`` window of ``activity`` (used as the bundle's golden window)."""
    if activity not in ACTIVITIES:
        raise CompileError(f"unknown activity {activity!r}; choose from {', '.join(ACTIVITIES)}")
    t = np.arange(WINDOW_LENGTH) / SAMPLE_RATE_HZ
    return _window(activity, t, np.random.default_rng(seed)).astype(np.float32)


def _window(activity: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    roll0, pitch0 = rng.normal(0.0, 0.25, size=2)
    yaw0 = rng.uniform(-np.pi, np.pi)
    phase = rng.uniform(0, 2 * np.pi)
    accel_motion = np.zeros((t.size, 3))
    gyro = np.zeros((t.size, 3))
    roll = np.full(t.size, roll0)
    yaw = np.full(t.size, yaw0)
    noise_scale = 1.0
    if activity == "still":
        noise_scale = 0.5
    elif activity == "stationary":
        f = rng.uniform(8, 12)
        accel_motion = rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * f * t[:, None] + rng.uniform(0, 6, 3))
        gyro = rng.uniform(0.01, 0.05) * np.sin(2 * np.pi * f * t[:, None] + rng.uniform(0, 6, 3))
    elif activity in ("walking", "turning"):
        accel_motion, gyro = _gait(t, rng.uniform(1.6, 2.2), rng.uniform(2.0, 4.0), 0.6, phase)
        if activity == "turning":
            rate = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6)
            yaw = yaw0 + rate * t
            gyro[:, 2] += rate
    elif activity == "running":
        accel_motion, gyro = _gait(t, rng.uniform(2.6, 3.2), rng.uniform(8.0, 14.0), 2.0, phase)
        accel_motion[:, 2] = np.abs(accel_motion[:, 2]) - accel_motion[:, 2].std()
    elif activity == "tilting":
        f = rng.uniform(0.2, 0.5)
        amplitude = rng.uniform(0.5, 1.2)
        roll = roll0 + amplitude * np.sin(2 * np.pi * f * t + phase)
        gyro[:, 0] = amplitude * 2 * np.pi * f * np.cos(2 * np.pi * f * t + phase)
    elif activity == "shaking":
        f = rng.uniform(4, 6)
        accel_motion = rng.uniform(6, 12) * np.sin(2 * np.pi * f * t[:, None] + rng.uniform(0, 6, 3))
        gyro = rng.uniform(2, 4) * np.sin(2 * np.pi * f * t[:, None] + rng.uniform(0, 6, 3))
    world_to_sensor = _rotations(roll, np.full(t.size, pitch0), yaw)
    gravity = np.einsum("tij,j->ti", world_to_sensor, [0.0, 0.0, GRAVITY])
    field = np.einsum("tij,j->ti", world_to_sensor, EARTH_FIELD_UT)
    window = np.concatenate([gravity + accel_motion, gyro, field], axis=1)
    noise = np.array([0.05, 0.05, 0.05, 0.005, 0.005, 0.005, 0.4, 0.4, 0.4]) * noise_scale
    return window + rng.normal(0.0, 1.0, window.shape) * noise


def _gait(
    t: np.ndarray, step_hz: float, bounce: float, swing: float, phase: float
) -> tuple[np.ndarray, np.ndarray]:
    step = 2 * np.pi * step_hz * t + phase
    accel = np.stack(
        [0.3 * bounce * np.sin(step / 2), 0.2 * bounce * np.sin(step + 1.0), bounce * np.sin(step)], 1
    )
    gyro = np.stack(
        [0.3 * swing * np.sin(step / 2 + 0.5), swing * np.sin(step), 0.2 * swing * np.sin(step / 2)], 1
    )
    return accel, gyro


def _rotations(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World-to-sensor rotation per sample (transpose of the Z-Y-X body rotation)."""
    cr, sr, cp, sp, cy, sy = (
        np.cos(roll),
        np.sin(roll),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
    )
    body = np.stack(
        [
            np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
            np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
            np.stack([-sp, cp * sr, cp * cr], -1),
        ],
        -2,
    )
    return np.transpose(body, (0, 2, 1))


def load_windows(path: Path) -> np.ndarray:
    """User windows: ``.npy`` ``[N,100,9]`` (or one ``[100,9]``), or JSON ``{"x": window}``, ``{"windows":
    [...]}`` or a list of windows, raw sensor values in EdgeInfer's channel order."""
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = _json_windows(json.loads(path.read_text()))
        array = np.asarray(data, dtype=np.float32)
    except OSError as exc:
        raise CompileError(f"{path}: cannot read reference windows ({exc.strerror})") from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CompileError(
            f"{path}: reference windows are not a numeric array ({str(exc).splitlines()[0]})"
        ) from None
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (WINDOW_LENGTH, INPUT_CHANNELS):
        raise CompileError(
            f"{path}: reference windows have shape {list(array.shape)}, "
            f"expected [N, {WINDOW_LENGTH}, {INPUT_CHANNELS}]"
        )
    if not np.isfinite(array).all():
        raise CompileError(f"{path}: reference windows contain NaN or infinite values")
    return array


def _json_windows(document: object) -> object:
    if isinstance(document, dict):
        for key in ("windows", "x"):
            if key in document:
                return document[key]
        raise ValueError('JSON object needs a "windows" or "x" key')
    return document
