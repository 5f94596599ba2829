"""Debian root filesystems made with debootstrap, cached by what went into them.

There is no registry here (no Docker Hub), so every image starts as a debootstrapped tree. A tree is built
once per (suite, variant, package list) and reused; it is written under a temporary name and renamed, so an
interrupted run never leaves a half-built tree that looks complete.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simfleet.engine import find_tool
from simfleet.paths import CACHE_DIR

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Big, useless inside a test container, and rebuilt from nothing on any cache miss anyway.
STRIP_PATHS = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
)


@dataclass(frozen=True)
class RootfsSpec:
    name: str
    packages: tuple[str, ...]
    variant: str = "minbase"
    suite: str = SUITE
    # A Debian architecture other than the host's (e.g. "arm64", run through qemu-user-static's binfmt_misc
    # entry); empty means the host's, and leaves the key of every existing recipe unchanged.
    arch: str = ""
    # Paths this tree's users never touch, removed after debootstrap to make the image smaller.
    drop: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        recipe = {
            "suite": self.suite,
            "variant": self.variant,
            "packages": sorted(self.packages),
            "strip": STRIP_PATHS,
            "drop": sorted(self.drop),
        }
        if self.arch:
            recipe["arch"] = self.arch
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def family(self) -> str:
        """What every recipe of this tree shares (name and suite): a newer recipe replaces only its own
        family's trees and images, never another Debian release's."""
        return f"{self.name}-{self.suite}"

    @property
    def path(self) -> Path:
        return CACHE_DIR / "rootfs" / f"{self.family}-{self.key}"


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialize builds across processes: several helpers may build images on this machine at once."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def debian_mirror() -> str:
    """The Debian mirror apt already uses on this machine (the only one known to be reachable)."""
    env = os.environ.get("SIMFLEET_DEBIAN_MIRROR")
    if env:
        return env
    candidates: list[str] = []
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            if re.search(rf"^Suites:.*\b{SUITE}\b", stanza, re.M):
                candidates += re.findall(r"^URIs:\s*(\S+)", stanza, re.M)
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        candidates += re.findall(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", legacy.read_text(), re.M)
    for uri in candidates:
        if "security" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri
    return DEFAULT_MIRROR


def _debootstrap(spec: RootfsSpec, target: Path) -> None:
    debootstrap = find_tool("debootstrap")
    if debootstrap is None:
        raise RuntimeError("debootstrap is not installed (python -m simfleet engine installs it)")
    cmd = [
        debootstrap,
        f"--variant={spec.variant}",
        *([f"--arch={spec.arch}"] if spec.arch else []),
        f"--include={','.join(sorted(spec.packages))}",
        spec.suite,
        str(target),
        debian_mirror(),
    ]
    log = spec.path.with_suffix(".log")
    print(f"simfleet: debootstrap {spec.name} ({len(spec.packages)} packages), log: {log}", flush=True)
    with log.open("w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text().splitlines()[-5:]
        raise RuntimeError(
            f"debootstrap failed for {spec.name} (exit {result.returncode}): {' | '.join(tail)}"
        )


def _strip(root: Path, drop: tuple[str, ...]) -> None:
    for rel in drop:
        target = root / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for rel in STRIP_PATHS:
        target = root / rel
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    # Keep only the English/C locale data python and apt may ask for.
    locale = root / "usr/share/locale"
    if locale.is_dir():
        for child in locale.iterdir():
            if child.is_dir() and not child.name.startswith("en"):
                shutil.rmtree(child)


def ensure_rootfs(spec: RootfsSpec) -> Path:
    """Return the cached tree for spec, debootstrapping it first when it is not cached."""
    if spec.path.is_dir():
        return spec.path
    with cache_lock(f"rootfs-{spec.family}"):
        if spec.path.is_dir():  # another process built it while we waited
            return spec.path
        staging = spec.path.with_name(spec.path.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        staging.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        _debootstrap(spec, staging)
        _strip(staging, spec.drop)
        staging.rename(spec.path)
        print(f"simfleet: rootfs {spec.name} built in {time.monotonic() - started:.0f} s", flush=True)
        _prune_stale(spec)
    return spec.path


def _prune_stale(spec: RootfsSpec) -> None:
    """Trees of an older recipe of the same image are never used again; each holds hundreds of MB."""
    for sibling in spec.path.parent.glob(f"{spec.family}-*"):
        if sibling.name.startswith(spec.path.name):
            continue
        if sibling.is_dir():
            shutil.rmtree(sibling)
        else:
            sibling.unlink()


def tar_stream(root: Path) -> subprocess.Popen[bytes]:
    """A tar of root on stdout, as `docker import` expects it (numeric owners, xattrs kept for file caps)."""
    return subprocess.Popen(
        ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(root), "-c", "."],
        stdout=subprocess.PIPE,
    )
