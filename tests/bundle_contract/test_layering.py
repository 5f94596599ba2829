"""compile/ and app/ meet only in bundle_contract/: neither imports the other, and the contract imports
neither (nor anything outside the standard library: the Pi runs it before anything heavy is installed)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imported_top_levels(package: str) -> dict[str, set[str]]:
    """file -> top-level package names it imports (absolute imports; relative ones stay inside)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [("compile", "app"), ("app", "compile")])
def test_compile_and_app_do_not_import_each_other(package: str, forbidden: str) -> None:
    offenders = [path for path, names in imported_top_levels(package).items() if forbidden in names]
    assert offenders == []


def test_the_contract_needs_the_standard_library_only() -> None:
    outside = {
        path: sorted(names - sys.stdlib_module_names - {"__future__", "bundle_contract"})
        for path, names in imported_top_levels("bundle_contract").items()
    }
    assert {path: names for path, names in outside.items() if names} == {}


def test_the_scan_sees_imports() -> None:
    # Guards the scan itself: a parser that found nothing would pass the tests above vacuously.
    assert "bundle_contract" in imported_top_levels("compile")["compile/build.py"]
    assert "bundle_contract" in imported_top_levels("app")["app/service.py"]
