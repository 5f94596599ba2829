"""Check every Pi of an inventory end to end and exit non-zero with a per-host table when any fails.

Checks (read-only, playbooks/validate.yml → the health role on each Pi): the app's /healthz answers 200
for the deployed bundle, the golden window through the app matches the bundle's reference output, and
EdgeInfer's answer for the same window is the model's (not its stub). Usable from cron or CI:

    python scripts/validate_deployment.py                       # the local simulated fleet
    python scripts/validate_deployment.py -i inventory/production --limit pi-kitchen --json

Exit status: 0 every Pi passed, 1 at least one failed or was unreachable, 2 nothing could be checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleetops.runner import DEFAULT_INVENTORY, PlaybookRun, run_playbook

COLUMNS = (
    "pi",
    "ok",
    "reachable",
    "app_healthz",
    "golden_app",
    "golden_edgeinfer",
    "backend",
    "model",
    "p50_ms",
)


def validation_rows(run: PlaybookRun) -> list[dict[str, Any]]:
    """One row per Pi the run processed, from its health_report fact and the run's per-host stats."""
    reports = run.facts("health_report")
    failures = run.failure_messages()
    unreachable = run.hosts_with("dark")
    hosts = sorted(set(run.stats.get("processed") or {}) | set(reports) | unreachable)
    rows = []
    for host in hosts:
        report = reports.get(host) or {}
        checks = report.get("checks") or {}
        details = report.get("details") or {}
        latency = report.get("latency_ms") or {}
        problems = [f"{name}: {details.get(name, 'failed')}" for name, ok in checks.items() if not ok]
        if host in unreachable:
            problems.insert(0, "unreachable over SSH")
        elif not report:
            reason = failures.get(host, "the checks did not run to the end")
            problems.append(f"no health report: {' '.join(reason.split())}")
        rows.append(
            {
                "pi": host,
                "ok": bool(report.get("healthy")) and host not in unreachable,
                "reachable": host not in unreachable,
                "app_healthz": checks.get("app_healthz"),
                "golden_app": checks.get("golden_app"),
                "golden_edgeinfer": checks.get("golden_edgeinfer"),
                "backend": report.get("backend"),
                "model": report.get("model_version"),
                "p50_ms": latency.get("p50") if isinstance(latency, dict) else latency,
                "problems": problems,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "PASS" if value else "FAIL"
        return "-" if value is None else str(value)

    table = [list(COLUMNS)] + [[cell(row[column]) for column in COLUMNS] for row in rows]
    widths = [max(len(line[index]) for line in table) for index in range(len(COLUMNS))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in table]
    for row in rows:
        lines += [f"  {row['pi']}: {problem}" for problem in row["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY)
    parser.add_argument("--limit", help="only these Pis (an Ansible host pattern)")
    parser.add_argument(
        "--expect-edgeinfer",
        choices=("real", "stub"),
        default="real",
        help="real: EdgeInfer must answer with the model; stub: the kill switch must be on",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    if not args.inventory.exists():
        parser.error(f"inventory {args.inventory} does not exist")
    run = run_playbook(
        "playbooks/validate.yml",
        inventory=args.inventory,
        limit=args.limit,
        extravars={"validate_expect_edgeinfer": args.expect_edgeinfer},
    )
    rows = validation_rows(run)
    if not rows:
        print(
            f"validate_deployment: no Pi was checked (ansible-playbook {run.status}, rc {run.rc})",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
