"""The model inside one worker: verify the bundle, open the backend, warm up, serve; readiness follows."""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from app import metrics
from app.backends.base import Backend, BackendError, Inference
from app.backends.selection import Choice, choose_backend, cpu_fallback, create_backend
from app.config import AppConfig
from bundle_contract.files import BundleError, bundle_kind, verify_bundle
from bundle_contract.golden import judge as golden_judge
from bundle_contract.input_ranges import InputRanges, RangesError, default_ranges, ranges_from
from bundle_contract.metadata import Metadata

log = logging.getLogger(__name__)

# Consecutive failed inferences after which /healthz says so: EdgeInfer hides backend failures behind stub
# output, so a chip that broke after start-up must show in the one signal deploys and fleet checks look at.
FAILURE_LIMIT = 3


def bundle_ranges(metadata: Metadata) -> InputRanges:
    """The bundle's physical ranges; a bundle compiled before they were recorded gets the same defaults."""
    if "input_ranges" not in metadata:
        log.warning("bundle records no input_ranges: checking windows against the default physical ranges")
        return default_ranges()
    try:
        return ranges_from(metadata["input_ranges"], "bundle")
    except RangesError as exc:
        raise BackendError("bad_model", f"model_metadata.json: {exc}") from None


class NotReady(Exception):
    """Inference asked for before the model is loaded and warmed up (or after loading failed)."""


@dataclass(frozen=True)
class Served:
    backend: Backend
    metadata: Metadata
    model_file: str
    sha256: str
    input_ranges: InputRanges


class ModelService:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.state = "starting"
        self.reason = "model not loaded yet"
        self.choice: Choice | None = None
        self._served: Served | None = None
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_failure = ""

    def start(self) -> None:
        """Load in the background so /livez and /healthz answer (503 with the stage) while the model loads."""
        self._thread = threading.Thread(target=self.load, name="model-loader", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state == "ready"

    def load(self) -> None:
        try:
            self._stage("verifying", f"verifying bundle {self.config.bundle_dir}")
            metadata = verify_bundle(self.config.bundle_dir)
            self.choice = choose_backend(self.config, metadata)
            log.info("backend %s: %s", self.choice.backend, self.choice.reason)
            try:
                served = self._open(self.choice, metadata)
            except BackendError as exc:
                # A chip Pi whose .hef does not serve fails its health check, unless the knob allows the CPU.
                if self.choice.backend != "hailort" or not self.config.allow_cpu_fallback:
                    raise
                self.choice = cpu_fallback(
                    self.config, f"HailoRT could not serve the bundle ({exc.kind}: {exc})"
                )
                log.warning("backend %s: %s", self.choice.backend, self.choice.reason)
                served = self._open(self.choice, metadata)
        except BundleError as exc:
            self._fail(f"bundle {self.config.bundle_dir} failed verification: {exc}")
            return
        except BackendError as exc:
            self._fail(f"{exc.kind}: {exc}")
            return
        except KeyError as exc:
            self._fail(f"model_metadata.json lacks key {exc}")
            return
        except Exception as exc:  # a loader crash must become a 503 reason, not a silently dead thread
            log.exception("model loading failed")
            self._fail(f"unexpected error while loading the model: {exc!r}")
            return
        self._served = served
        backend = served.backend
        metrics.MODEL_INFO.labels(
            version=served.metadata["version"],
            backend=backend.name,
            sha256=served.sha256,
            untrained_default=str(bool(served.metadata.get("untrained_default"))).lower(),
        ).set(1)
        metrics.WORKERS_READY.set(1)
        self._publish_chips()
        metrics.sample_worker_rss(force=True)  # every ready worker shows up in /metrics, busy or not
        # Everything alive now lives as long as the worker: keep it out of the collector's full passes, whose
        # pauses would land in the latency tail of whichever request triggers them.
        gc.freeze()
        self.state, self.reason = "ready", "ready"
        log.info("ready: %s %s via %s", served.metadata["version"], served.model_file, backend.name)

    def _open(self, choice: Choice, metadata: Metadata) -> Served:
        """Create, load and warm up the chosen backend; closed again when any of that fails."""
        backend = create_backend(choice, self.config, metadata)
        self._stage("loading", f"loading the bundle with {backend.name}")
        try:
            backend.load()
            # HailoRT picks the .hef for its chip's family while loading; ONNX Runtime serves the ONNX.
            hef = getattr(backend, "hef_path", None)
            model_file = hef.name if hef is not None else metadata["model"]["onnx"]
            served = Served(
                backend,
                metadata,
                model_file,
                metadata["files"][model_file]["sha256"],
                bundle_ranges(metadata),
            )
            self._warm_up(served)
        except BaseException:
            backend.close()  # a worker that will never serve must not keep the chip open
            raise
        return served

    def _warm_up(self, served: Served) -> None:
        """Run the golden window until the runtime is warm, then check the answer: a backend that loads but
        computes garbage (wrong HEF, broken driver) must never report ready."""
        golden = served.metadata["golden"]
        window = np.asarray(golden["window"], dtype=np.float32)
        result: Inference | None = None
        for run in range(self.config.warmup_runs):
            self._stage("warming_up", f"warming up ({run}/{self.config.warmup_runs} runs)")
            result = served.backend.infer(window)
        assert result is not None
        judgment = golden_judge(golden, result.latent.tolist(), served.backend.name)
        if not judgment.ok:
            raise BackendError("golden_mismatch", f"golden window latent: {judgment.rule} is false")

    def infer(self, window: np.ndarray) -> Inference:
        served = self._served
        if served is None:
            raise NotReady(self.reason)
        started = time.perf_counter()
        try:
            result = served.backend.infer(window)
        except BackendError as exc:
            self._failures += 1
            self._last_failure = f"{exc.kind}: {exc}"
            raise
        self._failures = 0
        metrics.model_latency(served.backend.name).observe(time.perf_counter() - started)
        return result

    def health(self) -> tuple[int, dict[str, object]]:
        served = self._served
        if served is None:
            return 503, {"status": "unavailable", "state": self.state, "reason": self.reason}
        if self._failures >= FAILURE_LIMIT:
            reason = f"the last {self._failures} inferences failed; last: {self._last_failure}"
            return 503, {"status": "unavailable", "state": "failing", "reason": reason}
        return 200, {
            "status": "ok",
            "backend": served.backend.name,
            "backend_reason": self.choice.reason if self.choice else "",
            "model_version": served.metadata["version"],
            "model_file": served.model_file,
            # "onnx-only": the bundle has no .hef at all (built without the DFC); the fleet report labels it.
            "bundle_kind": bundle_kind(served.metadata),
            "sha256": served.sha256,
            "untrained_default": bool(served.metadata.get("untrained_default")),
            **served.backend.describe(),
        }

    @property
    def input_ranges(self) -> InputRanges | None:
        return self._served.input_ranges if self._served else None

    @property
    def model_version(self) -> str:
        return self._served.metadata["version"] if self._served else ""

    @property
    def backend_name(self) -> str:
        return self._served.backend.name if self._served else ""

    def refresh_scrape_gauges(self) -> None:
        metrics.sample_worker_rss(force=True)
        self._publish_chips()

    def _publish_chips(self) -> None:
        if self._served is not None:
            metrics.publish_chips(self._served.backend.chip_status())

    def close(self) -> None:
        if self._served is not None:
            self._served.backend.close()
            self._served = None
            self.state, self.reason = "stopped", "worker shutting down"

    def _stage(self, state: str, reason: str) -> None:
        self.state, self.reason = state, reason

    def _fail(self, reason: str) -> None:
        self.state, self.reason = "failed", reason
        log.error("not ready: %s", reason)
