"""gunicorn settings of the inference app. `python -m app` (what the Pi's systemd unit runs) passes this file;
flags and HAILO_PIPELINE_* variables feed the values below.

Bind: the CLI passes `--bind`; on a Pi that is the app's port (inference_app_port) on 127.0.0.1 and on the
docker0 gateway (172.17.0.1), which `host.docker.internal:host-gateway` resolves to inside EdgeInfer's
container. Never 0.0.0.0: nothing beyond the Pi and its containers may reach the model.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.http import message

from app import handover
from app.config import DEFAULT_BIND

# EdgeInfer sends `Content-Type: application/json` twice (docs/EDGEINFER_CONTRACT.md); gunicorn 27
# answers a repeated Content-Type with its own 400 (RFC 9110 5.3 singleton field) before the app sees it, and
# has no setting to relax it. The app reads only JSON and checks the type itself; the Host check stays.
message.RFC9110_5_3_SINGLETON_FIELDS = message.RFC9110_5_3_SINGLETON_FIELDS - {"CONTENT-TYPE"}

bind = [DEFAULT_BIND]
wsgi_app = "app.wsgi:application"

# Pi 5: 2 workers x 2 threads, one inference per core; one thread parses while the other runs the model, more
# only queue for the GIL (issue 15). HailoRT without hailort.service: one process, so `python -m app` sets 1.
workers = int(os.environ.get("HAILO_PIPELINE_WORKERS", "2"))
threads = int(os.environ.get("HAILO_PIPELINE_THREADS", "2"))
worker_class = "gthread"
# Never preload: a HailoRT VDevice belongs to the process that opened it, so each worker loads after the fork.
preload_app = False

timeout = 30  # a worker stuck for 30 s (wedged driver call) is killed and replaced
graceful_timeout = 10  # SIGTERM: in-flight requests get 10 s, well within systemd's stop timeout
keepalive = 30  # EdgeInfer's client may reuse connections; reconnecting would cost latency per window
# The heartbeat file lives in RAM: on an SD card a slow fsync could make the master kill a healthy worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
loglevel = os.environ.get("HAILO_PIPELINE_LOG_LEVEL", "info").lower()
errorlog = "-"
# No gunicornc control socket: nothing uses it, it would land in the service user's $HOME, and two instances
# on one host would fight over the same path.
control_socket_disable = True
accesslog = None  # hundreds of requests/s: per-request lines would cost more than the inference

# prometheus_client picks its multiprocess mode from this variable at import time, in every worker.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hailo-pipeline-metrics-")


# Set in a master re-exec'd to switch releases (app/handover.py): counts its first workers as they get ready.
_READY: handover.ReadyCount | None = None


def on_starting(server: Any) -> None:
    """Counters from a previous run would be summed into this one: start every run with an empty folder.
    A master taking over keeps them: the old release's workers still write there, and counters carry on."""
    global _READY
    handover.set_reexec_target(server)
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    if handover.taking_over():
        _READY = handover.ReadyCount(server.cfg.workers)
    else:
        for stale in folder.glob("*.db"):
            stale.unlink()
    server.log.info("metrics folder %s", folder)


def post_worker_init(worker: Any) -> None:
    """A worker of a master taking over serves only once its model passed the golden window."""
    if handover.taking_over():
        handover.load_before_serving(worker.wsgi)
        handover.retire_old_master(_READY, worker.ppid)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    # Drops the dead worker's live gauges (RSS, model info, chip temperature) from /metrics.
    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    service = app.extensions.get("hailo_pipeline") if app is not None else None
    if service is not None:
        service.close()  # release the VDevice before the process goes


def on_exit(server: Any) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
