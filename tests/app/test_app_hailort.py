"""The HailoRT backend against the hailo_platform TEST DOUBLE (tests/doubles/hailo_platform, not Hailo
software): after-fork ownership, configured-model reuse, timeouts, thread safety, auto choice, chip data."""

from __future__ import annotations

import importlib
import json
import multiprocessing
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest
from app_server import DOUBLES, AppServer, wait_for_state

from app.backends.base import BackendError
from app.backends.hailort_backend import HailoRTBackend, hef_z_score, output_roles
from app.backends.selection import choose_backend
from app.config import AppConfig
from app.factory import create_app


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(DOUBLES))
    monkeypatch.setenv("HAILO_DOUBLE_EVENTS", str(tmp_path / "events.jsonl"))
    sys.modules.pop("hailo_platform", None)
    module = importlib.import_module("hailo_platform")
    assert module.IS_TEST_DOUBLE
    yield module
    sys.modules.pop("hailo_platform", None)


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reference(bundle: Path, window: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(bundle / "tcn_encoder.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["latent_embeddings"], {"imu_window": window[None]})[0][0]


@pytest.fixture
def window() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(100, 9)).astype(np.float32) * 3


def metadata_of(bundle: Path) -> dict:
    return json.loads((bundle / "model_metadata.json").read_text())


def loaded(bundle: Path, **kwargs: object) -> HailoRTBackend:
    backend = HailoRTBackend(
        bundle / "tcn_encoder.hef",
        z_score=hef_z_score(metadata_of(bundle)),
        timeout_ms=int(kwargs.pop("timeout_ms", 40)),
        **kwargs,
    )
    backend.load()
    return backend


def test_configures_once_and_reuses_bindings(
    double: ModuleType, hailo_bundle: Path, tmp_path: Path, window: np.ndarray
) -> None:
    backend = loaded(hailo_bundle)
    results = [backend.infer(window) for _ in range(25)]
    np.testing.assert_allclose(results[-1].latent, reference(hailo_bundle, window), atol=1e-5)
    assert results[-1].motif_scores.shape == (12,)
    log = events(tmp_path / "events.jsonl")
    assert [e["event"] for e in log] == ["vdevice", "create_infer_model", "configure", "create_bindings"]
    assert log[0]["scheduling_algorithm"] == "ROUND_ROBIN" and log[0]["multi_process_service"] is False
    assert log[2]["batch_size"] == 1
    backend.close()
    assert events(tmp_path / "events.jsonl")[-1]["event"] == "release"


def test_the_chip_gets_the_window_z_scored_on_the_host(
    double: ModuleType, hailo_bundle: Path, window: np.ndarray
) -> None:
    """The HEF is compiled for z-scored input: the buffer handed to HailoRT is (x - mean) / std per channel,
    NHWC float32, and the answer matches the float model on the raw window."""
    normalization = metadata_of(hailo_bundle)["normalization"]
    backend = loaded(hailo_bundle)
    for scale in (1.0, 5.0):  # the reused input buffer holds this window, not the previous one
        result = backend.infer(window * scale)
        expected = (window * scale - np.float32(normalization["mean"])) / np.float32(normalization["std"])
        assert double.LAST_INPUT.dtype == np.float32 and double.LAST_INPUT.shape == (1, 100, 9)
        np.testing.assert_allclose(double.LAST_INPUT[0], expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(result.latent, reference(hailo_bundle, window * scale), atol=1e-5)


def test_the_double_gives_wrong_latents_for_raw_input(
    double: ModuleType, hailo_bundle: Path, window: np.ndarray
) -> None:
    """Control for the test above: a backend that handed the chip raw values would answer garbage."""
    backend = loaded(hailo_bundle)
    backend._bindings.input().set_buffer(np.ascontiguousarray(window.reshape(1, 100, 9)))
    backend._configured.run([backend._bindings], 1000)
    raw_latent = backend._bindings.output(backend._latent_name).get_buffer().reshape(-1)
    expected = reference(hailo_bundle, window)
    cosine = np.dot(raw_latent, expected) / (np.linalg.norm(raw_latent) * np.linalg.norm(expected))
    assert cosine < 0.98


@pytest.mark.parametrize(
    ("model", "normalization", "message"),
    [
        ({"hef_input": {"values": "raw"}}, None, "model.hef_input.values is 'raw'"),
        ({"hef_input": None}, None, "model.hef_input.values is None"),
        ({"hef_input": "NHWC raw values"}, None, "model.hef_input.values is 'NHWC raw values'"),
        ({}, {"method": "min_max", "mean": [0] * 9, "std": [1] * 9}, "must be z_score_per_channel"),
        ({}, {"method": "z_score_per_channel", "mean": [0] * 8, "std": [1] * 9}, "9 finite mean"),
        ({}, {"method": "z_score_per_channel", "mean": [0] * 9, "std": [1] * 8 + [0]}, "std values > 0"),
        ({}, {"method": "z_score_per_channel", "mean": ["a"] * 9, "std": [1] * 9}, "9 finite mean"),
    ],
)
def test_an_unknown_hef_input_contract_is_refused(
    hailo_bundle: Path, model: dict, normalization: dict | None, message: str
) -> None:
    metadata = metadata_of(hailo_bundle)
    metadata["model"].update(model)
    if normalization is not None:
        metadata["normalization"] = normalization
    with pytest.raises(BackendError, match=re.escape(message)) as caught:
        hef_z_score(metadata)
    assert caught.value.kind == "bad_model"


def test_a_bundle_declaring_raw_hef_input_never_turns_ready(
    double: ModuleType, hailo_bundle: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / hailo_bundle.name
    shutil.copytree(hailo_bundle, bundle)
    metadata = metadata_of(bundle)
    metadata["model"]["hef_input"]["values"] = "raw"  # model_metadata.json itself is not in "files"
    (bundle / "model_metadata.json").write_text(json.dumps(metadata))
    app = create_app(AppConfig(bundle_dir=bundle, backend="hailort"))
    assert not app.extensions["hailo_pipeline"].wait(30)
    health = app.test_client().get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["reason"].startswith("bad_model: model_metadata.json model.hef_input.values")


def test_multi_process_service_and_group(double: ModuleType, hailo_bundle: Path, tmp_path: Path) -> None:
    loaded(hailo_bundle, multi_process=True, group_id="EDGE")
    first = events(tmp_path / "events.jsonl")[0]
    assert (first["multi_process_service"], first["group_id"]) == (True, "EDGE")


def test_every_run_has_the_timeout(double: ModuleType, hailo_bundle: Path, window: np.ndarray) -> None:
    backend = loaded(hailo_bundle, timeout_ms=5)
    double.RUN_DELAY_S = 0.05  # a wedged chip: the run would take 50 ms
    try:
        with pytest.raises(BackendError) as caught:
            backend.infer(window)
    finally:
        double.RUN_DELAY_S = 0.0
    assert caught.value.kind == "timeout" and "5 ms timeout" in str(caught.value)
    assert backend.infer(window).latent.shape == (64,)  # the next run works again


def test_concurrent_requests_are_serialised(
    double: ModuleType, hailo_bundle: Path, window: np.ndarray
) -> None:
    backend = loaded(hailo_bundle)
    expected = reference(hailo_bundle, window)
    double.RUN_DELAY_S = 0.001  # long enough for unsynchronised runs to overlap
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(15):
                np.testing.assert_allclose(backend.infer(window).latent, expected, atol=1e-5)
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        double.RUN_DELAY_S = 0.0
    assert errors == []


def test_the_double_does_catch_unsynchronised_runs(double: ModuleType, hailo_bundle: Path) -> None:
    """Control for the test above: bypassing the backend's lock makes concurrent runs fail in the double."""
    backend = loaded(hailo_bundle)
    backend._bindings.input().set_buffer(np.zeros((1, 100, 9), np.float32))
    double.RUN_DELAY_S = 0.02
    failures: list[Exception] = []

    def raw_run() -> None:
        try:
            backend._configured.run([backend._bindings], 1000)
        except double.HailoRTException as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=raw_run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        double.RUN_DELAY_S = 0.0
    assert failures and "concurrent run" in str(failures[0])


def _infer_in_child(backend: HailoRTBackend, queue: multiprocessing.Queue) -> None:
    try:
        backend.infer(np.zeros((100, 9), np.float32))
        queue.put("ran")
    except BackendError as exc:
        queue.put(exc.kind)


def test_a_forked_copy_never_uses_the_parents_vdevice(double: ModuleType, hailo_bundle: Path) -> None:
    backend = loaded(hailo_bundle)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_infer_in_child, args=(backend, queue))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == "wrong_process"


def test_output_roles_by_name_or_size() -> None:
    assert output_roles({"latent_embeddings": (64,), "motif_scores": (12,)}, "m.hef") == (
        "latent_embeddings",
        "motif_scores",
    )
    assert output_roles({"net/fc1": (1, 64), "net/softmax1": (12,)}, "m.hef") == ("net/fc1", "net/softmax1")
    with pytest.raises(BackendError, match="do not include one 64-value latent"):
        output_roles({"a": (64,), "b": (64,), "c": (12,)}, "m.hef")


def test_auto_selection(double: ModuleType, hailo_bundle: Path, default_bundle: Path, tmp_path: Path) -> None:
    config = AppConfig(bundle_dir=hailo_bundle)
    with_hef = json.loads((hailo_bundle / "model_metadata.json").read_text())
    without_hef = json.loads((default_bundle / "model_metadata.json").read_text())
    absent = tmp_path / "hailo0"
    assert choose_backend(config, without_hef, absent).backend == "onnxruntime"
    assert choose_backend(config, with_hef, absent).backend == "hailort"  # the scan finds the chip
    double.SCAN_RESULT = []
    try:
        choice = choose_backend(config, with_hef, absent)
        assert choice.backend == "onnxruntime" and "scan found none" in choice.reason
        absent.touch()
        assert choose_backend(config, with_hef, absent).backend == "hailort"
    finally:
        double.SCAN_RESULT = ["0000:01:00.0"]


def test_auto_without_hailo_platform_falls_back(hailo_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hailo_platform", None)  # import fails as on a host without HailoRT
    metadata = json.loads((hailo_bundle / "model_metadata.json").read_text())
    choice = choose_backend(AppConfig(bundle_dir=hailo_bundle), metadata, Path("/nonexistent/hailo0"))
    assert choice.backend == "onnxruntime" and "hailo_platform is not importable" in choice.reason


def test_gunicorn_worker_opens_its_own_device(hailo_bundle: Path, tmp_path: Path) -> None:
    """Real gunicorn with the double: the VDevice is created in the worker (after fork), never in the master,
    configured once and reused; /healthz and /metrics show the chip."""
    log = tmp_path / "events.jsonl"
    env = {"HAILO_DOUBLE_EVENTS": str(log), "HAILO_DOUBLE_DEVICE_LOCK": str(tmp_path / "device.lock")}
    with AppServer(hailo_bundle, tmp_path, workers=1, env=env, with_hailo_double=True) as server:
        server.wait_ready()
        metadata = json.loads((hailo_bundle / "model_metadata.json").read_text())
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(lambda _: server.post_json({"x": metadata["golden"]["window"]}, 2), range(40))
            )
        assert {a.status for a in answers} == {200}
        latent = np.array(answers[0].json()["latent"])
        np.testing.assert_allclose(latent, metadata["golden"]["latent"], atol=1e-4)
        assert answers[0].json()["backend"] == "hailort"
        health = server.request("GET", "/healthz").json()
        assert health["backend"] == "hailort" and health["model_file"] == "tcn_encoder.hef"
        assert health["hailo_devices"]["0000:01:00.0"]["board_name"] == "Hailo-8"
        text = server.metrics()
        assert (
            'hailo_pipeline_hailo_chip_temperature_celsius{device_id="0000:01:00.0",sensor="ts0"} 41.5'
            in text
        )
        assert 'board_name="Hailo-8"' in text and 'architecture="HAILO8"' in text
        master = server.process.pid
    created = [e for e in events(log) if e["event"] == "vdevice"]
    assert len(created) == 1 and created[0]["pid"] != master
    assert [e["event"] for e in events(log)].count("configure") == 1
    assert [e["event"] for e in events(log)].count("create_bindings") == 1
    assert events(log)[-1]["event"] == "release"  # graceful shutdown released the device


def test_gunicorn_workers_share_the_chip_through_the_service(hailo_bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    env = {
        "HAILO_DOUBLE_EVENTS": str(log),
        "HAILO_DOUBLE_DEVICE_LOCK": str(tmp_path / "device.lock"),
        "HAILO_PIPELINE_HAILO_MULTI_PROCESS": "true",
    }
    with AppServer(hailo_bundle, tmp_path, workers=2, env=env, with_hailo_double=True) as server:
        server.wait_ready()
        master = server.process.pid
    created = [e for e in events(log) if e["event"] == "vdevice"]
    assert len({e["pid"] for e in created}) == 2 and master not in {e["pid"] for e in created}, (
        events(log),
        server.log(),
    )
    assert all(e["multi_process_service"] and e["group_id"] == "SHARED" for e in created)


def test_chip_slower_than_the_timeout_never_turns_ready(hailo_bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    env = {
        "HAILO_DOUBLE_RUN_DELAY_MS": "200",
        "HAILO_PIPELINE_INFER_TIMEOUT_MS": "30",
        "HAILO_DOUBLE_EVENTS": str(log),
    }
    with AppServer(hailo_bundle, tmp_path, workers=1, env=env, with_hailo_double=True) as server:
        server.wait_listening()
        body = wait_for_state(server, "failed")
        assert body["reason"].startswith("timeout: HailoRT run failed (30 ms timeout)")
        # The worker that can never serve has already let go of the chip.
        assert events(log)[-1]["event"] == "release"


def test_a_chip_failing_after_start_turns_health_red_until_it_recovers(
    double: ModuleType, hailo_bundle: Path
) -> None:
    app = create_app(AppConfig(bundle_dir=hailo_bundle, backend="hailort", infer_timeout_ms=5))
    assert app.extensions["hailo_pipeline"].wait(30)
    client = app.test_client()
    body = {"x": json.loads((hailo_bundle / "model_metadata.json").read_text())["golden"]["window"]}
    assert client.get("/healthz").status_code == 200
    double.RUN_DELAY_S = 0.05
    try:
        for _ in range(3):
            answer = client.post("/infer", json=body)
            assert answer.status_code == 503 and answer.get_json()["error"] == "timeout"
    finally:
        double.RUN_DELAY_S = 0.0
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["state"] == "failing"
    assert "last 3 inferences failed; last: timeout" in health.get_json()["reason"]
    assert client.post("/infer", json=body).status_code == 200
    assert client.get("/healthz").status_code == 200
    app.extensions["hailo_pipeline"].close()


@pytest.mark.parametrize("garbage", [float("nan"), float("inf")])
def test_non_finite_output_is_a_503_never_a_200(
    double: ModuleType, hailo_bundle: Path, garbage: float
) -> None:
    app = create_app(AppConfig(bundle_dir=hailo_bundle, backend="hailort"))
    assert app.extensions["hailo_pipeline"].wait(30)
    body = {"x": json.loads((hailo_bundle / "model_metadata.json").read_text())["golden"]["window"]}
    double.OUTPUT_FILL = garbage
    try:
        answer = app.test_client().post("/infer", json=body)
    finally:
        double.OUTPUT_FILL = None
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "non_finite_output"
    assert "latent" not in answer.get_json()
    app.extensions["hailo_pipeline"].close()
