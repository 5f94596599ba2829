"""`python -m simfleet arm64-check`: the aarch64 releases Pi 5s get, installed and served under qemu.

For each Pi OS release (bookworm, trixie) it builds the aarch64 wheelhouse with release/build_release.py for
that release's CPython and glibc, installs it into an arm64 Debian tree of the same release the way
roles/inference_app/tasks/runtime.yml does, starts `python -m app` (the app's own gunicorn config, ONNX
Runtime) and compares the golden window's answer with the x86_64 one computed here.

The tree runs under chroot in a private mount and PID namespace (`unshare`), not in docker or systemd-nspawn:
the kernel's qemu-aarch64 binfmt_misc entry (flag F) runs the arm64 binaries, the namespace's mounts (an
overlay over the cached tree on a tmpfs, /proc, /dev, /sys, the wheels) vanish with its last process so
nothing is left to clean up or leak into the shared cache, and no image import or engine is needed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundle_contract.files import METADATA_FILE
from fleetops.pi_vars import PI_VARS
from simfleet.paths import project_root
from simfleet.rootfs import RootfsSpec, ensure_rootfs

# The bar for the same float model on two CPUs: ONNX Runtime's aarch64 and x86_64 kernels may round
# differently, never by more than this.
MAX_ABS_DIFF = 1e-4
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
# Emulated, a Pi's cold start (numpy + onnxruntime imports, model load, warm-up) takes tens of seconds.
READY_TIMEOUT_S = 420.0
GOLDEN_CALLS = 5
# A Pi 5's cores (BCM2712), and the /proc/cpuinfo they show. qemu-user passes the host's x86 /proc/cpuinfo
# through, and ONNX Runtime's CPU probe (cpuinfo, at import) dies of SIGSEGV reading that as an ARM one.
PI5_CPU = "cortex-a76"
PI5_CPUINFO_CORE = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

"""
# Where the role puts runtimes and bundles on a Pi.
PI_ROOT = PI_VARS["inference_app_root"]


@dataclass(frozen=True)
class PiRelease:
    """One Raspberry Pi OS release: its Debian suite and the CPython and glibc it ships."""

    suite: str
    python: str
    glibc: str

    @property
    def rootfs(self) -> RootfsSpec:
        # Only the interpreter: the role needs no python3-venv (pip comes from the wheelhouse), no compiler.
        return RootfsSpec(
            name=f"arm64-py{self.python.replace('.', '')}",
            packages=("python3",),
            suite=self.suite,
            arch="arm64",
        )


PI_RELEASES = {
    "bookworm": PiRelease("bookworm", "3.11", "2.36"),
    "trixie": PiRelease("trixie", "3.13", "2.41"),
}


class Arm64CheckError(RuntimeError):
    """A one-line reason the check could not run or failed."""


@dataclass(frozen=True)
class Comparison:
    latent_max_abs: float
    motif_max_abs: float

    @property
    def ok(self) -> bool:
        return max(self.latent_max_abs, self.motif_max_abs) <= MAX_ABS_DIFF


def _vector(answer: Any, key: str, length: int) -> list[float]:
    values = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(values, list) or len(values) != length:
        raise Arm64CheckError(f"the aarch64 answer has no {key} of length {length}: {str(answer)[:200]}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise Arm64CheckError(f"the aarch64 answer's {key} holds a value that is not a finite number")
    return [float(v) for v in values]


def compare(answer: Any, latent: Sequence[float], motif_scores: Sequence[float]) -> Comparison:
    """Max abs difference of an /infer answer from the reference latent and motif scores."""
    got_latent = _vector(answer, "latent", len(latent))
    got_scores = _vector(answer, "motif_scores", len(motif_scores))
    return Comparison(
        latent_max_abs=max(abs(a - b) for a, b in zip(got_latent, latent, strict=True)),
        motif_max_abs=max(abs(a - b) for a, b in zip(got_scores, motif_scores, strict=True)),
    )


def check_binfmt(entry: Path = BINFMT_ENTRY) -> None:
    """arm64 binaries run only through an enabled qemu entry; flag F (interpreter opened at registration)
    makes it work inside a chroot that holds no qemu binary."""
    if not entry.is_file():
        raise Arm64CheckError(
            f"no {entry}: install qemu-user-static and binfmt-support with binfmt_misc mounted (.ci/run does)"
        )
    lines = entry.read_text().splitlines()
    if "enabled" not in lines:
        raise Arm64CheckError(f"{entry} is disabled (update-binfmts --enable qemu-aarch64)")
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        raise Arm64CheckError(f"{entry} lacks flag F (flags {flags!r}): a chroot could not find qemu")


def build_bundle(out: Path) -> Path:
    """The bundle a deploy builds (content-addressed: reused when its inputs did not change)."""
    proc = subprocess.run(
        [sys.executable, "-m", "compile", "build", "--out", str(out)],
        cwd=project_root(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise Arm64CheckError(f"compile build failed: {lines[-1]}")
    return Path(proc.stdout.strip().splitlines()[-1]).resolve()


def build_release(bundle: Path, release: PiRelease, build_dir: Path) -> dict[str, Any]:
    """The aarch64 release this Pi OS release gets, built by the script a deploy uses."""
    manifest = build_dir / "arm64" / f"release-{release.suite}.json"
    cmd = [
        sys.executable,
        str(project_root() / "release" / "build_release.py"),
        "--bundle",
        str(bundle),
        "--platform",
        "aarch64",
        "--python",
        release.python,
        "--glibc",
        release.glibc,
        "--out",
        str(build_dir),
        "--manifest",
        str(manifest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Arm64CheckError(proc.stderr.strip() or f"build_release.py exited {proc.returncode}")
    return dict(json.loads(manifest.read_text()))


def x86_reference(bundle: Path) -> tuple[list[float], list[float]]:
    """The golden window's latent and motif scores from ONNX Runtime on this (x86_64) host."""
    import numpy as np

    from compile.verify import run_exported  # imports torch: only this command pays for it

    metadata = json.loads((bundle / METADATA_FILE).read_text())
    window = np.asarray(metadata["golden"]["window"], dtype=np.float32)
    latent, scores = run_exported(bundle / metadata["model"]["onnx"], window[None])
    return latent[0].astype(float).tolist(), scores[0].astype(float).tolist()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pi_script(manifest: dict[str, Any], port: int) -> str:
    """Inside the arm64 tree: the role's runtime steps, then the app as the Pi's systemd unit starts it."""
    runtime = f"{PI_ROOT}/runtimes/{manifest['runtime_id']}"
    bundle = f"{PI_ROOT}/bundles/{manifest['bundle_version']}"
    app = shlex.quote(f"hailo-pipeline[app]=={manifest['app_version']}")
    return f"""set -eu
cd {runtime}
echo "pi: os $(uname -m) $(. /etc/os-release && echo "$PRETTY_NAME") $(python3 --version)"
echo "pi: install_started $(date +%s.%N)"
python3 -m venv --without-pip --system-site-packages venv
set -- wheels/pip-*.whl
venv/bin/python "$1/pip" install --quiet --no-index --no-cache-dir --find-links wheels pip
venv/bin/pip install --quiet --no-index --no-cache-dir --find-links wheels {app}
echo "pi: install_ended $(date +%s.%N)"
echo "pi: venv_bytes $(du -sb venv | cut -f1)"
versions='import numpy, onnxruntime; print(numpy.__version__, onnxruntime.__version__)'
echo "pi: numpy $(venv/bin/python -c "$versions")"
cd {PI_ROOT}
exec {runtime}/venv/bin/python -m app --bundle {bundle} --backend onnxruntime --bind 127.0.0.1:{port}
"""


def namespace_script(root: Path, scratch: Path, manifest: dict[str, Any], bundle: Path, inner: str) -> str:
    """Host side, inside the new mount namespace: an overlay over the cached tree (which stays pristine), the
    kernel filesystems with a Pi 5's /proc/cpuinfo, the wheels and the bundle read-only; then chroot."""
    runtime = f"{PI_ROOT}/runtimes/{manifest['runtime_id']}"
    target_bundle = f"{PI_ROOT}/bundles/{manifest['bundle_version']}"
    wheels = shlex.quote(str(Path(manifest["wheelhouse_dir"]).resolve()))
    return f"""set -eu
cpuinfo={shlex.quote(str(scratch / "cpuinfo"))}
scratch={shlex.quote(str(scratch / "fs"))}
mkdir "$scratch"
mount -t tmpfs -o size=2g tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay \\
  -o lowerdir={shlex.quote(str(root))},upperdir="$scratch/upper",workdir="$scratch/work" "$scratch/root"
r="$scratch/root"
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t sysfs sysfs "$r/sys"
mount --bind "$cpuinfo" "$r/proc/cpuinfo"
mkdir -p "$r{runtime}/wheels" "$r{target_bundle}"
mount --bind {wheels} "$r{runtime}/wheels" && mount -o remount,bind,ro "$r{runtime}/wheels"
mount --bind {shlex.quote(str(bundle))} "$r{target_bundle}" && mount -o remount,bind,ro "$r{target_bundle}"
exec chroot "$r" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \\
  QEMU_CPU={PI5_CPU} \\
  /bin/sh -c {shlex.quote(inner)}
"""


@dataclass
class Served:
    """What one release did in the emulated Pi."""

    release: PiRelease
    manifest: dict[str, Any]
    facts: dict[str, str]
    ready_at: float
    comparison: Comparison
    infer_ms: list[float]


def _get(url: str, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def _post(url: str, body: dict[str, Any], timeout: float) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _wait_ready(proc: subprocess.Popen[str], url: str, log: Path) -> float:
    """Wait for /healthz 200; return when it came (epoch seconds, the clock the Pi's log lines use)."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if proc.poll() is not None:
            tail = " | ".join(log.read_text().splitlines()[-4:])
            raise Arm64CheckError(f"the emulated Pi exited {proc.returncode} before serving: {tail}")
        if "SIGSEGV" in log.read_text():  # gunicorn would restart the crashing workers until the timeout
            raise Arm64CheckError(f"an app worker died of SIGSEGV under qemu; see {log}")
        status, _ = _get(url, timeout=5)
        if status == 200:
            return time.time()
        time.sleep(1)
    raise Arm64CheckError(f"/healthz not 200 within {READY_TIMEOUT_S:.0f} s; see {log}")


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the whole session (gunicorn's graceful stop); its PID namespace ends with gunicorn."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _facts(log: Path) -> dict[str, str]:
    facts = {}
    for line in log.read_text().splitlines():
        if line.startswith("pi: "):
            key, _, value = line[4:].partition(" ")
            facts[key] = value
    return facts


def serve_and_compare(
    release: PiRelease,
    root: Path,
    manifest: dict[str, Any],
    bundle: Path,
    reference: tuple[list[float], list[float]],
    log: Path,
) -> Served:
    port = _free_port()
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    base = f"http://127.0.0.1:{port}"
    # The tmpfs is mounted over this folder inside the namespace only; the folder itself is ours to remove.
    with tempfile.TemporaryDirectory(prefix="hp-arm64-") as scratch, log.open("w") as out:
        # As many cores as the host has: ONNX Runtime checks the count against /sys.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        (Path(scratch) / "cpuinfo").write_text("".join(PI5_CPUINFO_CORE.format(n=n) for n in range(cores)))
        outer = namespace_script(root, Path(scratch), manifest, bundle, pi_script(manifest, port))
        proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "bash", "-c", outer],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # one process group to stop, whatever qemu and gunicorn start
        )
        try:
            ready_at = _wait_ready(proc, f"{base}/healthz", log)
            health = _get(f"{base}/healthz", timeout=10)[1]
            if not isinstance(health, dict) or health.get("backend") != "onnxruntime":
                raise Arm64CheckError(f"the app does not serve ONNX Runtime: /healthz {health}")
            times, comparisons = [], []
            for _ in range(GOLDEN_CALLS):
                started = time.perf_counter()
                answer = _post(f"{base}/infer", {"x": metadata["golden"]["window"]}, timeout=60)
                times.append((time.perf_counter() - started) * 1000.0)
                comparisons.append(compare(answer, *reference))
        finally:
            _stop(proc)
    worst = max(comparisons, key=lambda c: max(c.latent_max_abs, c.motif_max_abs))
    return Served(release, manifest, _facts(log), ready_at, worst, times)


def summary(served: Served, rootfs_s: float) -> str:
    facts = served.facts
    installed_at = float(facts.get("install_ended", "nan"))
    install_s = installed_at - float(facts.get("install_started", "nan"))
    mb = 1e6
    return (
        f"arm64-check: aarch64 {served.release.suite} ({facts.get('os', '?')}): "
        f"release {served.manifest['release']}, numpy/onnxruntime {facts.get('numpy', '?')}\n"
        f"  golden window vs x86_64: latent max abs diff {served.comparison.latent_max_abs:.2e}, "
        f"motif scores {served.comparison.motif_max_abs:.2e} (limit {MAX_ABS_DIFF:g}): "
        f"{'ok' if served.comparison.ok else 'FAILED'}\n"
        f"  rootfs {rootfs_s:.1f} s, venv install {install_s:.1f} s, "
        f"app start to /healthz 200 {served.ready_at - installed_at:.1f} s, /infer p50 "
        f"{statistics.median(served.infer_ms):.1f} ms (emulated)\n"
        f"  wheelhouse {served.manifest['wheel_bytes'] / mb:.1f} MB, "
        f"venv installed {int(facts.get('venv_bytes', '0')) / mb:.1f} MB"
    )


def _timed_rootfs(release: PiRelease) -> tuple[Path, float]:
    started = time.monotonic()
    return ensure_rootfs(release.rootfs), time.monotonic() - started


def run(suites: Sequence[str], build_dir: Path) -> int:
    check_binfmt()
    if platform.machine() != "x86_64":
        raise Arm64CheckError(f"the reference must come from x86_64, this host is {platform.machine()}")
    releases = [PI_RELEASES[suite] for suite in suites]
    started = time.monotonic()
    # debootstrap waits mostly on the mirror: build both trees while the wheelhouses download.
    with ThreadPoolExecutor(max_workers=len(releases)) as pool:
        trees = pool.map(_timed_rootfs, releases)
        bundle = build_bundle(build_dir / "bundles")
        manifests = [build_release(bundle, release, build_dir) for release in releases]
        roots = list(trees)
    reference = x86_reference(bundle)
    print(f"arm64-check: bundle {bundle.name}, x86_64 reference from ONNX Runtime on {platform.machine()}")
    failed = []
    for release, manifest, (root, rootfs_s) in zip(releases, manifests, roots, strict=True):
        log = build_dir / "arm64" / f"pi-{release.suite}.log"
        served = serve_and_compare(release, root, manifest, bundle, reference, log)
        print(summary(served, rootfs_s), flush=True)
        if not served.comparison.ok:
            failed.append(release.suite)
    print(f"arm64-check: aarch64 {', '.join(suites)} in {time.monotonic() - started:.0f} s")
    print(f"arm64-check: {len(releases) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main(suites: Sequence[str]) -> int:
    build_dir = project_root() / "build"
    (build_dir / "arm64").mkdir(parents=True, exist_ok=True)
    try:
        return run(suites, build_dir)
    except Arm64CheckError as exc:
        print(f"arm64-check: error: {exc}")
        return 1
