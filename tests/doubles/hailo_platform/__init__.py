"""TEST DOUBLE of HailoRT's Python API (`hailo_platform`) -- NOT Hailo software.

It implements only the calls app/backends/hailort_backend.py and app/backends/selection.py make (names and
signatures as in hailo-ai/hailort, hailo8 branch, pyhailort.py, v4.23), so the backend can be tested without a
Hailo-8. It behaves like the real library where the app depends on it:

- a VDevice belongs to the process that created it (using it from another process raises);
- without the multi-process service, a second process opening the device gets HAILO_OUT_OF_PHYSICAL_DEVICES
  (enforced only when HAILO_DOUBLE_DEVICE_LOCK names a lock file);
- ConfiguredInferModel.run(bindings, timeout_ms) raises HailoRTTimeout when the (configurable) run time
  exceeds the timeout, and raises when two threads run the same bindings at once (the app must serialise).

Its "HEF" is a JSON file written by the tests: {"test_double_hef": true, "onnx": ..., "input_tensor": ...,
"input_shape": [...], "outputs": {layer_name: {"source": onnx_output_name, "shape": [...]}}}. Like a real HEF,
which holds only the part of the graph the DFC translated, it runs that ONNX from ``input_tensor`` on (the
z-scored NCHW tensor), feeding it the NHWC input buffer transposed: a caller that hands it raw values gets
wrong latents, as it would from the chip. Outputs are computed with ONNX Runtime so warm-up checks see real
numbers; ``LAST_INPUT`` keeps a copy of the last input buffer run. Every call the app makes is appended to the
JSON-lines file named by HAILO_DOUBLE_EVENTS (with the pid), so tests can check what happened inside gunicorn
workers.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "4.23.0+test-double"
IS_TEST_DOUBLE = True

# Knobs the tests turn.
SCAN_RESULT: list[str] = ["0000:01:00.0"]
RUN_DELAY_S = float(os.environ.get("HAILO_DOUBLE_RUN_DELAY_MS", "0")) / 1000.0
CHIP_TEMPERATURE_C = (41.5, 42.25)
OUTPUT_FILL: float | None = None  # e.g. NaN: a chip or firmware that returns garbage
LAST_INPUT: np.ndarray | None = None  # a copy of the input buffer of the last run


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoSchedulingAlgorithm(Enum):
    NONE = 0
    ROUND_ROBIN = 1


class FormatType(Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


def record(event: str, **fields: Any) -> None:
    path = os.environ.get("HAILO_DOUBLE_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")


class _VDeviceParams:
    def __init__(self) -> None:
        self.scheduling_algorithm = HailoSchedulingAlgorithm.NONE  # the real default in Python
        self.multi_process_service = False
        self.group_id = "UNIQUE"


class _Identity:
    board_name = "Hailo-8\x00\x00"
    device_architecture = "HAILO8"
    serial_number = "TESTDOUBLE0001\x00"
    firmware_version = "4.23.0 (release,app)"


class _Temperature:
    def __init__(self, ts0: float, ts1: float) -> None:
        self.ts0_temperature = ts0
        self.ts1_temperature = ts1
        self.sample_count = 1


class _Control:
    def identify(self) -> _Identity:
        return _Identity()

    def get_chip_temperature(self) -> _Temperature:
        return _Temperature(*CHIP_TEMPERATURE_C)


class Device:
    @classmethod
    def scan(cls) -> list[str]:
        return list(SCAN_RESULT)

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.control = _Control()

    def release(self) -> None:
        pass


class VDevice:
    def __init__(self, params: _VDeviceParams | None = None) -> None:
        params = params or VDevice.create_params()
        self._creation_pid = os.getpid()
        self._lock_file = None
        lock_path = os.environ.get("HAILO_DOUBLE_DEVICE_LOCK")
        if lock_path and not params.multi_process_service:
            self._lock_file = open(lock_path, "a")  # noqa: SIM115 - held for the VDevice's lifetime
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_file.close()
                raise HailoRTException(
                    "HAILO_OUT_OF_PHYSICAL_DEVICES: the device is used by another process"
                ) from None
        record(
            "vdevice",
            scheduling_algorithm=params.scheduling_algorithm.name,
            multi_process_service=params.multi_process_service,
            group_id=params.group_id,
        )

    @staticmethod
    def create_params() -> _VDeviceParams:
        return _VDeviceParams()

    def _check_process(self) -> None:
        if os.getpid() != self._creation_pid:
            raise HailoRTException("VDevice can only be used from the process it was created in.")

    def create_infer_model(self, hef_source: str, name: str = "") -> _InferModel:
        self._check_process()
        record("create_infer_model", hef=hef_source)
        return _InferModel(self, Path(hef_source))

    def get_physical_devices(self) -> list[Device]:
        self._check_process()
        return [Device(device_id) for device_id in SCAN_RESULT]

    def release(self) -> None:
        record("release")
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


class _Stream:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name = name
        self.shape = shape
        self.format_type = FormatType.AUTO

    def set_format_type(self, format_type: FormatType) -> None:
        self.format_type = format_type


class _InferModel:
    def __init__(self, vdevice: VDevice, hef_path: Path) -> None:
        try:
            spec = json.loads(hef_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HailoRTException(f"HAILO_INVALID_HEF: {hef_path} ({exc})") from None
        if not isinstance(spec, dict) or not spec.get("test_double_hef"):
            raise HailoRTException(f"HAILO_INVALID_HEF: {hef_path} is not a HEF")
        self._vdevice = vdevice
        self._onnx = hef_path.parent / spec["onnx"]
        self._input_tensor = spec["input_tensor"]
        self._input = _Stream("input_layer1", tuple(spec["input_shape"]))
        self._outputs = {name: _Stream(name, tuple(o["shape"])) for name, o in spec["outputs"].items()}
        self._sources = {name: o["source"] for name, o in spec["outputs"].items()}
        self.batch_size = 0

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def input(self, name: str = "") -> _Stream:
        return self._input

    @property
    def outputs(self) -> list[_Stream]:
        return list(self._outputs.values())

    def output(self, name: str = "") -> _Stream:
        return self._outputs[name]

    def configure(self) -> _ConfiguredInferModel:
        self._vdevice._check_process()
        if self._input.format_type is not FormatType.FLOAT32 or any(
            o.format_type is not FormatType.FLOAT32 for o in self._outputs.values()
        ):
            raise HailoRTException("test double: the app is expected to request FLOAT32 on every stream")
        record("configure", batch_size=self.batch_size)
        return _ConfiguredInferModel(self)


class _Buffer:
    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None

    def set_buffer(self, buffer: np.ndarray) -> None:
        self._buffer = buffer

    def get_buffer(self) -> np.ndarray:
        if self._buffer is None:
            raise HailoRTException("buffer was never set")
        return self._buffer


class _Bindings:
    def __init__(self, output_names: list[str]) -> None:
        self._input = _Buffer()
        self._outputs = {name: _Buffer() for name in output_names}

    def input(self, name: str = "") -> _Buffer:
        return self._input

    def output(self, name: str = "") -> _Buffer:
        return self._outputs[name]


class _ConfiguredInferModel:
    def __init__(self, model: _InferModel) -> None:
        import onnx.shape_inference
        import onnx.utils
        import onnxruntime

        self._model = model
        graph = onnx.shape_inference.infer_shapes(onnx.load(str(model._onnx)))  # the extractor needs shapes
        translated = onnx.utils.Extractor(graph).extract_model(
            [model._input_tensor], sorted(set(model._sources.values()))
        )
        self._session = onnxruntime.InferenceSession(
            translated.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        self._busy = threading.Lock()

    def create_bindings(self) -> _Bindings:
        record("create_bindings")
        return _Bindings(list(self._model._outputs))

    def run(self, bindings: list[_Bindings], timeout: int) -> None:
        global LAST_INPUT
        self._model._vdevice._check_process()
        if not self._busy.acquire(blocking=False):
            raise HailoRTException("test double: concurrent run() on the same configured model and bindings")
        try:
            if timeout < RUN_DELAY_S * 1000.0:
                time.sleep(timeout / 1000.0)
                raise HailoRTTimeout(f"HAILO_TIMEOUT: run did not finish within {timeout} ms")
            time.sleep(RUN_DELAY_S)
            for binding in bindings:
                nhwc = _frame(binding.input().get_buffer(), self._model._input.shape)
                LAST_INPUT = nhwc.copy()
                nchw = np.ascontiguousarray(nhwc.reshape(1, *nhwc.shape[-3:]).transpose(0, 3, 1, 2))
                results = dict(
                    zip(
                        [o.name for o in self._session.get_outputs()],
                        self._session.run(None, {self._model._input_tensor: nchw}),
                        strict=True,
                    )
                )
                for name, source in self._model._sources.items():
                    target = binding.output(name).get_buffer()
                    target[...] = (
                        results[source].reshape(target.shape) if OUTPUT_FILL is None else OUTPUT_FILL
                    )
        finally:
            self._busy.release()


def _frame(buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """HailoRT reads the buffer as one FLOAT32 frame: a wrong size or dtype is an error there."""
    if buffer.dtype != np.float32 or buffer.size != int(np.prod(shape)) or not buffer.flags.c_contiguous:
        raise HailoRTException(
            f"HAILO_INVALID_ARGUMENT: input buffer {buffer.dtype} {buffer.shape} is not one contiguous "
            f"float32 frame of shape {shape}"
        )
    return buffer.reshape(shape)
