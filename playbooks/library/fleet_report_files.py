"""Write one fleet run's report on the control host and point reports/latest at it.

One module call instead of a folder, two copies and a link: a deploy writes the report after every batch, and
each module call costs a Python start on the control host. Every file is written beside its name and renamed
into place, so a reader (an operator, a test, the next batch) never sees half a report.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: fleet_report_files
short_description: Write a fleet run's report (JSON and markdown) and point reports/latest at its folder
options:
  dir:
    description: The run's report folder (reports/<run id>), created when missing.
    type: path
    required: true
  latest:
    description: The link to point at O(dir) (reports/latest); it is relative, so the reports folder can move.
    type: path
    required: true
  report:
    description: The fleet report; written as fleet_report.json.
    type: dict
    required: true
  markdown:
    description: The same report for people; written as fleet_report.md.
    type: str
    required: true
"""

RETURN = r"""
changed:
  description: Whether a file or the link differed from what this run wrote.
  type: bool
  returned: always
"""


def write_if_different(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    # A name of its own (two runs may share a reports folder), removed if anything fails before the rename.
    descriptor, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(staged, 0o644)
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    return True


def point_link(link: Path, target: Path) -> bool:
    relative = os.path.relpath(target, link.parent)
    if link.is_symlink() and os.readlink(link) == relative:
        return False
    staging = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}")
    staging.symlink_to(relative)
    try:
        os.replace(staging, link)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return True


def write_report(folder: Path, latest: Path, report: dict[str, Any], markdown: str) -> bool:
    created = not folder.is_dir()
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    text = json.dumps(report, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
    wrote = [write_if_different(folder / "fleet_report.json", text)]
    wrote.append(write_if_different(folder / "fleet_report.md", markdown))
    wrote.append(point_link(latest, folder))
    return created or any(wrote)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "latest": {"type": "path", "required": True},
            "report": {"type": "dict", "required": True},
            "markdown": {"type": "str", "required": True},
        },
    )
    params = module.params
    folder = Path(params["dir"])
    try:
        changed = write_report(folder, Path(params["latest"]), params["report"], params["markdown"])
    except OSError as exc:
        module.fail_json(msg=f"cannot write the fleet report under {folder}: {exc}")
    module.exit_json(changed=changed)


if __name__ == "__main__":
    main()
