"""The pure parts of `make arm64-check`: the arm64 trees' cache recipe, the binfmt_misc precondition and the
golden comparison. The make target itself is the integration test (it needs qemu and debootstrap)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from simfleet import rootfs
from simfleet.arm64 import MAX_ABS_DIFF, PI_RELEASES, Arm64CheckError, check_binfmt, compare
from simfleet.rootfs import RootfsSpec

LATENT = [0.5, -1.25, 3.0]
SCORES = [0.1, 0.9]
REPO = Path(__file__).resolve().parents[2]


def test_each_pi_os_release_has_its_own_arm64_tree():
    bookworm, trixie = PI_RELEASES["bookworm"].rootfs, PI_RELEASES["trixie"].rootfs
    assert (bookworm.suite, trixie.suite) == ("bookworm", "trixie")
    assert bookworm.arch == trixie.arch == "arm64"
    assert bookworm.key != trixie.key
    assert bookworm.path != trixie.path
    assert trixie.path.name.endswith(f"-trixie-{trixie.key}")
    # Each entry has its own cache lock (ensure_rootfs locks by name) and its own stale-tree pruning.
    assert bookworm.name != trixie.name


def test_architecture_is_part_of_the_recipe_but_the_package_order_is_not():
    host = RootfsSpec(name="t", packages=("python3", "bash"), suite="trixie")
    assert RootfsSpec(name="t", packages=("python3", "bash"), suite="trixie", arch="arm64").key != host.key
    assert RootfsSpec(name="t", packages=("bash", "python3"), suite="trixie").key == host.key
    assert RootfsSpec(name="t", packages=("python3", "bash"), suite="bookworm").key != host.key


def test_debootstrap_is_asked_for_the_foreign_architecture(monkeypatch, tmp_path):
    calls: list[list[str]] = []

    class Done:
        returncode = 0

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return Done()

    monkeypatch.setattr(rootfs, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(rootfs, "find_tool", lambda name: "/usr/sbin/debootstrap")
    monkeypatch.setattr(rootfs.subprocess, "run", fake_run)
    spec = RootfsSpec(name="t", packages=("python3",), suite="trixie", arch="arm64")
    spec.path.parent.mkdir(parents=True)
    rootfs._debootstrap(spec, tmp_path / "target")
    rootfs._debootstrap(RootfsSpec(name="h", packages=("python3",)), tmp_path / "host")
    assert "--arch=arm64" in calls[0] and calls[0][-3] == "trixie"
    assert not any(arg.startswith("--arch") for arg in calls[1])


def test_identical_answer_passes():
    result = compare({"latent": LATENT, "motif_scores": SCORES}, LATENT, SCORES)
    assert result.latent_max_abs == result.motif_max_abs == 0.0
    assert result.ok


def test_difference_within_the_limit_passes_and_beyond_it_fails():
    near = compare({"latent": [0.5 + MAX_ABS_DIFF / 2, -1.25, 3.0], "motif_scores": SCORES}, LATENT, SCORES)
    assert near.ok and math.isclose(near.latent_max_abs, MAX_ABS_DIFF / 2)
    far = compare({"latent": LATENT, "motif_scores": [0.1, 0.9 - 3 * MAX_ABS_DIFF]}, LATENT, SCORES)
    assert not far.ok and math.isclose(far.motif_max_abs, 3 * MAX_ABS_DIFF)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"motif_scores": SCORES}, "no latent"),
        ({"latent": LATENT[:2], "motif_scores": SCORES}, "no latent of length 3"),
        ({"latent": LATENT, "motif_scores": [0.1, float("nan")]}, "not a finite number"),
        ({"latent": [True, 0.0, 1.0], "motif_scores": SCORES}, "not a finite number"),
        (["not", "an", "object"], "no latent"),
    ],
)
def test_malformed_answers_are_refused_by_name(answer, problem):
    with pytest.raises(Arm64CheckError, match=problem):
        compare(answer, LATENT, SCORES)


def _entry(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qemu-aarch64"
    path.write_text(text)
    return path


def test_binfmt_entry_must_exist_be_enabled_and_fix_the_binary(tmp_path):
    good = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"
    check_binfmt(_entry(tmp_path, good))
    with pytest.raises(Arm64CheckError, match="install qemu-user-static"):
        check_binfmt(tmp_path / "absent")
    with pytest.raises(Arm64CheckError, match="disabled"):
        check_binfmt(_entry(tmp_path, good.replace("enabled", "disabled")))
    with pytest.raises(Arm64CheckError, match="lacks flag F"):
        check_binfmt(_entry(tmp_path, good.replace("flags: PF", "flags: P")))


def test_every_checked_release_has_pins_for_its_python():
    # build_release.py refuses a CPython without pins: a release added here must get its constraints file.
    spec = importlib.util.spec_from_file_location("build_release", REPO / "release" / "build_release.py")
    assert spec is not None and spec.loader is not None
    build_release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_release)
    for release in PI_RELEASES.values():
        assert build_release.constraints_for(release.python).is_file()
