"""HailoRT on the Hailo-8 through the InferModel API (hailo_platform, from Pi OS's python3-hailort).

The HEF is compiled for z-scored input (``model.hef_input`` in the bundle metadata): the backend z-scores each
raw window on the host with the bundle's ``normalization``, so the chip's 8-bit per-tensor input step covers
every channel evenly instead of being set by the magnetometer's range."""

from __future__ import annotations

import logging
import os
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from app.backends.base import Backend, BackendError, ChipStatus, Inference, checked_inference
from app.log_once import log_once
from bundle_contract.chips import chip_family
from bundle_contract.metadata import Metadata
from bundle_contract.normalization import METHOD, NormalizationError, normalization_from
from bundle_contract.tensors import (
    HEF_INPUT_Z_SCORED,
    INPUT_CHANNELS,
    LATENT_NAME,
    LATENT_SIZE,
    MOTIF_COUNT,
    MOTIF_NAME,
    WINDOW_SHAPE,
)

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "hailo_platform (HailoRT's Python API) is not importable: on Raspberry Pi OS install it with "
    "`sudo apt install hailo-all` (brings python3-hailort) and create the app's venv with "
    "`python3 -m venv --system-site-packages` so the venv sees the system package"
)
# hailort v4.23.0 hailort/rpc/rpc_definitions.hpp: the client dials HAILORT_SERVICE_ADDRESS if set, else this.
SERVICE_DEFAULT_ADDRESS = "unix:///tmp/hailort_uds.sock"
SERVICE_ADDRESS_ENV = "HAILORT_SERVICE_ADDRESS"
# The chip's "Device Architecture" as `hailortcli fw-control identify` prints it (the role passes it in), for
# when the VDevice cannot identify the chip itself.
ARCHITECTURE_ENV = "HAILO_PIPELINE_HAILO_ARCHITECTURE"


def import_hailo_platform() -> ModuleType:
    try:
        import hailo_platform
    except ImportError as exc:
        raise BackendError("hailort_missing", f"{INSTALL_HINT} ({exc})") from exc
    return hailo_platform


# Bindings sets per worker: one for the normal path, one spare while a timed-out run still owns the first.
# More would only queue more work on a chip that is already not keeping up.
MAX_BINDINGS = 2


@dataclass
class _Slot:
    """One set of bindings with its own buffers, and the job that owns them while it is in flight."""

    bindings: Any
    input: np.ndarray
    job: Any = None


class HailoRTBackend(Backend):
    """One VDevice per gunicorn worker, opened in that worker; one configured model reused for every request
    under a lock (one set of bindings must not be shared by concurrent threads).

    In hailort v4.23.0 pyhailort.py ``ConfiguredInferModel.run`` is ``run_async`` + ``job.wait(timeout)``:
    after HailoRTTimeout the job is still queued and owns its bindings' buffers. So the backend calls
    ``run_async`` itself, keeps the job of a timed-out run with its bindings, and never touches those buffers
    until ``job.wait(0)`` says the job ended; meanwhile a second set of bindings serves."""

    name = "hailort"

    def __init__(
        self,
        hefs: dict[str, Path],
        z_score: tuple[np.ndarray, np.ndarray],
        timeout_ms: int,
        multi_process: bool = False,
        group_id: str = "SHARED",
    ) -> None:
        """``hefs``: chip family -> .hef path (the bundle's model.hefs); the one for the chip is loaded.
        ``z_score``: per-channel (mean, std), float32 [9], from ``hef_z_score(metadata)``."""
        self.hefs = hefs
        self.hef_path = next(iter(hefs.values())) if len(hefs) == 1 else Path("(not chosen yet)")
        self._mean, self._std = z_score
        self.timeout_ms = timeout_ms
        self.multi_process = multi_process
        self.group_id = group_id
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._hp: ModuleType | None = None
        self._vdevice: Any = None
        self._infer_model: Any = None
        self._configured: Any = None
        self._slots: list[_Slot] = []
        self._input_shape: tuple[int, ...] = ()
        self._output_shapes: dict[str, tuple[int, ...]] = {}
        self._latent_name = ""
        self._motif_name = ""
        self._devices: list[Any] = []
        self._identities: dict[str, dict[str, str]] = {}

    def load(self) -> None:
        hp = import_hailo_platform()
        params = hp.VDevice.create_params()
        # Python's default scheduler is NONE; ROUND_ROBIN lets the model share the chip across processes, and
        # the multi-process service refuses NONE (vdevice.cpp v4.23.0, VDevice::create).
        params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN
        if self.multi_process:
            params.multi_process_service = True
            params.group_id = self.group_id
        try:
            self._vdevice = hp.VDevice(params)
            self.hef_path = self._hef_for_chip(hp)
            self._configure(hp)
        except (hp.HailoRTException, BackendError) as exc:
            # The traceback keeps _configure's frame, and with it any InferModel it made, alive: clear it so
            # releasing below really frees the chip for the next worker or release.
            traceback.clear_frames(exc.__traceback__)
            self._release(hp)
            if isinstance(exc, BackendError):
                raise
            raise BackendError(
                "device_error", f"HailoRT could not load {self.hef_path.name}: {service_hint(exc, params)}"
            ) from exc
        self._hp = hp
        self._pid = os.getpid()
        self._open_device_control()

    def _hef_for_chip(self, hp: ModuleType) -> Path:
        """The .hef compiled for this chip's family: a Hailo-8 and a Hailo-8L need their own."""
        architecture = os.environ.get(ARCHITECTURE_ENV, "").strip()
        if not architecture:
            try:
                devices = list(self._vdevice.get_physical_devices())
                found = {str(d.control.identify().device_architecture) for d in devices}
                for device in devices:
                    device.release()
            except hp.HailoRTException as exc:
                if len(self.hefs) == 1:
                    return self.hef_path
                raise BackendError(
                    "chip_unidentified",
                    f"cannot identify the Hailo chip to choose among {_listed(self.hefs)} ({exc}); "
                    f"set {ARCHITECTURE_ENV} (e.g. HAILO8L)",
                ) from exc
            if len(found) != 1:
                raise BackendError(
                    "chip_unidentified", f"the VDevice reports chips {sorted(found)}, expected one"
                )
            architecture = found.pop()
        family = chip_family(architecture)
        if family not in self.hefs:
            raise BackendError(
                "no_hef_for_chip",
                f"the chip is a {architecture} ({family or 'unknown family'}) and the bundle carries "
                f"{_listed(self.hefs)}: rebuild it with --hw-arch {family or '<family>'}",
            )
        return self.hefs[family]

    def _configure(self, hp: ModuleType) -> None:
        self._infer_model = self._vdevice.create_infer_model(str(self.hef_path))
        self._infer_model.set_batch_size(1)
        self._infer_model.input().set_format_type(hp.FormatType.FLOAT32)
        for output in self._infer_model.outputs:
            self._infer_model.output(output.name).set_format_type(hp.FormatType.FLOAT32)
        self._latent_name, self._motif_name = output_roles(
            {o.name: tuple(o.shape) for o in self._infer_model.outputs}, self.hef_path.name
        )
        self._input_shape = tuple(self._infer_model.input().shape)
        rows, channels = WINDOW_SHAPE
        if int(np.prod(self._input_shape)) != rows * channels or self._input_shape[-1] != self._mean.size:
            raise BackendError(
                "bad_model",
                f"{self.hef_path.name} input shape {self._input_shape} is not NHWC {rows}x{channels}",
            )
        self._output_shapes = {
            name: tuple(self._infer_model.output(name).shape)
            for name in (self._latent_name, self._motif_name)
        }
        self._configured = self._infer_model.configure()
        self._slots = [self._new_slot()]

    def _new_slot(self) -> _Slot:
        bindings = self._configured.create_bindings()
        slot = _Slot(bindings, np.empty(self._input_shape, dtype=np.float32))
        bindings.input().set_buffer(slot.input)
        for name, shape in self._output_shapes.items():
            bindings.output(name).set_buffer(np.empty(shape, dtype=np.float32))
        return slot

    def infer(self, window: np.ndarray) -> Inference:
        if self._hp is None:
            raise BackendError("not_loaded", "HailoRT model is not loaded")
        if os.getpid() != self._pid:
            # A VDevice belongs to the process that created it; a forked copy would talk to a dead handle.
            raise BackendError("wrong_process", "HailoRT VDevice used from a process that did not create it")
        hp = self._hp
        with self._lock:
            slot = self._free_slot(hp)
            np.subtract(window.reshape(self._input_shape), self._mean, out=slot.input)
            np.divide(slot.input, self._std, out=slot.input)
            try:
                job = self._configured.run_async([slot.bindings])
            except hp.HailoRTException as exc:
                raise BackendError("device_error", f"HailoRT could not start the run: {exc}") from exc
            try:
                job.wait(self.timeout_ms)
            except hp.HailoRTTimeout as exc:
                slot.job = job  # still in flight: its buffers stay untouched until it ends
                raise BackendError(
                    "timeout",
                    f"HailoRT run did not finish within the {self.timeout_ms} ms timeout "
                    "(HAILO_PIPELINE_INFER_TIMEOUT_MS); the chip keeps that run's buffers until it ends",
                ) from exc
            except hp.HailoRTException as exc:
                raise BackendError("device_error", f"HailoRT run failed: {exc}") from exc
            latent = slot.bindings.output(self._latent_name).get_buffer().copy()
            motifs = slot.bindings.output(self._motif_name).get_buffer().copy()
        return checked_inference(latent, motifs)

    def _free_slot(self, hp: ModuleType) -> _Slot:
        """Bindings no job owns: a timed-out job's bindings come back once ``wait(0)`` shows it ended."""
        for slot in self._slots:
            if slot.job is not None:
                try:
                    slot.job.wait(0)
                except hp.HailoRTTimeout:
                    continue
                except hp.HailoRTException:
                    pass  # the job ended with an error: its buffers are free again
                slot.job = None
            return slot
        if len(self._slots) < MAX_BINDINGS:
            try:
                self._slots.append(self._new_slot())
            except hp.HailoRTException as exc:
                raise BackendError("device_error", f"HailoRT could not create bindings: {exc}") from exc
            return self._slots[-1]
        raise BackendError(
            "timeout",
            f"the chip has not finished {len(self._slots)} earlier runs that passed the {self.timeout_ms} ms "
            "timeout; not reusing their buffers",
        )

    def close(self) -> None:
        with self._lock:
            if self._hp is not None:
                self._release(self._hp)
            self._hp = None

    def _release(self, hp: ModuleType) -> None:
        """Bindings, configured model and InferModel go before the VDevice: the InferModel keeps the VDevice
        (and the chip) alive (pyhailort.py v4.23.0, VDevice.create_infer_model)."""
        for device in self._devices:
            device.release()
        self._devices = []
        self._slots = []
        if self._configured is not None:
            try:
                self._configured.shutdown()  # aborts a timed-out job still queued on the chip
            except hp.HailoRTException as exc:
                log.warning("HailoRT shutdown of the configured model failed: %s", exc)
        self._configured = None
        self._infer_model = None
        if self._vdevice is not None:
            try:
                self._vdevice.release()
            finally:
                self._vdevice = None

    def describe(self) -> dict[str, object]:
        return {"hailo_devices": self._identities, "hailo_multi_process": self.multi_process}

    def chip_status(self) -> list[ChipStatus]:
        """Identity and temperature of every chip behind this worker's VDevice (device control API)."""
        if self._hp is None:
            return []
        statuses = []
        with self._lock:
            for device in self._devices:
                temperatures: dict[str, float] = {}
                try:
                    info = device.control.get_chip_temperature()
                    temperatures = {"ts0": float(info.ts0_temperature), "ts1": float(info.ts1_temperature)}
                except self._hp.HailoRTException as exc:
                    log_once(
                        log,
                        f"hailo-temperature:{device.device_id}",
                        f"Hailo chip temperature unavailable: {exc}",
                    )
                statuses.append(
                    ChipStatus(device.device_id, self._identities[device.device_id], temperatures)
                )
        return statuses

    def _open_device_control(self) -> None:
        assert self._hp is not None
        try:
            self._devices = list(self._vdevice.get_physical_devices())
            for device in self._devices:
                board = device.control.identify()
                self._identities[device.device_id] = {
                    "board_name": str(board.board_name).rstrip("\x00"),
                    "architecture": str(board.device_architecture),
                    "serial_number": str(board.serial_number).rstrip("\x00"),
                    "firmware_version": str(board.firmware_version),
                }
        except self._hp.HailoRTException as exc:
            # e.g. through hailort.service the device may not accept direct control; metrics go without it.
            log_once(
                log,
                "hailo-identify",
                f"Hailo device control unavailable, chip identity/temperature not exported: {exc}",
            )
            self._devices = []


def _listed(hefs: dict[str, Path]) -> str:
    return ", ".join(f"{arch} {path.name}" for arch, path in sorted(hefs.items())) or "no .hef"


def service_hint(exc: Exception, params: Any) -> str:
    """HailoRT's own message, plus where the multi-process client looked for hailort.service."""
    if not params.multi_process_service:
        return str(exc)
    address = os.environ.get(SERVICE_ADDRESS_ENV) or SERVICE_DEFAULT_ADDRESS
    return (
        f"{exc} (multi-process mode: hailort.service must listen on {address}; "
        f"{SERVICE_ADDRESS_ENV} overrides the address)"
    )


def hef_z_score(metadata: Metadata) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel (mean, std) to apply in front of the HEF; ``BackendError`` when the bundle declares
    another HEF input contract or has no usable normalization (guessing would feed the chip wrong values)."""
    hef_input = metadata.get("model", {}).get("hef_input")
    declared = hef_input.get("values") if isinstance(hef_input, dict) else hef_input
    if declared != HEF_INPUT_Z_SCORED:
        raise BackendError(
            "bad_model",
            f"model_metadata.json model.hef_input.values is {declared!r}; this app feeds the HEF only "
            f"{HEF_INPUT_Z_SCORED!r} input (rebuild the bundle with this release's compile)",
        )
    try:
        normalization = normalization_from(metadata.get("normalization"), "bundle")
    except NormalizationError as exc:
        raise BackendError(
            "bad_model",
            f"model_metadata.json normalization must be {METHOD} with {INPUT_CHANNELS} finite mean "
            f"and {INPUT_CHANNELS} finite std values > 0 to feed the HEF ({exc})",
        ) from None
    return np.asarray(normalization.mean, np.float32), np.asarray(normalization.std, np.float32)


def output_roles(shapes: dict[str, tuple[int, ...]], hef_name: str) -> tuple[str, str]:
    """The HEF names outputs after its layers, not the ONNX names: pick them by name when they match,
    otherwise by size (64 latent values, 12 motif scores)."""
    by_size: dict[int, list[str]] = {}
    for name, shape in shapes.items():
        by_size.setdefault(int(np.prod(shape)), []).append(name)
    latent = LATENT_NAME if LATENT_NAME in shapes else _only(by_size.get(LATENT_SIZE, []))
    motifs = MOTIF_NAME if MOTIF_NAME in shapes else _only(by_size.get(MOTIF_COUNT, []))
    if latent is None or motifs is None:
        raise BackendError(
            "bad_model",
            f"{hef_name} outputs {shapes} do not include one {LATENT_SIZE}-value latent and one "
            f"{MOTIF_COUNT}-value motif output",
        )
    return latent, motifs


def _only(names: list[str]) -> str | None:
    return names[0] if len(names) == 1 else None
