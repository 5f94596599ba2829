"""TEST DOUBLE of HailoRT's Python API (`hailo_platform`) -- NOT Hailo software.

It implements only the calls app/backends/hailort_backend.py and app/backends/selection.py make (names and
signatures as in hailo-ai/hailort v4.23.0: hailort/libhailort/bindings/python/platform/hailo_platform/
pyhailort/pyhailort.py and .../bindings/python/src/pyhailort.cpp), so the backend can be tested without a
Hailo-8. It refuses what the real library refuses, and a little more where the real one silently corrupts:

- ``params.scheduling_algorithm`` takes only a ``HailoSchedulingAlgorithm`` (a pybind11 enum: anything else
  is a TypeError) and reads back as a plain int (pyhailort.cpp's getter returns uint32_t); default NONE.
- ``multi_process_service`` needs a scheduler (vdevice.cpp: "Multi-process service is supported only with
  HailoRT scheduler") and a listening hailort.service at ``HAILORT_SERVICE_ADDRESS`` or
  ``unix:///tmp/hailort_uds.sock`` (hailort/rpc/rpc_definitions.hpp); tests bind a real Unix socket there.
- without the service one process at a time holds the chip: a second VDevice gets
  HAILO_OUT_OF_PHYSICAL_DEVICES, always. "The chip" is the lock file HAILO_DOUBLE_DEVICE_LOCK names; when
  unset, the first import makes one and exports the variable, so the importing process and every process it
  starts share one chip (and unrelated test runs on the machine do not). Service clients share the chip.
- a VDevice belongs to the process that created it.
- ``run(bindings, timeout)`` is ``run_async(bindings)`` plus ``job.wait(timeout)``, as in pyhailort.py: after
  HailoRTTimeout the job is still in flight and owns its bindings' buffers. Until it ends, ``set_buffer`` on
  them or running them again raises, and their numpy arrays are read-only (the chip is DMA-ing them).
- ``VDevice.release()`` while an InferModel or ConfiguredInferModel made from it is alive raises: the real
  one returns, but "as long as the InferModel object is alive, the VDevice object is alive as well"
  (pyhailort.py, VDevice.create_infer_model), i.e. the chip stays held.
- an unknown stream name raises HailoRTNotFoundException; ``set_buffer`` requires a C-contiguous array.

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
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable
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
# identify()'s Device Architecture: HAILO8 (26 TOPS AI HAT+) or HAILO8L (AI Kit, 13 TOPS AI HAT+).
DEVICE_ARCHITECTURE = os.environ.get("HAILO_DOUBLE_ARCHITECTURE", "HAILO8")
OUTPUT_FILL: float | None = None  # e.g. NaN: a chip or firmware that returns garbage
LAST_INPUT: np.ndarray | None = None  # a copy of the input buffer of the last run

# hailort/rpc/rpc_definitions.hpp v4.23.0: HAILORT_SERVICE_DEFAULT_ADDR unless HAILORT_SERVICE_ADDRESS is set.
SERVICE_DEFAULT_ADDRESS = "unix:///tmp/hailort_uds.sock"
SERVICE_ADDRESS_ENV = "HAILORT_SERVICE_ADDRESS"
DEVICE_LOCK_ENV = "HAILO_DOUBLE_DEVICE_LOCK"

if not os.environ.get(DEVICE_LOCK_ENV):
    _handle, _path = tempfile.mkstemp(prefix="hailo-double-chip-", suffix=".lock")
    os.close(_handle)
    os.environ[DEVICE_LOCK_ENV] = _path


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTNotFoundException(HailoRTException):
    pass


class HailoRTInvalidArgumentException(HailoRTException):
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
        self._scheduling_algorithm = HailoSchedulingAlgorithm.NONE  # VDeviceParams.default() in pyhailort.cpp
        self.multi_process_service = False
        self.group_id = "UNIQUE"

    @property
    def scheduling_algorithm(self) -> int:
        return self._scheduling_algorithm.value  # the real getter returns uint32_t

    @scheduling_algorithm.setter
    def scheduling_algorithm(self, value: HailoSchedulingAlgorithm) -> None:
        if not isinstance(value, HailoSchedulingAlgorithm):
            raise TypeError(
                "(): incompatible function arguments. The following argument types are supported: "
                f"(self: VDeviceParams, arg0: SchedulingAlgorithm) -> None; invoked with {value!r}"
            )
        self._scheduling_algorithm = value


class _Identity:
    board_name = "Hailo-8\x00\x00"
    serial_number = "TESTDOUBLE0001\x00"
    firmware_version = "4.23.0 (release,app)"

    @property
    def device_architecture(self) -> str:
        return DEVICE_ARCHITECTURE


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


def service_socket() -> str:
    """The Unix socket path libhailort dials for the multi-process service."""
    address = os.environ.get(SERVICE_ADDRESS_ENV) or SERVICE_DEFAULT_ADDRESS
    return address.removeprefix("unix://")


def _service_listening(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class VDevice:
    def __init__(self, params: _VDeviceParams | None = None) -> None:
        params = params or VDevice.create_params()
        self._creation_pid = os.getpid()
        self._lock_file = None
        self._children: weakref.WeakSet[Any] = weakref.WeakSet()
        if params.multi_process_service:
            if params._scheduling_algorithm is HailoSchedulingAlgorithm.NONE:
                raise HailoRTInvalidArgumentException(
                    "HAILO_INVALID_ARGUMENT: Multi-process service is supported only with HailoRT scheduler, "
                    "please choose scheduling algorithm"
                )
            if not _service_listening(service_socket()):
                raise HailoRTException(
                    f"HAILO_RPC_FAILED: hailort.service is not listening on unix://{service_socket()}"
                )
        self._hold_chip(shared=params.multi_process_service)
        record(
            "vdevice",
            scheduling_algorithm=HailoSchedulingAlgorithm(params.scheduling_algorithm).name,
            multi_process_service=params.multi_process_service,
            group_id=params.group_id,
        )

    def _hold_chip(self, shared: bool) -> None:
        # Without the service the process opens /dev/hailo0 itself (exclusive); service clients share the
        # service's handle, and a direct opener cannot get the chip while the service holds it.
        self._lock_file = open(os.environ[DEVICE_LOCK_ENV], "a")  # noqa: SIM115 - held for the VDevice's lifetime
        try:
            fcntl.flock(self._lock_file, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise HailoRTException(
                "HAILO_OUT_OF_PHYSICAL_DEVICES: the device is used by another process"
            ) from None

    @staticmethod
    def create_params() -> _VDeviceParams:
        return _VDeviceParams()

    def _check_process(self) -> None:
        if os.getpid() != self._creation_pid:
            raise HailoRTException("VDevice can only be used from the process it was created in.")
        if self._lock_file is None:
            raise HailoRTException("test double: the VDevice was released")

    def create_infer_model(self, hef_source: str, name: str = "") -> _InferModel:
        self._check_process()
        record("create_infer_model", hef=hef_source)
        model = _InferModel(self, Path(hef_source))
        self._children.add(model)
        return model

    def get_physical_devices(self) -> list[Device]:
        self._check_process()
        return [Device(device_id) for device_id in SCAN_RESULT]

    def release(self) -> None:
        alive = sorted(type(child).__name__.lstrip("_") for child in self._children)
        if alive:
            raise HailoRTException(
                f"test double: VDevice.release() while {', '.join(alive)} made from it still live: "
                "HailoRT keeps the VDevice and the chip held as long as the InferModel object is alive"
            )
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


def _named(streams: dict[str, Any], name: str, kind: str) -> Any:
    """pyhailort.py: "HailoRTNotFoundException in case a non-existing output is requested or no name is given
    but multiple outputs exist"."""
    if name == "" and len(streams) == 1:
        name = next(iter(streams))
    if name not in streams:
        raise HailoRTNotFoundException(f"HAILO_NOT_FOUND: no {kind} named {name!r} (have {sorted(streams)})")
    return streams[name]


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
        self._inputs = {"input_layer1": _Stream("input_layer1", tuple(spec["input_shape"]))}
        self._outputs = {name: _Stream(name, tuple(o["shape"])) for name, o in spec["outputs"].items()}
        self._sources = {name: o["source"] for name, o in spec["outputs"].items()}
        self.batch_size = 0

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def input(self, name: str = "") -> _Stream:
        return _named(self._inputs, name, "input")

    @property
    def outputs(self) -> list[_Stream]:
        return list(self._outputs.values())

    def output(self, name: str = "") -> _Stream:
        return _named(self._outputs, name, "output")

    def configure(self) -> _ConfiguredInferModel:
        self._vdevice._check_process()
        if self.input().format_type is not FormatType.FLOAT32 or any(
            o.format_type is not FormatType.FLOAT32 for o in self._outputs.values()
        ):
            raise HailoRTException("test double: the app is expected to request FLOAT32 on every stream")
        record("configure", batch_size=self.batch_size)
        configured = _ConfiguredInferModel(self)
        self._vdevice._children.add(configured)
        return configured


class _Buffer:
    def __init__(self, owner: _Bindings, name: str) -> None:
        self._owner = owner
        self._name = name
        self._buffer: np.ndarray | None = None

    def set_buffer(self, buffer: np.ndarray) -> None:
        if self._owner.job is not None:
            raise HailoRTException(
                f"test double: set_buffer({self._name}) on bindings whose job is still in flight: the chip "
                "still owns their buffers (wait for the job or use other bindings)"
            )
        if not buffer.flags.c_contiguous:
            raise HailoRTException("Buffer must be C_CONTIGUOUS")
        self._buffer = buffer

    def get_buffer(self) -> np.ndarray:
        if self._buffer is None:
            raise HailoRTException("buffer was never set")
        return self._buffer


class _Bindings:
    def __init__(self, input_name: str, output_names: list[str]) -> None:
        self.job: _Job | None = None  # the job that owns these buffers, until it ends
        self._inputs = {input_name: _Buffer(self, input_name)}
        self._outputs = {name: _Buffer(self, name) for name in output_names}

    def input(self, name: str = "") -> _Buffer:
        return _named(self._inputs, name, "input")

    def output(self, name: str = "") -> _Buffer:
        return _named(self._outputs, name, "output")

    def arrays(self) -> list[np.ndarray]:
        return [b.get_buffer() for b in (*self._inputs.values(), *self._outputs.values())]


class _Job:
    """AsyncInferJob: ``wait(timeout_ms)`` returns once the job and its callback are done, else HailoRTTimeout
    (infer_model.cpp AsyncInferJobImpl::wait); waiting again after it ended returns at once."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: HailoRTException | None = None  # the real job reports it to the callback; simpler here

    def wait(self, timeout_ms: int) -> None:
        if not self._done.wait(timeout_ms / 1000.0):
            raise HailoRTTimeout(f"HAILO_TIMEOUT: waiting for the async job timed out ({timeout_ms}ms)")
        if self.error is not None:
            raise self.error


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
        self._shut_down = threading.Event()
        self._running: list[threading.Thread] = []

    def __enter__(self) -> _ConfiguredInferModel:
        return self

    def __exit__(self, *args: object) -> None:
        self.shutdown()

    def create_bindings(self) -> _Bindings:
        record("create_bindings")
        return _Bindings(self._model.input().name, list(self._model._outputs))

    def run(self, bindings: list[_Bindings], timeout: int) -> None:
        """pyhailort.py v4.23.0: ``job = self.run_async(bindings); job.wait(timeout)``."""
        self.run_async(bindings).wait(timeout)

    def run_async(self, bindings: list[_Bindings], callback: Callable[..., None] | None = None) -> _Job:
        self._model._vdevice._check_process()
        if self._shut_down.is_set():
            raise HailoRTException("HAILO_INVALID_OPERATION: the configured infer model was shut down")
        for binding in bindings:
            if binding.job is not None:
                raise HailoRTException(
                    "test double: run on bindings whose previous job is still in flight (their buffers "
                    "belong to the chip until it ends)"
                )
        job = _Job()
        frozen = []
        for binding in bindings:
            binding.job = job
            for array in binding.arrays():
                if array.flags.writeable:
                    array.flags.writeable = False
                    frozen.append(array)
        if RUN_DELAY_S:
            self._running = [t for t in self._running if t.is_alive()]
            thread = threading.Thread(target=self._finish, args=(bindings, job, frozen), daemon=True)
            self._running.append(thread)
            thread.start()
        else:
            self._finish(bindings, job, frozen)
        return job

    def _finish(self, bindings: list[_Bindings], job: _Job, frozen: list[np.ndarray]) -> None:
        if RUN_DELAY_S:
            self._shut_down.wait(RUN_DELAY_S)  # shutdown() aborts a job still on the chip
        for array in frozen:
            array.flags.writeable = True
        try:
            if not self._shut_down.is_set():
                self._compute(bindings)
        except HailoRTException as exc:
            job.error = exc
        finally:
            for binding in bindings:
                binding.job = None
            job._done.set()

    def _compute(self, bindings: list[_Bindings]) -> None:
        global LAST_INPUT
        input_stream = self._model.input()
        for binding in bindings:
            nhwc = _frame(binding.input().get_buffer(), input_stream.shape)
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
                target[...] = results[source].reshape(target.shape) if OUTPUT_FILL is None else OUTPUT_FILL

    def shutdown(self) -> None:
        """Aborts the jobs still on the chip and returns once they ended (ConfiguredInferModel::shutdown)."""
        record("shutdown")
        self._shut_down.set()
        for thread in self._running:
            thread.join()
        self._running = []


def _frame(buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """HailoRT reads the buffer as one FLOAT32 frame: a wrong size or dtype is an error there."""
    if buffer.dtype != np.float32 or buffer.size != int(np.prod(shape)) or not buffer.flags.c_contiguous:
        raise HailoRTException(
            f"HAILO_INVALID_ARGUMENT: input buffer {buffer.dtype} {buffer.shape} is not one contiguous "
            f"float32 frame of shape {shape}"
        )
    return buffer.reshape(shape)
