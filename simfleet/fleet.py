"""The simulated fleet: hp-pi-1..N systemd containers on the internal network hp-fleet.

Each Pi gets the flags that let systemd run as PID 1 without --privileged, plus what its own docker engine
needs (EdgeInfer runs under compose inside it), a named volume for /var/lib/docker (overlay2 cannot sit on the
container's overlay root), and a fixed address so the inventory stays right across stop/start.
"""

import contextlib
import ipaddress
import json
import os
import re
import socket
import time
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from simfleet import inventory
from simfleet.images import PI_IMAGE, ROLE_LABEL
from simfleet.sshkey import ensure_ssh_key

NETWORK = "hp-fleet"
PI_PREFIX = "hp-pi-"
FLEET_LABELS = {ROLE_LABEL: "fleet"}
READY_TIMEOUT_S = 180.0
POLL_S = 0.3
EDGEINFER_HEALTHZ = "http://127.0.0.1:8080/healthz"

# From ../shared/docs/TEST_FLEET.md: systemd as PID 1 (--privileged fails on these VMs), then nested docker.
CAPABILITIES = ["SYS_ADMIN", "NET_ADMIN", "NET_RAW", "MKNOD"]
SECURITY_OPT = ["seccomp=unconfined", "apparmor=unconfined"]


class FleetError(RuntimeError):
    """The fleet could not be brought into the requested state."""


def subnet() -> ipaddress.IPv4Network:
    # Away from docker's default pools (172.17-31/16, 192.168/16) so the Pis' own docker never collides.
    return ipaddress.IPv4Network(os.environ.get("SIMFLEET_SUBNET", "10.213.7.0/24"))


def pi_name(index: int) -> str:
    return f"{PI_PREFIX}{index}"


def pi_index(name: str) -> int:
    match = re.fullmatch(rf"(?:{PI_PREFIX})?(\d+)", name)
    if not match or int(match.group(1)) < 1:
        raise FleetError(f"{name!r} is not a simulated Pi name (hp-pi-N or N)")
    return int(match.group(1))


def pi_address(index: int) -> str:
    net = subnet()
    if index + 10 >= net.num_addresses - 1:
        raise FleetError(f"subnet {net} has no room for {pi_name(index)}")
    return str(net.network_address + 10 + index)


def _fleet_containers(client: docker.DockerClient) -> dict[str, Container]:
    found = client.containers.list(all=True, filters={"label": f"{ROLE_LABEL}=fleet"})
    return {c.name: c for c in found if re.fullmatch(rf"{PI_PREFIX}\d+", c.name or "")}


def _ensure_network(client: docker.DockerClient) -> None:
    if client.networks.list(names=[NETWORK], filters={"name": f"^{NETWORK}$"}):
        return
    net = subnet()
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=str(net), gateway=str(net.network_address + 1))]
    )
    # internal: no route off this machine, like a lab without internet; the host still reaches the Pis.
    client.networks.create(NETWORK, driver="bridge", internal=True, ipam=ipam, labels=FLEET_LABELS)


def _volume_name(name: str) -> str:
    return f"{name}-docker"


def _create_pi(client: docker.DockerClient, index: int) -> Container:
    name = pi_name(index)
    volume = _volume_name(name)
    try:
        client.volumes.get(volume)  # kept from an earlier container of this Pi: its docker state is this Pi's
    except docker.errors.NotFound:
        client.volumes.create(volume, labels=FLEET_LABELS)
    return client.containers.run(
        PI_IMAGE,
        name=name,
        hostname=name,
        detach=True,
        labels=FLEET_LABELS,
        network=NETWORK,
        networking_config={NETWORK: client.api.create_endpoint_config(ipv4_address=pi_address(index))},
        cgroupns="host",
        volumes={
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            volume: {"bind": "/var/lib/docker", "mode": "rw"},
        },
        tmpfs={"/run": "", "/run/lock": ""},
        cap_add=CAPABILITIES,
        security_opt=SECURITY_OPT,
        stop_signal="SIGRTMIN+3",  # systemd's clean-shutdown signal: stop takes 0.3 s instead of 10 s
    )


def _ssh_answers(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=1.0) as sock:
            sock.settimeout(1.0)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _edgeinfer_answers(container: Container) -> bool:
    try:
        result = container.exec_run(["curl", "-fsS", "--max-time", "2", EDGEINFER_HEALTHZ])
    except docker.errors.APIError:
        return False
    if result.exit_code != 0:
        return False
    try:
        return json.loads(result.output).get("ok") is True
    except (ValueError, AttributeError):
        return False


def _wait_ready(client: docker.DockerClient, names: list[str], started: float) -> dict[str, float]:
    """Wait until every Pi has sshd and EdgeInfer answering; return seconds from `started` per Pi."""
    pending = set(names)
    ready_after: dict[str, float] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pending:
        for name in sorted(pending):
            container = client.containers.get(name)
            if container.status != "running":
                raise FleetError(f"{name} is {container.status}; `docker logs {name}` shows why")
            if _ssh_answers(pi_address(pi_index(name))) and _edgeinfer_answers(container):
                ready_after[name] = time.monotonic() - started
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise FleetError(
                f"not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(sorted(pending))} "
                "(check `docker exec NAME systemctl --failed`)"
            )
        if pending:
            time.sleep(POLL_S)
    return ready_after


def up(client: docker.DockerClient, count: int) -> str:
    """Bring the fleet to exactly `count` ready Pis; write and return the inventory."""
    key_path = ensure_ssh_key()
    _ensure_network(client)
    image_id = client.images.get(PI_IMAGE).id
    existing = _fleet_containers(client)
    wanted = [pi_name(i) for i in range(1, count + 1)]
    for name, container in existing.items():
        if name not in wanted:
            _remove_pi(client, container)
    started = time.monotonic()
    for index, name in enumerate(wanted, start=1):
        container = existing.get(name)
        if container is not None and container.image is not None and container.image.id != image_id:
            print(f"simfleet: {name} runs an older {PI_IMAGE}; recreating it", flush=True)
            container.remove(force=True)
            container = None
        if container is None:
            _create_pi(client, index)
        elif container.status != "running":
            container.start()
    for name, seconds in sorted(_wait_ready(client, wanted, started).items(), key=lambda kv: pi_index(kv[0])):
        print(f"simfleet: {name} ready after {seconds:.1f} s", flush=True)
    return inventory.write({name: pi_address(pi_index(name)) for name in wanted}, key_path)


def _remove_pi(client: docker.DockerClient, container: Container) -> None:
    name = container.name or ""
    container.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(_volume_name(name)).remove(force=True)


def down(client: docker.DockerClient) -> None:
    """Remove every fleet Pi, its docker volume, and the fleet network (nothing else)."""
    for container in _fleet_containers(client).values():
        _remove_pi(client, container)
    for volume in client.volumes.list(filters={"label": f"{ROLE_LABEL}=fleet"}):
        volume.remove(force=True)
    for network in client.networks.list(names=[NETWORK], filters={"label": f"{ROLE_LABEL}=fleet"}):
        if network.name == NETWORK:
            network.remove()
    inventory.remove()
    print("simfleet: fleet removed")


def _get_pi(client: docker.DockerClient, name: str) -> Container:
    full = pi_name(pi_index(name))
    container = _fleet_containers(client).get(full)
    if container is None:
        raise FleetError(f"{full} does not exist (python -m simfleet up)")
    return container


def stop(client: docker.DockerClient, name: str) -> None:
    """Power a Pi off: its address stops answering, as an unplugged Pi would."""
    container = _get_pi(client, name)
    container.stop(timeout=10)
    print(f"simfleet: {container.name} stopped")


def start(client: docker.DockerClient, name: str) -> None:
    container = _get_pi(client, name)
    started = time.monotonic()
    container.start()
    seconds = _wait_ready(client, [container.name or ""], started)[container.name or ""]
    print(f"simfleet: {container.name} ready after {seconds:.1f} s")


@dataclass(frozen=True)
class PiStatus:
    name: str
    state: str
    address: str
    ssh: bool
    edgeinfer: bool

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.ssh and self.edgeinfer


def status(client: docker.DockerClient) -> list[PiStatus]:
    rows = []
    for name, container in sorted(_fleet_containers(client).items(), key=lambda kv: pi_index(kv[0])):
        address = pi_address(pi_index(name))
        running = container.status == "running"
        rows.append(
            PiStatus(
                name=name,
                state=container.status,
                address=address,
                ssh=running and _ssh_answers(address),
                edgeinfer=running and _edgeinfer_answers(container),
            )
        )
    return rows


def format_status(rows: list[PiStatus]) -> str:
    if not rows:
        return "no simulated Pis (python -m simfleet up)"
    lines = [f"{'name':<10} {'state':<9} {'address':<15} {'ssh':<4} edgeinfer"]
    for row in rows:
        ssh, ei = ("yes" if row.ssh else "no"), ("yes" if row.edgeinfer else "no")
        lines.append(f"{row.name:<10} {row.state:<9} {row.address:<15} {ssh:<4} {ei}")
    return "\n".join(lines)
