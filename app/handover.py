"""Switching releases with no gap: gunicorn's on-the-fly upgrade, the new release proven before it serves.

A deploy or rollback points `current` at another release, then `systemctl reload` sends USR2 to the running
master. gunicorn forks and execs a new master that inherits the listening sockets (gunicorn/arbiter.py,
`Arbiter.reexec`), so connections queue on the same sockets throughout and none is refused. This module adds:
- the new master is exec'd as `python -m app` through `current` (set_reexec_target), so it runs the new
  release's venv, code and bundle, not the old master's own command line;
- each of its workers loads, warms up and checks the golden window *before* it accepts (load_before_serving):
  a release that cannot serve makes its workers fail to boot, gunicorn halts that master, and the old one,
  which never stopped, keeps serving;
- when the last new worker is ready, it tells systemd the new master is the service's main process and sends
  the old master SIGTERM, gunicorn's graceful stop: old workers finish their in-flight requests
  (graceful_timeout) and exit (retire_old_master).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
from typing import Any

from gunicorn import systemd

log = logging.getLogger(__name__)

# gunicorn puts the old master's pid here in the environment of a master it re-exec'd, and drops it once that
# master is promoted (the old one gone); workers forked before that inherit it.
OLD_MASTER_ENV = "GUNICORN_PID"
# The command line the new master is exec'd with, as JSON; `python -m app` (app/cli.py) sets it.
REEXEC_ARGV_ENV = "HAILO_PIPELINE_REEXEC_ARGV"


class HandoverRefused(RuntimeError):
    """The new release could not serve: its worker fails to boot and the old release keeps serving."""


def taking_over() -> bool:
    """True in a master re-exec'd by USR2 (and its first workers) while the old master still runs."""
    return OLD_MASTER_ENV in os.environ


def reexec_argv(python: str, cli_args: list[str]) -> str:
    """What app/cli.py exports: the interpreter through `current` (unresolved), `-m app` and its flags."""
    return json.dumps([python, "-m", "app", *cli_args])


def set_reexec_target(server: Any) -> None:
    """Point gunicorn's re-exec at `python -m app` instead of `python <resolved path>/gunicorn/__main__.py`
    (which would run the old release, as a script). START_CTX's cwd is gunicorn's getcwd(): $PWD when it names
    the working directory, which the unit sets to `current`, so the new master starts in the new release."""
    argv = os.environ.get(REEXEC_ARGV_ENV)
    if argv:
        args = json.loads(argv)
        server.START_CTX[0] = args[0]
        server.START_CTX["args"] = args


class ReadyCount:
    """How many of a new master's first workers are ready; shared across the fork (created in the master)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._count = multiprocessing.Value("i", 0)

    def one_more(self) -> bool:
        """Count this worker; True for exactly the worker that makes them all ready."""
        with self._count.get_lock():
            self._count.value += 1
            return self._count.value == self.workers


def load_before_serving(app: Any) -> None:
    """Load, warm up and check the golden window in this worker now, before gunicorn lets it accept."""
    service = app.extensions["hailo_pipeline"]
    service.load()
    if service.state != "ready":
        raise HandoverRefused(f"the new release cannot serve, the old one keeps serving: {service.reason}")


def retire_old_master(ready: ReadyCount | None, master_pid: int) -> None:
    """Called in each ready worker of a master taking over; the last one completes the handover."""
    if ready is None or not ready.one_more():
        return
    old = os.environ[OLD_MASTER_ENV]
    # The new master becomes the unit's main process before the old one exits, so systemd neither sees the
    # service stop nor kills the new master with it (NotifyAccess=all in the unit; a no-op outside systemd).
    systemd.sd_notify(f"MAINPID={master_pid}", log)
    log.info("all %d workers of the new release are ready: retiring the old master %s", ready.workers, old)
    try:
        os.kill(int(old), signal.SIGTERM)
    except ProcessLookupError:
        log.warning("the old master %s was already gone", old)
