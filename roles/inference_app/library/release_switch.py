"""Switch the `current` release link and record it in history.json, crash-safely, and reconcile the two."""

from __future__ import annotations

DOCUMENTATION = r"""
module: release_switch
short_description: Point current at a release and record the switch in history.json, crash-safely
description:
  - Reads where the C(current) symlink under O(root) points and what C(history.json) records. When they
    disagree (a run killed between the two writes, a hand edit), history.json is repaired to what C(current)
    really points at, with an entry whose action is C(reconciled).
  - With O(target), switches C(current) to C(releases/<target>) (a relative link) if it points elsewhere and
    records the switch. Every write is a new file beside its final name, fsynced, renamed over it, and the
    folder fsynced, so a power loss leaves either the old or the new file, never a torn one. Before the link,
    the filesystems are synced, so the release it names is on disk too.
  - Without O(target), only reconciles (and returns the state).
  - Supports check mode (reports what it would change, writes nothing).
options:
  root:
    description: Folder holding releases/, the current symlink and history.json.
    type: path
    required: true
  target:
    description: Release to make current (a folder name under releases/, holding RELEASE.json).
    type: str
  action:
    description: Why the switch happens, recorded in its history entry.
    type: str
    choices: [deploy, rollback]
    default: deploy
  keep_entries:
    description: Newest history entries kept; older ones are dropped.
    type: int
    default: 50
"""

EXAMPLES = r"""
- name: Switch current to the release and record it
  release_switch:
    root: /opt/hailo_pipeline
    target: 1.4.0-3f2a
    action: deploy

- name: Reconcile history.json with the current link
  release_switch:
    root: /opt/hailo_pipeline
"""

RETURN = r"""
current:
  description: The release current points at afterwards (null if there is none).
  type: str
  returned: always
history:
  description: history.json's content afterwards (current, previous, entries).
  type: dict
  returned: always
switched:
  description: Whether current was (or in check mode would be) switched to O(target).
  type: bool
  returned: always
repaired:
  description: Whether history.json disagreed with current and was (or would be) repaired.
  type: bool
  returned: always
"""

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

EMPTY_HISTORY: dict[str, Any] = {"current": None, "previous": None, "entries": []}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_durably(tmp: str, final: str) -> None:
    """Rename tmp over final, then fsync the folder so the rename itself survives a power loss."""
    os.replace(tmp, final)
    _fsync_dir(os.path.dirname(final))


def _write_history(root: str, history: dict[str, Any]) -> None:
    final = os.path.join(root, "history.json")
    tmp = final + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (json.dumps(history, indent=4) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _replace_durably(tmp, final)


def _link_current(root: str, target: str) -> None:
    final = os.path.join(root, "current")
    tmp = final + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("releases", target), tmp)
    _replace_durably(tmp, final)


def _read_state(root: str) -> tuple[str | None, dict[str, Any]]:
    link = os.path.join(root, "current")
    current = os.path.basename(os.readlink(link)) if os.path.islink(link) else None
    try:
        with open(os.path.join(root, "history.json"), encoding="utf-8") as handle:
            history = {**EMPTY_HISTORY, **json.load(handle)}
    except FileNotFoundError:
        history = dict(EMPTY_HISTORY)
    return current, history


def _entry(release: str | None, came_from: str | None, action: str) -> dict[str, Any]:
    return {"release": release, "activated_at": _now(), "from": came_from, "action": action}


def _moved(history: dict[str, Any], release: str | None, action: str, keep: int) -> dict[str, Any]:
    """history after current moved to release; what it left becomes previous."""
    return {
        "current": release,
        "previous": history["current"] or history["previous"],
        "entries": (history["entries"] + [_entry(release, history["current"], action)])[-keep:],
    }


def release_switch(
    root: str, target: str | None, action: str = "deploy", keep: int = 50, check_mode: bool = False
) -> dict[str, Any]:
    """Reconcile history.json with current, then switch current to target if given; the module's result."""
    current, history = _read_state(root)
    repaired = history["current"] != current
    if repaired:
        history = _moved(history, current, "reconciled", keep)
    switched = target is not None and target != current
    if switched:
        if not check_mode and not os.path.isfile(os.path.join(root, "releases", target, "RELEASE.json")):
            raise ValueError(f"release {target} is not complete under {root}/releases (no RELEASE.json)")
        history = _moved(history, target, action, keep)
    if not check_mode:
        # current first: history only describes it. A crash between the two leaves history one switch behind,
        # which the next reconcile restores; the other order could record a switch that never happened.
        if switched:
            # Ansible wrote the release without fsync: on disk before the durable link names it.
            os.sync()
            _link_current(root, target)
        if switched or repaired:
            _write_history(root, history)
    return {
        "changed": switched or repaired,
        "current": target if switched else current,
        "history": history,
        "switched": switched,
        "repaired": repaired,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "target": {"type": "str"},
            "action": {"type": "str", "choices": ["deploy", "rollback"], "default": "deploy"},
            "keep_entries": {"type": "int", "default": 50},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = release_switch(
            params["root"], params["target"], params["action"], params["keep_entries"], module.check_mode
        )
    except (OSError, ValueError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
