"""playbooks/library/fleet_report_files.py: both files and the latest link in one call, never half written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fleet_report_files
import pytest
from fleet_report_files import write_report

REPORT = {"summary": {"healthy": ["pi-1"]}, "hosts": {"pi-1": {"healthy": True}}}


def test_a_new_run_gets_its_folder_both_files_and_the_latest_link(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "run-1"
    assert write_report(folder, tmp_path / "reports" / "latest", REPORT, "# Fleet\n") is True
    assert json.loads((folder / "fleet_report.json").read_text()) == REPORT
    assert (folder / "fleet_report.md").read_text() == "# Fleet\n"
    # Relative, like the link the reports folder had before: the folder can move.
    assert os.readlink(tmp_path / "reports" / "latest") == "run-1"
    assert oct((folder / "fleet_report.json").stat().st_mode & 0o777) == "0o644"


def test_the_same_report_again_changes_nothing_and_a_new_one_replaces_it(tmp_path: Path) -> None:
    folder, latest = tmp_path / "run-1", tmp_path / "latest"
    write_report(folder, latest, REPORT, "# Fleet\n")
    assert write_report(folder, latest, REPORT, "# Fleet\n") is False
    later = {**REPORT, "summary": {"healthy": []}}
    assert write_report(folder, latest, later, "# Fleet, later\n") is True
    assert json.loads((folder / "fleet_report.json").read_text()) == later
    # Each write went to a file beside its name and was renamed over it: nothing else is left in the folder.
    assert sorted(path.name for path in folder.iterdir()) == ["fleet_report.json", "fleet_report.md"]


def test_latest_moves_to_the_next_run(tmp_path: Path) -> None:
    write_report(tmp_path / "run-1", tmp_path / "latest", REPORT, "1\n")
    assert write_report(tmp_path / "run-2", tmp_path / "latest", REPORT, "2\n") is True
    assert (tmp_path / "latest" / "fleet_report.md").read_text() == "2\n"
    # The link was staged under a name of its own and renamed over the old one: nothing staged is left.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["latest", "run-1", "run-2"]


def test_a_folder_that_cannot_be_written_raises_for_the_module_to_report(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the reports folder should be")
    with pytest.raises(OSError):
        write_report(blocker / "run-1", blocker / "latest", REPORT, "# Fleet\n")


def test_text_beyond_ascii_is_written_as_is(tmp_path: Path) -> None:
    report = {"hosts": {"pi-1": {"failure": "bundle damaged — tcn_encoder.onnx"}}}
    write_report(tmp_path / "run-1", tmp_path / "latest", report, "# Fleet\n")
    assert "— tcn_encoder.onnx" in (tmp_path / "run-1" / "fleet_report.json").read_text()


def test_a_failed_write_leaves_no_staged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fleet_report_files.os, "replace", refuse)
    with pytest.raises(OSError):
        write_report(tmp_path / "run-1", tmp_path / "latest", REPORT, "# Fleet\n")
    assert list((tmp_path / "run-1").iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run-1"]
