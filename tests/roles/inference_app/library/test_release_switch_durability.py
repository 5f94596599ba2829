"""release_switch.py: the release a switch names is on disk before the link that names it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import release_switch


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """A root on r1 with r2 beside it; then sync and symlink calls, in order (sync is recorded, not run)."""
    for release in ("r1", "r2"):
        (tmp_path / "releases" / release).mkdir(parents=True)
        (tmp_path / "releases" / release / "RELEASE.json").write_text("{}")
    (tmp_path / "current").symlink_to("releases/r1")
    seen: list[str] = []
    real_symlink = os.symlink
    monkeypatch.setattr(release_switch.os, "sync", lambda: seen.append("sync"))

    def symlink(src: str, dst: str, *args: object) -> None:
        seen.append(f"symlink {Path(dst).name}")
        real_symlink(src, dst, *args)

    monkeypatch.setattr(release_switch.os, "symlink", symlink)
    return seen


def test_a_switch_syncs_the_target_to_disk_before_linking_it(tmp_path, calls):
    release_switch.release_switch(str(tmp_path), "r2")

    assert calls == ["sync", "symlink current.tmp"]
    assert os.readlink(tmp_path / "current") == "releases/r2"


@pytest.mark.parametrize("target", [None, "r1"])
def test_no_switch_means_no_sync(tmp_path, calls, target):
    # A reconcile only rewrites history.json (fsynced itself); a switch to what is current writes nothing.
    release_switch.release_switch(str(tmp_path), target)

    assert calls == []


def test_check_mode_syncs_nothing(tmp_path, calls):
    release_switch.release_switch(str(tmp_path), "r2", check_mode=True)

    assert calls == []
