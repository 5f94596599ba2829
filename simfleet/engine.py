"""Make sure a docker engine answers on this machine: install Debian's docker.io and start dockerd if needed.

Installed packages never auto-start their services here (policy-rc.d), and PID 1 is not systemd, so dockerd is
started by hand as a detached process that outlives this command.
"""

import os
import shutil
import subprocess
import time

import docker
import docker.errors
import requests.exceptions

from simfleet.paths import DOCKERD_LOG

# Package -> the commands it must provide. The fleet is reached over real SSH, hence the client.
APT_TOOLS = {"docker.io": ("dockerd", "docker"), "debootstrap": ("debootstrap",), "openssh-client": ("ssh",)}
LOCAL_SOCKET = "unix:///var/run/docker.sock"
READY_TIMEOUT_S = 60.0
# Image builds, imports and saves of a few hundred MB exceed docker-py's 60 s default.
API_TIMEOUT_S = 900


class EngineError(RuntimeError):
    """The docker engine could not be installed or started."""


def find_tool(name: str) -> str | None:
    """Like `which`, but also in the sbin folders a non-login shell's PATH may lack (dockerd, debootstrap)."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def client() -> docker.DockerClient:
    return docker.from_env(timeout=API_TIMEOUT_S)


def _answers() -> bool:
    try:
        return bool(client().ping())
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, check=False).returncode == 0:
        return
    # A fresh machine may have no package lists yet; refresh once and retry.
    subprocess.run(["apt-get", "update"], env=env, check=True)
    subprocess.run(install, env=env, check=True)


def ensure_tools() -> None:
    """Install docker.io, debootstrap and an SSH client when their commands are missing."""
    missing = [pkg for pkg, commands in APT_TOOLS.items() if not all(find_tool(cmd) for cmd in commands)]
    if missing:
        print(f"simfleet: installing {' '.join(missing)}", flush=True)
        _apt_install(missing)


def _start_dockerd() -> None:
    dockerd = find_tool("dockerd")
    if dockerd is None:
        raise EngineError("dockerd is not installed (apt-get install docker.io)")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            [dockerd, f"--host={LOCAL_SOCKET}", "--storage-driver=overlay2"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # keep running after this command exits
        )


def ensure_engine() -> docker.DockerClient:
    """Return a client for a running engine, installing and starting one when none answers."""
    ensure_tools()
    if _answers():
        return client()
    if os.environ.get("DOCKER_HOST", LOCAL_SOCKET) != LOCAL_SOCKET:
        raise EngineError(
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; not starting a local dockerd"
        )
    print(f"simfleet: starting dockerd (log: {DOCKERD_LOG})", flush=True)
    _start_dockerd()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers():
            return client()
        time.sleep(0.25)
    raise EngineError(f"dockerd did not answer within {READY_TIMEOUT_S:.0f} s; see {DOCKERD_LOG}")
