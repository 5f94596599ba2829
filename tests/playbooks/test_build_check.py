"""playbooks/build.yml under --check names the release the real run then builds, and writes nothing to build/:
on a fresh checkout, after a model change (the previous runtime reused, so the name is known without
building wheels), and on a converged checkout (nothing changes). The "Pi" is the control host over a local
connection: the build phase runs on the control host only."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RELEASE_LINE = re.compile(r"msg: '?(\S+): release (\S+) \(bundle (\S+), CPython (\S+)\)( — predicted)?")
# The one "Pi" here is the control host: its kind of release is this interpreter's (group_vars/pis/main.yml's
# inference_app_python is /usr/bin/python3, the one the venv tests run under too).
KIND = f"{platform.machine()}-cp{sys.version_info.major}{sys.version_info.minor}"
MANIFEST = f"release-{KIND}.json"


def build(
    inventory: Path, build_dir: Path, *extra: str
) -> tuple[str, bool, subprocess.CompletedProcess[str]]:
    """Run the build phase; return the release it names, whether that was a --check prediction, the run."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["TMPDIR"] = str(build_dir.parent)  # the --check scratch folder stays inside this test's tmp_path
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml", "--tags", "build",
         "-e", f"build_dir={build_dir}", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    (match,) = RELEASE_LINE.findall(" ".join(result.stdout.split()))  # the callback wraps long messages
    assert match[0] == KIND, match
    return match[1], bool(match[4]), result


def snapshot(folder: Path) -> dict[str, int]:
    """Every path under the folder with its modification time: what "writes nothing" compares."""
    if not folder.exists():
        return {}
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def model_config(path: Path) -> Path:
    """Another normalization than the default: a new bundle version from the same model."""
    sys.path.insert(0, str(ROOT))
    from compile.normalization import default_normalization

    defaults = default_normalization()
    normalization = {"mean": list(defaults.mean), "std": [value * 1.5 for value in defaults.std]}
    path.write_text(json.dumps({"normalization": normalization}))
    return path


@pytest.fixture(scope="module")
def fresh(inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A fresh checkout's --check, then its real build."""
    build_dir = tmp_path_factory.mktemp("fresh") / "build"
    predicted, was_check, _ = build(inventory, build_dir, "--check", "--diff")
    wrote = build_dir.exists()
    built, _, first = build(inventory, build_dir)
    return {"build_dir": build_dir, "predicted": predicted, "was_check": was_check, "wrote": wrote,
            "built": built, "first": first}  # fmt: skip


def copy_of(fresh: dict[str, Any], tmp_path: Path) -> Path:
    build_dir = tmp_path / "build"
    shutil.copytree(fresh["build_dir"], build_dir)
    # The manifest names its folders: point it at the copy's.
    manifest = build_dir / MANIFEST
    text = manifest.read_text().replace(str(fresh["build_dir"]), str(build_dir))
    stat = (fresh["build_dir"] / MANIFEST).stat()
    manifest.write_text(text)
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return build_dir


def test_check_predicts_the_release_each_real_build_makes(
    inventory: Path, fresh: dict[str, Any], tmp_path: Path
) -> None:
    # A fresh checkout: the prediction builds into the scratch folder, never into build/.
    assert fresh["was_check"]
    assert not fresh["wrote"]
    built = fresh["built"]
    assert built == fresh["predicted"]
    build_dir = copy_of(fresh, tmp_path)
    manifest = json.loads((build_dir / MANIFEST).read_text())
    assert manifest["release"] == built
    assert re.search(r"localhost\s+: ok=\d+\s+changed=1 ", fresh["first"].stdout)

    # A model change: a new bundle on the same runtime, named under --check without touching build/.
    config = str(model_config(tmp_path / "model_config.json"))
    before = snapshot(build_dir)
    predicted, was_check, _ = build(inventory, build_dir, "--check", "-e", f"model_config={config}")
    assert was_check
    assert snapshot(build_dir) == before
    assert predicted != built
    assert predicted.endswith("-" + manifest["runtime_id"]), "a model-only change keeps the runtime"
    runtimes = sorted(p.name for p in (build_dir / "runtimes").iterdir())
    updated, _, _ = build(inventory, build_dir, "-e", f"model_config={config}")
    assert updated == predicted
    assert sorted(p.name for p in (build_dir / "runtimes").iterdir()) == runtimes, "no runtime rebuilt"

    # Converged: --check and the real run agree that nothing changes.
    again, _, check = build(inventory, build_dir, "--check", "-e", f"model_config={config}")
    assert again == updated
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", check.stdout), check.stdout[-1500:]
    before = snapshot(build_dir)
    again, _, rerun = build(inventory, build_dir, "-e", f"model_config={config}")
    assert again == updated
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", rerun.stdout), rerun.stdout[-1500:]
    assert snapshot(build_dir) == before, "a converged build rewrites nothing"


def test_an_edited_wheel_source_rebuilds_the_runtime(
    inventory: Path, fresh: dict[str, Any], tmp_path: Path
) -> None:
    # The runtime is reused only while no wheel source is newer than the manifest: here the manifest is made
    # older than every source, so the build makes the runtime again instead of trusting it.
    build_dir = copy_of(fresh, tmp_path)
    built = fresh["built"]
    manifest = build_dir / MANIFEST
    os.utime(manifest, (1, 1))
    _, _, rerun = build(inventory, build_dir, "-v")
    assert "building a runtime: " in rerun.stdout and "changed since" in rerun.stdout, rerun.stdout[-2000:]
    assert json.loads(manifest.read_text())["release"] == built, "same sources, same wheels, same release"
    assert manifest.stat().st_mtime > 1, "a rebuilt runtime renews the manifest's time"
