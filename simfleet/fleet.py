"""The simulated fleet: hp-pi-1..N systemd containers on the internal network hp-fleet.

Each Pi gets the flags that let systemd run as PID 1 without --privileged, plus what its own docker engine
needs (EdgeInfer runs under compose inside it), a named volume for /var/lib/docker (overlay2 cannot sit on the
container's overlay root), and a fixed address so the inventory stays right across stop/start.
"""

import contextlib
import hashlib
import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from simfleet import inventory
from simfleet.images import PI_IMAGES, ROLE_LABEL
from simfleet.paths import inventory_file
from simfleet.sshkey import ensure_ssh_key, public_key

FLEET_LABEL = "io.hailo-pipeline.simfleet.fleet"
CONFIG_LABEL = "io.hailo-pipeline.simfleet.config"
READY_TIMEOUT_S = 180.0
POLL_S = 0.3
# The Pi image's own EdgeInfer, as its compose file (pi_image/pisrv_vapor_docker) publishes it: simfleet
# checks what it built, not group_vars' edgeinfer_url, which is where the roles expect EdgeInfer.
EDGEINFER_HEALTHZ = "http://127.0.0.1:8080/healthz"
TRIXIE_EVERY = 3

# simfleet/README.md, "Container flags": systemd as PID 1 (--privileged fails on our VMs), then nested docker.
# SYS_PTRACE on top: `docker exec` (so healthchecks too) into a nested container running as a non-root user
# opens that process's namespaces, which the kernel allows a different uid only with CAP_SYS_PTRACE.
CAPABILITIES = ["SYS_ADMIN", "NET_ADMIN", "NET_RAW", "MKNOD", "SYS_PTRACE"]
SECURITY_OPT = ["seccomp=unconfined", "apparmor=unconfined"]
TMPFS = {"/run": "", "/run/lock": ""}
STOP_SIGNAL = "SIGRTMIN+3"  # systemd's clean-shutdown signal: stop takes 0.3 s instead of 10 s
# A Pi created with other run flags than these is recreated by `up`, like one running an older image.
RUN_CONFIG = hashlib.sha256(
    json.dumps([CAPABILITIES, SECURITY_OPT, TMPFS, STOP_SIGNAL]).encode()
).hexdigest()[:12]


class FleetError(RuntimeError):
    """The fleet could not be brought into the requested state."""


@dataclass(frozen=True)
class FleetSpec:
    """Names and addresses of one fleet: the default is the demo fleet; tests use their own prefix/subnet."""

    prefix: str = "hp"
    # Away from docker's default pools (172.17-31/16, 192.168/16) so the Pis' own docker never collides.
    subnet: str = "10.213.7.0/24"
    inventory_path: Path = field(default_factory=inventory_file)

    @property
    def network(self) -> str:
        return f"{self.prefix}-fleet"

    @property
    def labels(self) -> dict[str, str]:
        return {ROLE_LABEL: "fleet", FLEET_LABEL: self.prefix}

    def pi_name(self, index: int) -> str:
        return f"{self.prefix}-pi-{index}"

    def pi_index(self, name: str) -> int:
        match = re.fullmatch(rf"(?:{re.escape(self.prefix)}-pi-)?(\d+)", name)
        if not match or int(match.group(1)) < 1:
            raise FleetError(f"{name!r} is not a simulated Pi name ({self.prefix}-pi-N or N)")
        return int(match.group(1))

    def address(self, name: str) -> str:
        net = ipaddress.IPv4Network(self.subnet)
        offset = 10 + self.pi_index(name)
        if offset >= net.num_addresses - 1:
            raise FleetError(f"subnet {net} has no room for {name}")
        return str(net.network_address + offset)

    def volume(self, name: str) -> str:
        return f"{name}-docker"

    def suite(self, name: str) -> str:
        """The Raspberry Pi OS release this Pi runs: every third Pi is on trixie (what a Pi flashed today
        runs), the others on bookworm, so any fleet of three or more holds both, as fleets in the field do."""
        return "trixie" if self.pi_index(name) % TRIXIE_EVERY == 0 else "bookworm"


def _fleet_containers(client: docker.DockerClient, spec: FleetSpec) -> dict[str, Container]:
    found = client.containers.list(all=True, filters={"label": f"{ROLE_LABEL}=fleet"})
    pattern = rf"{re.escape(spec.prefix)}-pi-\d+"
    return {c.name: c for c in found if c.name and re.fullmatch(pattern, c.name)}


def _ensure_network(client: docker.DockerClient, spec: FleetSpec) -> None:
    if any(net.name == spec.network for net in client.networks.list(names=[spec.network])):
        return
    net = ipaddress.IPv4Network(spec.subnet)
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=str(net), gateway=str(net.network_address + 1))]
    )
    # internal: no route off this machine, like a lab without internet; the host still reaches the Pis.
    client.networks.create(spec.network, driver="bridge", internal=True, ipam=ipam, labels=spec.labels)


def _create_pi(client: docker.DockerClient, spec: FleetSpec, name: str) -> Container:
    volume = spec.volume(name)
    try:
        client.volumes.get(volume)  # kept from an earlier container of this Pi: its docker state is this Pi's
    except docker.errors.NotFound:
        client.volumes.create(volume, labels=spec.labels)
    return client.containers.run(
        PI_IMAGES[spec.suite(name)],
        name=name,
        hostname=name,
        detach=True,
        labels={**spec.labels, CONFIG_LABEL: RUN_CONFIG},
        network=spec.network,
        networking_config={spec.network: client.api.create_endpoint_config(ipv4_address=spec.address(name))},
        cgroupns="host",
        volumes={
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            volume: {"bind": "/var/lib/docker", "mode": "rw"},
        },
        tmpfs=TMPFS,
        cap_add=CAPABILITIES,
        security_opt=SECURITY_OPT,
        stop_signal=STOP_SIGNAL,
    )


def _authorize_key(container: Container) -> None:
    """Let this checkout's test key log in as pi (idempotent; another checkout's key stays valid too)."""
    script = (
        'set -e; f=/home/pi/.ssh/authorized_keys; touch "$f"; grep -qxF "$KEY" "$f" || echo "$KEY" >> "$f"; '
        'chown pi:pi "$f"; chmod 0600 "$f"'
    )
    key = public_key().decode().strip()
    result = container.exec_run(["sh", "-c", script], environment={"KEY": key})
    if result.exit_code != 0:
        raise FleetError(f"could not authorize the test key on {container.name}: {result.output.decode()}")


def ssh_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1.0) as sock:
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


def _wait_ready(
    client: docker.DockerClient, spec: FleetSpec, names: list[str], started: float
) -> dict[str, float]:
    """Wait until every Pi has sshd and EdgeInfer answering; return seconds from `started` per Pi."""
    pending = set(names)
    ready_after: dict[str, float] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pending:
        for name in sorted(pending):
            container = client.containers.get(name)
            if container.status != "running":
                raise FleetError(f"{name} is {container.status}; `docker logs {name}` shows why")
            if ssh_answers(spec.address(name)) and _edgeinfer_answers(container):
                ready_after[name] = time.monotonic() - started
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise FleetError(
                f"not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(sorted(pending))} "
                "(see `docker exec NAME systemctl --failed`)"
            )
        if pending:
            time.sleep(POLL_S)
    return ready_after


def up(client: docker.DockerClient, count: int, spec: FleetSpec | None = None) -> str:
    """Bring the fleet to exactly `count` ready Pis; write and return the inventory."""
    spec = spec or FleetSpec()
    key_path = ensure_ssh_key()
    _ensure_network(client, spec)
    image_ids = {suite: client.images.get(tag).id for suite, tag in PI_IMAGES.items()}
    existing = _fleet_containers(client, spec)
    wanted = [spec.pi_name(i) for i in range(1, count + 1)]
    for name, container in existing.items():
        if name not in wanted:
            _remove_pi(client, spec, container)
    started = time.monotonic()
    for name in wanted:
        container = existing.get(name)
        if container is not None and (
            container.attrs["Image"] != image_ids[spec.suite(name)]
            or container.labels.get(CONFIG_LABEL) != RUN_CONFIG
        ):
            # A new container is a new Pi: its docker volume must not carry the old Pi's EdgeInfer state.
            image = PI_IMAGES[spec.suite(name)]
            print(f"simfleet: {name} is not on {image} or has older flags; recreating it", flush=True)
            _remove_pi(client, spec, container)
            container = None
        if container is None:
            container = _create_pi(client, spec, name)
        elif container.status != "running":
            container.start()
        _authorize_key(container)
    for name, seconds in sorted(_wait_ready(client, spec, wanted, started).items(), key=lambda kv: kv[1]):
        print(f"simfleet: {name} ready after {seconds:.1f} s", flush=True)
    return inventory.write({name: spec.address(name) for name in wanted}, key_path, spec.inventory_path)


def _remove_pi(client: docker.DockerClient, spec: FleetSpec, container: Container) -> None:
    name = container.name or ""
    container.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):  # never created, or removed by hand
        client.volumes.get(spec.volume(name)).remove(force=True)


def down(client: docker.DockerClient, spec: FleetSpec | None = None) -> None:
    """Remove this fleet's Pis, their docker volumes, its network and inventory (nothing else)."""
    spec = spec or FleetSpec()
    for container in _fleet_containers(client, spec).values():
        _remove_pi(client, spec, container)
    for volume in client.volumes.list(filters={"label": f"{FLEET_LABEL}={spec.prefix}"}):
        volume.remove(force=True)
    for network in client.networks.list(
        names=[spec.network], filters={"label": f"{FLEET_LABEL}={spec.prefix}"}
    ):
        if network.name == spec.network:
            network.remove()
    spec.inventory_path.unlink(missing_ok=True)
    print(f"simfleet: fleet {spec.prefix} removed")


def _get_pi(client: docker.DockerClient, spec: FleetSpec, name: str) -> Container:
    full = spec.pi_name(spec.pi_index(name))
    container = _fleet_containers(client, spec).get(full)
    if container is None:
        raise FleetError(f"{full} does not exist (python -m simfleet up)")
    return container


def stop(client: docker.DockerClient, name: str, spec: FleetSpec | None = None) -> None:
    """Power a Pi off: its address stops answering, as an unplugged Pi would."""
    container = _get_pi(client, spec or FleetSpec(), name)
    container.stop(timeout=10)
    print(f"simfleet: {container.name} stopped")


def start(client: docker.DockerClient, name: str, spec: FleetSpec | None = None) -> None:
    spec = spec or FleetSpec()
    container = _get_pi(client, spec, name)
    started = time.monotonic()
    container.start()
    full = container.name or ""
    print(f"simfleet: {full} ready after {_wait_ready(client, spec, [full], started)[full]:.1f} s")


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


def status(client: docker.DockerClient, spec: FleetSpec | None = None) -> list[PiStatus]:
    spec = spec or FleetSpec()
    rows = []
    for name, container in sorted(
        _fleet_containers(client, spec).items(), key=lambda kv: spec.pi_index(kv[0])
    ):
        running = container.status == "running"
        rows.append(
            PiStatus(
                name=name,
                state=container.status,
                address=spec.address(name),
                ssh=running and ssh_answers(spec.address(name)),
                edgeinfer=running and _edgeinfer_answers(container),
            )
        )
    return rows


def format_status(rows: list[PiStatus]) -> str:
    if not rows:
        return "no simulated Pis (python -m simfleet up)"
    lines = [f"{'name':<10} {'state':<9} {'address':<15} {'ssh':<4} edgeinfer"]
    for row in rows:
        ssh, edgeinfer = ("yes" if row.ssh else "no"), ("yes" if row.edgeinfer else "no")
        lines.append(f"{row.name:<10} {row.state:<9} {row.address:<15} {ssh:<4} {edgeinfer}")
    return "\n".join(lines)
