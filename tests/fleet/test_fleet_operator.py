"""End-to-end, the operator's view: a real Prometheus (Debian's `prometheus`) scrapes the fleet's metrics-only
listeners from the file_sd the inventory generates, with the repo's alert rules; an app stopped behind a
healthy EdgeInfer fires HailoPipelineBackendDown and HailoPipelineEdgeInferFallback for that Pi alone;
`site.yml --check` tells the truth on the converged fleet and after a model change, whose rollout runs as
docs/AWX.md's workflow (a canary job, then sliced jobs); and uninstall gives EdgeInfer back its own env.

Prometheus runs on the control host; the Pis' internal network reaches it as the network's gateway, which
inventory/local/group_vars/pis.yml puts on the listeners' allow-list (and no other Pi).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_state import E2E_PREFIX, REPO, ROOT, Fleet, built_releases, deploy_plays, write_model_config

from fleetops.runner import PlaybookRun, run_playbook

pytestmark = [
    pytest.mark.fleet,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="apt-get install prometheus"),
]

PI1, PI2, PI3 = (f"{E2E_PREFIX}-pi-{index}" for index in (1, 2, 3))
METRICS_PORT = 9101
# Short intervals so the alerts fire within a watch interval or two of the fault, not minutes later: the test
# checks which Pi each rule names, not how long a rule waits (`for:`), which is the operator's setting.
SCRAPE_INTERVAL = "3s"
ALERT_FOR = ("for: 1m", "for: 10s")


@pytest.fixture(scope="module")
def play(fleet: Fleet) -> Callable[..., PlaybookRun]:
    def run(playbook: str, extravars: dict[str, Any] | None = None, **kwargs: Any) -> PlaybookRun:
        extravars = {"reports_dir": str(fleet.reports_dir), **(extravars or {})}
        return run_playbook(playbook, inventory=fleet.inventory, extravars=extravars, **kwargs)

    return run


@pytest.fixture(scope="module")
def deployed(fleet: Fleet, play: Callable[..., PlaybookRun]) -> Fleet:
    """The fleet on this tree's release (a converged re-run when an earlier file deployed it)."""
    run = play("site.yml")
    assert run.rc == 0, run.failure_messages()
    return fleet


def run_watch(fleet: Fleet, pi: str) -> str:
    code, out = fleet.sh(
        pi,
        "systemctl start hailo-inference-edgeinfer-watch.service && "
        "cat /var/lib/hailo-inference-watch/edgeinfer.prom",
    )
    assert code == 0, f"{pi}: the watch did not run: {out}"
    return out


def scrape(address: str, path: str = "/metrics", method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(f"http://{address}:{METRICS_PORT}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def firing(self, alertname: str) -> set[str]:
        """The `pi` label of every firing alert of that name."""
        return {
            alert["labels"].get("pi", "?")
            for alert in self.api("alerts")["alerts"]
            if alert["labels"]["alertname"] == alertname and alert["state"] == "firing"
        }

    def value(self, query: str) -> dict[str, float]:
        return {
            s["metric"].get("pi", "?"): float(s["value"][1]) for s in self.api("query", query=query)["result"]
        }

    def wait(self, what: str, condition: Callable[[], bool], timeout_s: float = 240.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                alerts = [
                    (a["labels"]["alertname"], a["labels"].get("pi"), a["state"])
                    for a in self.api("alerts")["alerts"]
                ]
                raise AssertionError(f"{what}: not within {timeout_s} s; alerts now {alerts}")
            time.sleep(2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(deployed: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Debian's prometheus with the repo's rules, scraping the targets file_sd.py writes from inventory."""
    folder = tmp_path_factory.mktemp("prometheus")
    (folder / "targets").mkdir()
    subprocess.run(
        [sys.executable, "prometheus/file_sd.py", "-i", str(deployed.inventory),
         "--out", str(folder / "targets" / "pis.json")],
        cwd=REPO, check=True, timeout=180,
    )  # fmt: skip
    rules = (REPO / "prometheus" / "alerts.yml").read_text()
    assert ALERT_FOR[0] in rules, "alerts.yml's waits moved: update this fixture"
    (folder / "alerts.yml").write_text(rules.replace(*ALERT_FOR))
    config = (REPO / "prometheus" / "prometheus.yml").read_text()
    config = config.replace("scrape_interval: 15s", f"scrape_interval: {SCRAPE_INTERVAL}")
    config = config.replace("evaluation_interval: 15s", f"evaluation_interval: {SCRAPE_INTERVAL}")
    assert SCRAPE_INTERVAL in config, "prometheus.yml's intervals moved: update this fixture"
    (folder / "prometheus.yml").write_text(config)
    port = free_port()
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{server.url}/-/ready", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "prometheus not ready in 60 s"
                time.sleep(1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_listener_serves_metrics_only_and_only_to_the_allow_list(deployed: Fleet) -> None:
    address = deployed.spec.address(PI1)
    watch = run_watch(deployed, PI1)
    assert "hailo_pipeline_edgeinfer_model_answers 1\n" in watch + "\n"
    status, text = scrape(address)
    assert status == 200
    assert "hailo_pipeline_backend_up 1\n" in text
    assert "hailo_pipeline_edgeinfer_model_answers 1\n" in text
    assert "hailo_pipeline_model_info{" in text  # the app's own metrics, through the listener
    assert scrape(address, "/infer", "POST")[0] == 405
    assert scrape(address, "/healthz")[0] == 404
    # The app itself is not reachable from the control host: it binds loopback and docker0 only.
    with pytest.raises(OSError):
        socket.create_connection((address, 8000), timeout=5).close()
    # Another Pi is not on the allow-list: its connection is closed without an answer (curl's code 000).
    _, out = deployed.sh(
        PI2, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 http://{address}:9101/metrics"
    )
    assert out == "000", f"{PI2} got HTTP {out} from {PI1}'s listener"


def test_prometheus_scrapes_every_pi_and_an_app_stopped_behind_edgeinfer_fires_its_alerts(
    deployed: Fleet, prometheus: Prometheus
) -> None:
    for pi in (PI1, PI2, PI3):
        run_watch(deployed, pi)
    prometheus.wait(
        "every Pi scraped with its app up",
        lambda: (
            prometheus.value('hailo_pipeline_backend_up{job="hailo_pipeline"}') == {PI1: 1, PI2: 1, PI3: 1}
        ),
        timeout_s=90,
    )
    assert prometheus.value("hailo_pipeline_edgeinfer_model_answers") == {PI1: 1, PI2: 1, PI3: 1}
    assert prometheus.firing("HailoPipelineBackendDown") == set()

    # The app stops on PI2; EdgeInfer stays up and silently answers with its stub.
    assert deployed.sh(PI2, "systemctl stop hailo-inference.service")[0] == 0
    try:
        assert '"ok"' in deployed.sh(PI2, "curl -s --max-time 5 http://127.0.0.1:8080/healthz")[1]
        watch = run_watch(deployed, PI2)
        assert "hailo_pipeline_edgeinfer_model_answers 0" in watch
        assert "hailo_pipeline_edgeinfer_watch_app_answers 0" in watch

        # From here the Pi's own timer runs the watch: starting it on every poll trips systemd's start limit.
        def both_fire() -> bool:
            return (
                {PI2}
                == prometheus.firing("HailoPipelineBackendDown")
                == prometheus.firing("HailoPipelineEdgeInferFallback")
            )

        prometheus.wait("BackendDown and EdgeInferFallback firing for PI2 alone", both_fire)
        assert prometheus.value("up") == {PI1: 1, PI2: 1, PI3: 1}  # the listener kept answering
    finally:
        assert deployed.sh(PI2, "systemctl start hailo-inference.service")[0] == 0
    deadline = time.monotonic() + 120
    while deployed.app_health(PI2).get("status") != "ok":
        assert time.monotonic() < deadline, f"{PI2}: app not ready again"
        time.sleep(2)

    def resolved() -> bool:
        return not prometheus.firing("HailoPipelineBackendDown") | prometheus.firing(
            "HailoPipelineEdgeInferFallback"
        )

    prometheus.wait("the alerts resolved once the app is back", resolved, timeout_s=150)


def changed_tasks(run: PlaybookRun, host: str) -> list[str]:
    """The tasks that changed `host`. The build's run_once tasks are left out: they change the control host,
    and a run reports them under whichever host comes first in its --limit."""
    return [
        str(data.get("task"))
        for event in run.events
        if event.get("event") == "runner_on_ok"
        and (data := event["event_data"]).get("host") == host
        and (data.get("res") or {}).get("changed")
        and not str(data.get("play", "")).startswith("Build | ")
    ]


def test_check_on_the_converged_fleet_predicts_no_change(
    deployed: Fleet, play: Callable[..., PlaybookRun]
) -> None:
    run = play("site.yml", check=True)
    assert run.rc == 0, run.failure_messages()
    for pi in (PI1, PI2, PI3):
        assert run.count("ok", pi) > 0
        assert run.count("changed", pi) == 0, f"{pi}: --check predicts {changed_tasks(run, pi)}"


def awx_inventory(fleet: Fleet, folder: Path) -> Path:
    """The fleet's inventory plus docs/AWX.md's groups: `canary` (one Pi) and the slices AWX would cut from
    `pis:!canary`, one Pi each."""
    folder.mkdir()
    (folder / "hosts.yml").symlink_to(fleet.inventory)
    (folder / "group_vars").symlink_to(fleet.inventory.parent / "group_vars")
    groups = {"canary": [PI1], "slice_1": [PI2], "slice_2": [PI3]}
    children = {group: {"hosts": {pi: None for pi in pis}} for group, pis in groups.items()}
    (folder / "awx.yml").write_text(json.dumps({"all": {"children": children}}))
    return folder


def awx_workflow(fleet: Fleet, inventory: Path, extravars: dict[str, Any]) -> dict[str, PlaybookRun]:
    """docs/AWX.md's workflow as separate runs: the canary job, then one job per slice once it succeeded."""
    extravars = {"reports_dir": str(fleet.reports_dir), **extravars}
    runs = {"canary": run_playbook("site.yml", inventory=inventory, extravars=extravars, limit="canary")}
    assert runs["canary"].rc == 0, runs["canary"].failure_messages()  # AWX's on-success edge
    for piece in ("slice_1", "slice_2"):
        limit = f"pis:!canary:&{piece}"
        runs[piece] = run_playbook("site.yml", inventory=inventory, extravars=extravars, limit=limit)
        assert runs[piece].rc == 0, runs[piece].failure_messages()
    return runs


def test_check_after_a_model_change_predicts_exactly_what_the_awx_workflow_switches(
    deployed: Fleet, play: Callable[..., PlaybookRun], tmp_path: Path
) -> None:
    """--check on the whole fleet names the release and the changed tasks of each Pi; the real rollout is then
    docs/AWX.md's workflow (a canary job, then sliced jobs as separate runs), which must do exactly that."""
    before = {pi: deployed.current_release(pi) for pi in (PI1, PI2, PI3)}
    manifests = {path.name: path.read_bytes() for path in (REPO / "build").glob("release-*.json")}
    model = {"model_config": str(write_model_config(tmp_path / "model_config.json", std_scale=1.25))}

    check = play("site.yml", model, check=True)
    assert check.rc == 0, check.failure_messages()
    (by_kind,) = check.facts("build_releases").values()
    predicted = {pi: by_kind[deployed.kind(pi)]["release"] for pi in before}
    assert set(predicted.values()).isdisjoint(before.values())
    assert {path.name: path.read_bytes() for path in (REPO / "build").glob("release-*.json")} == manifests, (
        "--check rewrote a manifest"
    )
    assert {pi: deployed.current_release(pi) for pi in before} == before, "--check switched a Pi"

    runs = awx_workflow(deployed, awx_inventory(deployed, tmp_path / "awx-inventory"), model)
    # One canary for the fleet: the canary job deploys it alone, no slice deploys a canary of its own.
    assert runs["canary"].hosts_with("ok") - {"localhost"} == {PI1}
    assert deploy_plays(runs["canary"], PI1) >= {"Deploy | canary"}
    job_of = {PI1: runs["canary"], PI2: runs["slice_1"], PI3: runs["slice_2"]}
    for piece, pi in (("slice_1", PI2), ("slice_2", PI3)):
        assert runs[piece].hosts_with("ok") - {"localhost"} == {pi}
        assert "Deploy | canary" not in deploy_plays(runs[piece], pi)
        assert "Deploy | rolling batches" in deploy_plays(runs[piece], pi)
    assert built_releases(deployed) == predicted
    for pi in before:
        assert deployed.current_release(pi) == predicted[pi]
        predicted_tasks, done_tasks = set(changed_tasks(check, pi)), set(changed_tasks(job_of[pi], pi))
        assert predicted_tasks == done_tasks, (
            f"{pi}: --check predicted {sorted(predicted_tasks - done_tasks)} that did not change, "
            f"missed {sorted(done_tasks - predicted_tasks)}"
        )

    # Back to this tree's model by a switch, so the next test starts from the release it expects.
    back = play("rollback.yml")
    assert back.rc == 0, back.failure_messages()
    assert {pi: deployed.current_release(pi) for pi in before} == before


def edgeinfer_latents(fleet: Fleet, pi: str, calls: int = 2) -> list[list[float]]:
    # The golden window, from a Pi that still has the bundle.
    code, metadata = fleet.sh(PI1, f"cat {ROOT}/current/bundle/model_metadata.json")
    assert code == 0, metadata
    out = json.dumps({"x": json.loads(metadata)["golden"]["window"]})
    latents = []
    for _ in range(calls):
        code, answer = fleet.sh(
            pi,
            f"curl -s --max-time 10 -H 'Content-Type: application/json' -d '{out}' "
            "http://127.0.0.1:8080/api/v1/analysis/infer",
        )
        assert code == 0 and answer.startswith("{"), answer
        latents.append(json.loads(answer)["latent"])
    return latents


def test_uninstall_gives_edgeinfer_back_its_own_env_then_a_redeploy_converges(
    deployed: Fleet, play: Callable[..., PlaybookRun]
) -> None:
    project = "/home/pi/pisrv_vapor_docker"
    image = deployed.client.containers.get(PI3).image
    pristine = deployed.client.containers.run(
        image, entrypoint=["cat", f"{project}/.env"], remove=True, network_mode="none"
    ).decode()
    release = deployed.current_release(PI3)  # its own kind's (trixie's runtime), back after the redeploy

    run = play("playbooks/uninstall.yml", limit=PI3)
    assert run.rc == 0, run.failure_messages()
    assert run.count("changed", PI3) > 0
    assert run.hosts_with("ok") == {PI3}  # --limit: the other Pis were not touched

    assert deployed.sh(PI3, f"cat {project}/.env")[1] == pristine.strip()
    assert deployed.sh(PI3, f"ls -A {project}")[1].split() == [".env", ".env.example", "docker-compose.yml"]
    env = deployed.edgeinfer_running_env(PI3)
    assert env["USE_REAL_MODEL"] == "false"
    assert (
        env["MODEL_BACKEND_URL"] == "http://hailo-inference:9000/infer"
    )  # the owner's value, from before us
    first, second = edgeinfer_latents(deployed, PI3)
    assert first != second  # EdgeInfer's own random stub
    assert deployed.sh(PI3, f"test -e {ROOT}")[0] != 0
    assert deployed.sh(PI3, "id hailo-inference")[0] != 0
    _, units = deployed.sh(PI3, "ls /etc/systemd/system | grep hailo-inference")
    assert units == "", units
    assert deployed.app_health(PI1).get("status") == "ok"

    again = play("playbooks/uninstall.yml", limit=PI3)
    assert again.rc == 0, again.failure_messages()
    assert again.count("changed", PI3) == 0

    # Redeploy the Pi, so the fleet ends converged on one verified release for the next file.
    back = play("site.yml", limit=f"{PI3}:localhost")
    assert back.rc == 0, back.failure_messages()
    assert deployed.current_release(PI3) == release
    assert deployed.app_health(PI3).get("status") == "ok"
    assert deployed.edgeinfer_running_env(PI3)["USE_REAL_MODEL"] == "true"
