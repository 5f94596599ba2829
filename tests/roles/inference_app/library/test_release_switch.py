"""roles/inference_app/library/release_switch.py: the order of its writes, reconcile, idempotence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import release_switch


def make_root(
    tmp_path: Path, *releases: str, current: str | None = None, history: dict | None = None
) -> Path:
    for release in releases:
        (tmp_path / "releases" / release).mkdir(parents=True)
        (tmp_path / "releases" / release / "RELEASE.json").write_text("{}")
    if current:
        (tmp_path / "current").symlink_to(f"releases/{current}")
    if history is not None:
        (tmp_path / "history.json").write_text(json.dumps(history))
    return tmp_path


def on(release: str) -> dict:
    """A history.json whose current is release, with nothing before it."""
    return {"current": release, "previous": None, "entries": []}


def history_of(root: Path) -> dict:
    return json.loads((root / "history.json").read_text())


@pytest.fixture
def os_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Symlink/fsync/rename calls from now on, each with the path it acted on (tests clear it after setup)."""
    calls: list[tuple[str, str]] = []
    real = {name: getattr(os, name) for name in ("symlink", "fsync", "replace")}

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real["fsync"](fd)

    def replace(src: str, dst: str) -> None:
        calls.append(("replace", f"{Path(src).name}->{Path(dst).name}"))
        real["replace"](src, dst)

    def symlink(src: str, dst: str, *args) -> None:
        calls.append(("symlink", Path(dst).name))
        real["symlink"](src, dst, *args)

    monkeypatch.setattr(release_switch.os, "fsync", fsync)
    monkeypatch.setattr(release_switch.os, "replace", replace)
    monkeypatch.setattr(release_switch.os, "symlink", symlink)
    return calls


def test_a_switch_links_then_records_each_written_fsynced_renamed_and_its_folder_fsynced(tmp_path, os_calls):
    root = make_root(tmp_path, "r1", "r2", current="r1", history=on("r1"))
    os_calls.clear()

    result = release_switch.release_switch(str(root), "r2", "deploy")

    folder = str(root)
    assert os_calls == [
        ("symlink", "current.tmp"),
        ("replace", "current.tmp->current"),
        ("fsync", folder),
        ("fsync", f"{folder}/history.json.tmp"),
        ("replace", "history.json.tmp->history.json"),
        ("fsync", folder),
    ]
    assert os.readlink(root / "current") == "releases/r2"
    assert not (root / "current.tmp").exists() and not (root / "history.json.tmp").exists()
    history = history_of(root)
    assert (history["current"], history["previous"]) == ("r2", "r1")
    assert [(e["release"], e["from"], e["action"]) for e in history["entries"]] == [("r2", "r1", "deploy")]
    assert result["changed"] and result["switched"] and not result["repaired"]
    assert result["history"] == history


def test_a_second_call_changes_and_writes_nothing(tmp_path, os_calls):
    root = make_root(tmp_path, "r1", "r2", current="r1", history=on("r1"))
    release_switch.release_switch(str(root), "r2", "deploy")
    before = (root / "history.json").read_text()
    os_calls.clear()

    result = release_switch.release_switch(str(root), "r2", "deploy")

    assert result["changed"] is False and result["current"] == "r2"
    assert os_calls == []
    assert (root / "history.json").read_text() == before


def test_a_run_killed_after_the_link_is_reconciled_to_what_current_points_at(tmp_path, os_calls):
    # The switch to r2 renamed current, then died before history.json was written.
    stale = {
        "current": "r1",
        "previous": "r0",
        "entries": [{"release": "r1", "from": "r0", "action": "deploy"}],
    }
    root = make_root(tmp_path, "r0", "r1", "r2", current="r2", history=stale)
    os_calls.clear()

    result = release_switch.release_switch(str(root), None)

    history = history_of(root)
    assert (history["current"], history["previous"]) == ("r2", "r1")
    assert (history["entries"][-1]["release"], history["entries"][-1]["from"]) == ("r2", "r1")
    assert history["entries"][-1]["action"] == "reconciled"
    assert result["changed"] and result["repaired"] and not result["switched"]
    assert ("symlink", "current.tmp") not in os_calls  # current is the truth and is left alone
    # Then the deploy's own switch to r2 finds nothing to do, and the next reconcile neither.
    assert release_switch.release_switch(str(root), "r2")["changed"] is False
    assert release_switch.release_switch(str(root), None)["changed"] is False


def test_a_history_ahead_of_the_link_is_repaired_back_and_the_switch_then_happens(tmp_path):
    ahead = {
        "current": "r2",
        "previous": "r1",
        "entries": [{"release": "r2", "from": "r1", "action": "deploy"}],
    }
    root = make_root(tmp_path, "r1", "r2", current="r1", history=ahead)

    result = release_switch.release_switch(str(root), "r2")

    history = history_of(root)
    assert os.readlink(root / "current") == "releases/r2"
    assert [(e["release"], e["action"]) for e in history["entries"][-2:]] == [
        ("r1", "reconciled"),
        ("r2", "deploy"),
    ]
    assert history["current"] == "r2" and result["repaired"] and result["switched"]


def test_check_mode_predicts_the_switch_and_writes_nothing(tmp_path, os_calls):
    root = make_root(tmp_path, "r1", "r2", current="r1", history=on("r1"))
    os_calls.clear()
    before = (root / "history.json").read_text()

    result = release_switch.release_switch(str(root), "r2", check_mode=True)

    assert result["changed"] and result["switched"] and result["current"] == "r2"
    assert os_calls == []
    assert os.readlink(root / "current") == "releases/r1"
    assert (root / "history.json").read_text() == before


def test_a_fresh_host_gets_its_first_release_and_a_history(tmp_path):
    root = make_root(tmp_path, "r1")
    assert release_switch.release_switch(str(root), None)["changed"] is False
    assert not (root / "history.json").exists()

    release_switch.release_switch(str(root), "r1")

    history = history_of(root)
    assert (history["current"], history["previous"]) == ("r1", None)
    assert os.readlink(root / "current") == "releases/r1"


def test_an_incomplete_release_is_never_linked(tmp_path):
    root = make_root(tmp_path, "r1", current="r1", history=on("r1"))
    (root / "releases" / "r2").mkdir()  # no RELEASE.json

    with pytest.raises(ValueError, match="r2 is not complete"):
        release_switch.release_switch(str(root), "r2")
    assert os.readlink(root / "current") == "releases/r1"


def test_only_the_newest_entries_are_kept(tmp_path):
    root = make_root(tmp_path, "a", "b", current="a", history=on("a"))
    for target in ["b", "a", "b", "a"]:
        release_switch.release_switch(str(root), target, "rollback", keep=3)
    entries = history_of(root)["entries"]
    assert [(e["release"], e["from"]) for e in entries] == [("a", "b"), ("b", "a"), ("a", "b")]
