"""The HailoRT backend against the hailo_platform TEST DOUBLE (tests/doubles/hailo_platform, not Hailo
software): after-fork ownership, configured-model reuse, timeouts, thread safety, auto choice, chip data, and
what hailort v4.23.0 refuses (pyhailort.py, pyhailort.cpp, vdevice.cpp, rpc_definitions.hpp; see the double's
docstring for where each rule comes from)."""

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
from app_server import DOUBLES, AppServer, double_events, wait_for_state

from app.backends.base import BackendError
from app.backends.hailort_backend import HailoRTBackend, hef_z_score, output_roles
from app.backends.selection import choose_backend
from app.config import AppConfig
from app.factory import create_app
from bundle_contract.files import hefs


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(DOUBLES))
    monkeypatch.setenv("HAILO_DOUBLE_EVENTS", str(tmp_path / "events.jsonl"))
    monkeypatch.setenv("HAILO_DOUBLE_DEVICE_LOCK", str(tmp_path / "chip.lock"))  # this test's own chip
    sys.modules.pop("hailo_platform", None)
    module = importlib.import_module("hailo_platform")
    assert module.IS_TEST_DOUBLE
    yield module
    sys.modules.pop("hailo_platform", None)


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
        {arch: bundle / name for arch, name in hefs(metadata_of(bundle)).items()},
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
    log = double_events(tmp_path / "events.jsonl")
    assert [e["event"] for e in log] == ["vdevice", "create_infer_model", "configure", "create_bindings"]
    assert log[0]["scheduling_algorithm"] == "ROUND_ROBIN" and log[0]["multi_process_service"] is False
    assert log[2]["batch_size"] == 1
    backend.close()
    assert [e["event"] for e in double_events(tmp_path / "events.jsonl")][-2:] == ["shutdown", "release"]


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
    bindings = backend._slots[0].bindings
    bindings.input().set_buffer(np.ascontiguousarray(window.reshape(1, 100, 9)))
    backend._configured.run([bindings], 1000)
    raw_latent = bindings.output(backend._latent_name).get_buffer().reshape(-1)
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
        (
            {},
            {
                "method": "z_score_per_channel",
                "mean": [0] * 9,
                "std": [1] * 9,
                "channel_order": list("abcdefghi"),
            },
            "channel_order",
        ),
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


def test_multi_process_service_and_group(
    double: ModuleType, hailo_bundle: Path, tmp_path: Path, hailort_service: str
) -> None:
    loaded(hailo_bundle, multi_process=True, group_id="EDGE")
    first = double_events(tmp_path / "events.jsonl")[0]
    assert (first["multi_process_service"], first["group_id"]) == (True, "EDGE")


def test_every_run_has_the_timeout(double: ModuleType, hailo_bundle: Path, window: np.ndarray) -> None:
    backend = loaded(hailo_bundle, timeout_ms=5)
    double.RUN_DELAY_S = 0.05  # a wedged chip: the run would take 50 ms
    try:
        with pytest.raises(BackendError) as caught:
            backend.infer(window)
    finally:
        double.RUN_DELAY_S = 0.0
    assert caught.value.kind == "timeout" and "within the 5 ms timeout" in str(caught.value)
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
    bindings = backend._slots[0].bindings
    bindings.input().set_buffer(np.zeros((1, 100, 9), np.float32))
    double.RUN_DELAY_S = 0.02
    failures: list[Exception] = []

    def raw_run() -> None:
        try:
            backend._configured.run([bindings], 1000)
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
    assert failures and "still in flight" in str(failures[0])


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
    assert choice.backend == "onnxruntime" and "hailo_platform is not installed" in choice.reason


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
        assert health["backend"] == "hailort" and health["model_file"] == "tcn_encoder_hailo8.hef"
        assert health["hailo_devices"]["0000:01:00.0"]["board_name"] == "Hailo-8"
        text = server.metrics()
        assert (
            'hailo_pipeline_hailo_chip_temperature_celsius{device_id="0000:01:00.0",sensor="ts0"} 41.5'
            in text
        )
        assert 'board_name="Hailo-8"' in text and 'architecture="HAILO8"' in text
        master = server.process.pid
    created = [e for e in double_events(log) if e["event"] == "vdevice"]
    assert len(created) == 1 and created[0]["pid"] != master
    assert [e["event"] for e in double_events(log)].count("configure") == 1
    assert [e["event"] for e in double_events(log)].count("create_bindings") == 1
    assert double_events(log)[-1]["event"] == "release"  # graceful shutdown released the device


def test_gunicorn_workers_share_the_chip_through_the_service(
    hailo_bundle: Path, tmp_path: Path, hailort_service: str
) -> None:
    log = tmp_path / "events.jsonl"
    env = {
        "HAILO_DOUBLE_EVENTS": str(log),
        "HAILO_DOUBLE_DEVICE_LOCK": str(tmp_path / "device.lock"),
        "HAILO_PIPELINE_HAILO_MULTI_PROCESS": "true",
        "HAILORT_SERVICE_ADDRESS": hailort_service,
    }
    with AppServer(hailo_bundle, tmp_path, workers=2, env=env, with_hailo_double=True) as server:
        server.wait_ready()
        master = server.process.pid
    created = [e for e in double_events(log) if e["event"] == "vdevice"]
    assert len({e["pid"] for e in created}) == 2 and master not in {e["pid"] for e in created}, (
        double_events(log),
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
        assert body["reason"].startswith("timeout: HailoRT run did not finish within the 30 ms timeout")
        # The worker that can never serve has already let go of the chip.
        assert double_events(log)[-1]["event"] == "release"


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
    for slot in app.extensions["hailo_pipeline"]._served.backend._slots:
        if slot.job is not None:
            slot.job.wait(2000)  # the chip finishes the runs that timed out
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


# --- What hailort v4.23.0 refuses, and the backend's answers to it ------------------------------------------


def test_scheduling_algorithm_is_the_enum(double: ModuleType) -> None:
    """pyhailort.cpp v4.23.0: the setter takes the pybind11 SchedulingAlgorithm enum; the getter, uint32_t."""
    params = double.VDevice.create_params()
    assert params.scheduling_algorithm == double.HailoSchedulingAlgorithm.NONE.value  # Python's default
    with pytest.raises(TypeError, match="incompatible function arguments"):
        params.scheduling_algorithm = 1
    params.scheduling_algorithm = double.HailoSchedulingAlgorithm.ROUND_ROBIN
    assert params.scheduling_algorithm == 1


def test_the_service_needs_a_scheduler_and_its_socket(
    double: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    params = double.VDevice.create_params()
    params.multi_process_service = True
    with pytest.raises(double.HailoRTInvalidArgumentException, match="only with HailoRT scheduler"):
        double.VDevice(params)
    params.scheduling_algorithm = double.HailoSchedulingAlgorithm.ROUND_ROBIN
    monkeypatch.delenv("HAILORT_SERVICE_ADDRESS", raising=False)
    if not Path("/tmp/hailort_uds.sock").exists():  # rpc_definitions.hpp's default address
        with pytest.raises(
            double.HailoRTException, match=re.escape("not listening on unix:///tmp/hailort_uds.sock")
        ):
            double.VDevice(params)
    monkeypatch.setenv("HAILORT_SERVICE_ADDRESS", f"unix://{tmp_path / 'absent.sock'}")
    with pytest.raises(double.HailoRTException, match=re.escape("absent.sock")):
        double.VDevice(params)


def test_without_the_service_the_load_names_where_it_looked(
    double: ModuleType, hailo_bundle: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    address = f"unix://{tmp_path / 'hailort_uds.sock'}"
    monkeypatch.setenv("HAILORT_SERVICE_ADDRESS", address)
    with pytest.raises(BackendError) as caught:
        loaded(hailo_bundle, multi_process=True)
    assert caught.value.kind == "device_error"
    assert f"hailort.service must listen on {address}" in str(caught.value)


def test_one_process_holds_the_chip_without_the_service(double: ModuleType, hailort_service: str) -> None:
    """No test variable needed: a second direct VDevice is refused; service clients share the chip, and a
    direct opener cannot take it from the service."""
    params = double.VDevice.create_params()
    params.scheduling_algorithm = double.HailoSchedulingAlgorithm.ROUND_ROBIN
    first = double.VDevice(params)
    with pytest.raises(double.HailoRTException, match="HAILO_OUT_OF_PHYSICAL_DEVICES"):
        double.VDevice(params)
    first.release()
    params.multi_process_service = True
    clients = [double.VDevice(params), double.VDevice(params)]
    direct = double.VDevice.create_params()
    direct.scheduling_algorithm = double.HailoSchedulingAlgorithm.ROUND_ROBIN
    with pytest.raises(double.HailoRTException, match="HAILO_OUT_OF_PHYSICAL_DEVICES"):
        double.VDevice(direct)
    for client in clients:
        client.release()
    double.VDevice(direct).release()


def test_two_backends_share_the_chip_only_through_the_service(
    double: ModuleType, hailo_bundle: Path, hailort_service: str, window: np.ndarray
) -> None:
    """The live-update switch: the new release loads while the old one still serves."""
    old = loaded(hailo_bundle, multi_process=True)
    new = loaded(hailo_bundle, multi_process=True)
    assert new.infer(window).latent.shape == old.infer(window).latent.shape == (64,)
    old.close()
    new.close()
    single = loaded(hailo_bundle)
    with pytest.raises(BackendError, match="HAILO_OUT_OF_PHYSICAL_DEVICES"):
        loaded(hailo_bundle)
    single.close()


def test_unknown_stream_names_raise_not_found(double: ModuleType, hailo_bundle: Path) -> None:
    backend = loaded(hailo_bundle)
    with pytest.raises(double.HailoRTNotFoundException, match="no output named 'latent_embeddings'"):
        backend._infer_model.output("latent_embeddings")  # the HEF names outputs after its layers
    with pytest.raises(double.HailoRTNotFoundException):
        backend._slots[0].bindings.output("")  # two outputs: a name is required
    backend.close()


def test_the_double_refuses_buffers_of_a_job_in_flight(double: ModuleType, hailo_bundle: Path) -> None:
    """Control for the backend's timeout handling: reusing the bindings of a timed-out run, as a plain
    ``run()`` retry would, is refused until the job ends."""
    backend = loaded(hailo_bundle)
    slot = backend._slots[0]
    double.RUN_DELAY_S = 0.1
    try:
        with pytest.raises(double.HailoRTTimeout):
            backend._configured.run([slot.bindings], 5)
        with pytest.raises(ValueError, match="read-only"):
            np.subtract(np.zeros_like(slot.input), 1.0, out=slot.input)
        with pytest.raises(double.HailoRTException, match="still in flight"):
            slot.bindings.input().set_buffer(np.zeros_like(slot.input))
        with pytest.raises(double.HailoRTException, match="still in flight"):
            backend._configured.run([slot.bindings], 5)
    finally:
        double.RUN_DELAY_S = 0.0
    slot.job = None
    for _ in range(50):
        if slot.bindings.job is None:
            break
        threading.Event().wait(0.01)
    slot.bindings.input().set_buffer(slot.input)  # the job ended: the buffers are the app's again
    backend.close()


def test_a_timed_out_run_keeps_its_bindings_until_it_ends(
    double: ModuleType, hailo_bundle: Path, tmp_path: Path, window: np.ndarray
) -> None:
    backend = loaded(hailo_bundle, timeout_ms=5)
    expected = reference(hailo_bundle, window)
    double.RUN_DELAY_S = 0.2  # a chip that takes 200 ms
    try:
        for _ in range(2):
            with pytest.raises(BackendError, match="within the 5 ms timeout") as caught:
                backend.infer(window)
            assert caught.value.kind == "timeout"
        with pytest.raises(BackendError, match="not reusing their buffers") as caught:
            backend.infer(window)  # both sets of bindings still belong to the chip
        assert caught.value.kind == "timeout"
    finally:
        double.RUN_DELAY_S = 0.0
    for slot in backend._slots:
        slot.job.wait(2000)  # let the chip finish
    for _ in range(4):
        np.testing.assert_allclose(backend.infer(window).latent, expected, atol=1e-5)
    assert [e["event"] for e in double_events(tmp_path / "events.jsonl")].count("create_bindings") == 2
    backend.close()


def test_the_double_refuses_releasing_a_vdevice_its_model_keeps_alive(
    double: ModuleType, hailo_bundle: Path
) -> None:
    vdevice = double.VDevice(double.VDevice.create_params())
    infer_model = vdevice.create_infer_model(str(hailo_bundle / "tcn_encoder_hailo8.hef"))
    with pytest.raises(double.HailoRTException, match="InferModel made from it still live"):
        vdevice.release()
    del infer_model
    vdevice.release()


def test_close_frees_the_chip_even_with_a_run_in_flight(
    double: ModuleType, hailo_bundle: Path, window: np.ndarray
) -> None:
    backend = loaded(hailo_bundle, timeout_ms=5)
    double.RUN_DELAY_S = 0.5
    try:
        with pytest.raises(BackendError):
            backend.infer(window)
        backend.close()
    finally:
        double.RUN_DELAY_S = 0.0
    loaded(hailo_bundle).close()  # a direct opener gets the chip


@pytest.mark.parametrize(
    ("hef", "kind", "words"),
    [
        # refused by the backend after the InferModel exists
        ({"input_shape": [1, 50, 9]}, "bad_model", "input shape (1, 50, 9) is not NHWC 100x9"),
        ({"outputs": {"a": {"source": "latent_embeddings", "shape": [64]}}}, "bad_model", "outputs"),
        ({"test_double_hef": False}, "device_error", "HailoRT could not load"),  # refused by HailoRT
    ],
)
def test_a_failed_load_lets_go_of_the_chip(
    double: ModuleType, hailo_bundle: Path, tmp_path: Path, hef: dict, kind: str, words: str
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(hailo_bundle, bundle)
    spec = json.loads((bundle / "tcn_encoder_hailo8.hef").read_text())  # the double's chip is a HAILO8
    (bundle / "tcn_encoder_hailo8.hef").write_text(json.dumps({**spec, **hef}))
    with pytest.raises(BackendError) as caught:
        loaded(bundle)
    assert caught.value.kind == kind and words in str(caught.value)
    assert double_events(tmp_path / "events.jsonl")[-1]["event"] == "release"
    loaded(hailo_bundle).close()  # the chip is free for the next load in this process


# --- One .hef per chip family (issue 11 point 7) -----------------------------------------------------------


@pytest.mark.parametrize(("architecture", "hef"), [("HAILO8", "hailo8"), ("HAILO8L", "hailo8l")])
def test_each_chip_loads_the_hef_of_its_family(
    double: ModuleType,
    hailo_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    architecture: str,
    hef: str,
) -> None:
    monkeypatch.setattr(double, "DEVICE_ARCHITECTURE", architecture)
    backend = loaded(hailo_bundle)
    try:
        assert backend.hef_path.name == f"tcn_encoder_{hef}.hef"
        opened = [e for e in double_events(tmp_path / "events.jsonl") if e["event"] == "create_infer_model"]
        assert [Path(e["hef"]).name for e in opened] == [f"tcn_encoder_{hef}.hef"]
    finally:
        backend.close()


def test_the_architecture_the_role_passes_in_wins(
    double: ModuleType, hailo_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAILO_PIPELINE_HAILO_ARCHITECTURE", "HAILO8L")
    backend = loaded(hailo_bundle)
    assert backend.hef_path.name == "tcn_encoder_hailo8l.hef"
    backend.close()


def test_a_chip_without_its_hef_fails_with_the_reason_and_frees_the_chip(
    double: ModuleType, hailo_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / hailo_bundle.name
    shutil.copytree(hailo_bundle, bundle)
    (bundle / "tcn_encoder_hailo8l.hef").unlink()
    metadata = metadata_of(bundle)
    del metadata["model"]["hefs"]["hailo8l"]
    del metadata["files"]["tcn_encoder_hailo8l.hef"]
    (bundle / "model_metadata.json").write_text(json.dumps(metadata))
    monkeypatch.setattr(double, "DEVICE_ARCHITECTURE", "HAILO8L")
    with pytest.raises(
        BackendError, match=r"the chip is a HAILO8L \(hailo8l\) and the bundle carries hailo8"
    ) as caught:
        loaded(bundle)
    assert caught.value.kind == "no_hef_for_chip"
    assert double_events(tmp_path / "events.jsonl")[-1]["event"] == "release"
    # The health gate shows the reason; the CPU does not quietly take over.
    app = create_app(AppConfig(bundle_dir=bundle))
    assert not app.extensions["hailo_pipeline"].wait(30)
    health = app.test_client().get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["reason"].startswith("no_hef_for_chip: the chip is a HAILO8L")


def test_the_cpu_fallback_knob_serves_onnx_runtime_and_says_why(
    double: ModuleType, hailo_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(double, "DEVICE_ARCHITECTURE", "HAILO15H")  # a chip no .hef is for
    app = create_app(AppConfig(bundle_dir=hailo_bundle, allow_cpu_fallback=True))
    assert app.extensions["hailo_pipeline"].wait(60)
    health = app.test_client().get("/healthz").get_json()
    assert health["backend"] == "onnxruntime" and health["model_file"] == "tcn_encoder.onnx"
    assert health["backend_reason"].startswith("CPU fallback (HAILO_PIPELINE_ALLOW_CPU_FALLBACK=true)")
    assert "no_hef_for_chip" in health["backend_reason"]
    assert health["bundle_kind"] == "hef"


def test_a_chip_without_hailort_fails_unless_the_knob_allows_the_cpu(
    hailo_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "hailo_platform", None)  # python3-hailort missing on a chip Pi
    node = tmp_path / "hailo0"
    node.touch()
    metadata = metadata_of(hailo_bundle)
    with pytest.raises(BackendError, match="hailo_platform is not importable") as caught:
        choose_backend(AppConfig(bundle_dir=hailo_bundle), metadata, node)
    assert caught.value.kind == "accelerator_unusable"
    assert "HAILO_PIPELINE_ALLOW_CPU_FALLBACK=true" in str(caught.value)
    choice = choose_backend(AppConfig(bundle_dir=hailo_bundle, allow_cpu_fallback=True), metadata, node)
    assert choice.backend == "onnxruntime" and choice.reason.startswith("CPU fallback")


def test_an_onnx_only_bundle_runs_onnx_runtime_and_says_so(default_bundle: Path, tmp_path: Path) -> None:
    node = tmp_path / "hailo0"
    node.touch()  # even on a Pi with a chip
    choice = choose_backend(AppConfig(bundle_dir=default_bundle), metadata_of(default_bundle), node)
    assert choice.backend == "onnxruntime" and choice.reason.startswith("onnx-only bundle")
    app = create_app(AppConfig(bundle_dir=default_bundle, backend="onnxruntime"))
    assert app.extensions["hailo_pipeline"].wait(60)
    assert app.test_client().get("/healthz").get_json()["bundle_kind"] == "onnx-only"
