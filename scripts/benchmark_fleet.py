"""Wall time and control-host CPU of the fleet playbooks on the simulated fleet, against the rollout targets.

For each fleet size (default 2, 4 and 8 Pis) the fleet is recreated from clean images and `site.yml` is timed;
on 4 Pis the idempotent re-run, a deploy of a second model version (a model-only update: with it, the bytes
copied to and the disk added on each Pi) and a fleet `rollback.yml` are timed too. These timed runs have no
traffic: on the simulation the client and EdgeInfer share the control host's cores with the rollout, which a
clean deploy (nothing to answer yet) would not pay, so the ratios compare like with like. The same three runs
are then repeated while a client on every Pi posts a window through EdgeInfer at 50 Hz (simfleet/traffic.py):
the answers EdgeInfer's silent fallback made up are counted by cause, goal 0.
The control-host build (bundle + a runtime per kind of Pi) is made once beforehand, on the largest fleet so
that both Pi OS releases are in it, and timed on its own: every size then measures the fleet work only. Prints
one line per figure, with how busy the host's CPUs were (simulated Pis share them with the control host, so a
run near 100 % is CPU-bound) and the CPU seconds the control host's Ansible spent (docs/SCALING.md), and a
JSON summary (also written to reports/benchmark_fleet.json).

    python scripts/benchmark_fleet.py [--sizes 2 4 8]

Targets: 4 Pis from clean <= 6 min, re-run <= 25% of that, a model-only update <= 30% of it adding <= 16 MB
per Pi, rollback <= 60 s, 8 Pis <= 1.5x the time of 2, no fallback in any of the runs under traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from fleetops import REPO
from fleetops.pi_vars import PI_VARS
from fleetops.runner import PlaybookRun, run_playbook, yield_cpu_to_simulated_pis
from simfleet import engine, images
from simfleet import fleet as simfleet
from simfleet.traffic import Traffic, Verdict

TARGET_4_CLEAN_S = 360.0
TARGET_RERUN_RATIO = 0.25
TARGET_ROLLBACK_S = 60.0
TARGET_SCALING = 1.5
TARGET_MODEL_UPDATE_RATIO = 0.30
TARGET_MODEL_UPDATE_DISK_MB = 16.0
# Per part folder on a Pi: the bytes copied there (wheels, bundle files), not what was built (venv).
PART_BYTES = (
    f"cd {PI_VARS['inference_app_root']} && "
    'for part in runtimes/*/wheels bundles/*; do [ -d "$part" ] && du -sb "$part"; done; du -sb .'
)


class BenchmarkError(RuntimeError):
    """A run the figures depend on did not succeed."""


class BenchFleet:
    """Its own simulated fleet (prefix hp-fbench, own subnet and inventory), apart from the demo fleet."""

    def __init__(self, folder: Path) -> None:
        (folder / "group_vars").symlink_to(REPO / "inventory" / "local" / "group_vars")
        self.spec = simfleet.FleetSpec(
            prefix="hp-fbench", subnet="10.213.11.0/24", inventory_path=folder / "hosts.yml"
        )
        self.client = engine.ensure_engine()
        images.build_images(self.client)

    def fresh(self, size: int) -> None:
        simfleet.down(self.client, self.spec)
        simfleet.up(self.client, size, self.spec)

    def traffic(self, size: int) -> Traffic:
        return Traffic(self.client, self.spec, [self.spec.pi_name(index) for index in range(1, size + 1)])

    def down(self) -> None:
        simfleet.down(self.client, self.spec)

    def disk(self, size: int) -> dict[str, dict[str, int]]:
        """Per Pi: bytes under the root ('.') and of every copied part folder."""
        found = {}
        for index in range(1, size + 1):
            name = self.spec.pi_name(index)
            result = self.client.containers.get(name).exec_run(["sh", "-c", PART_BYTES], user="root")
            lines = result.output.decode().split("\n")
            found[name] = {
                path: int(count) for count, path in (line.split("\t") for line in lines if "\t" in line)
            }
        return found


def disk_delta(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """Per Pi: bytes copied (part folders that are new) and disk added (the root's growth)."""
    return {
        pi: {
            "copied_bytes": sum(
                count for path, count in parts.items() if path != "." and path not in before[pi]
            ),
            "disk_added_bytes": parts.get(".", 0) - before[pi].get(".", 0),
        }
        for pi, parts in after.items()
    }


def checked(run: PlaybookRun) -> float:
    """Wall time of a run that succeeded on every Pi."""
    failed = run.hosts_with("failures") | run.hosts_with("dark")
    if run.rc != 0 or failed:
        raise BenchmarkError(f"{run.playbook} failed (rc {run.rc}, failed/unreachable: {sorted(failed)})")
    return run.wall_s


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of all CPUs busy between two cpu_times() readings: near 100 % means the run was CPU-bound."""
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total else 0.0


def other_model_config(folder: Path, std_scale: float) -> str:
    """A model_config.json with other normalization: another bundle version of the default model to deploy."""
    from compile.normalization import default_normalization

    defaults = default_normalization()
    path = folder / f"benchmark_model_config_{std_scale}.json"
    std = [value * std_scale for value in defaults.std]
    path.write_text(json.dumps({"normalization": {"mean": list(defaults.mean), "std": std}}))
    return str(path)


def children_cpu_s() -> float:
    """User + system CPU seconds of every finished child process: ansible-playbook, its forks, their ssh."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fallback_summary(verdicts: dict[str, Verdict]) -> dict[str, Any]:
    """Per Pi in one run: answers, those from neither model, failed requests and fallbacks by cause."""
    return {
        pi: {
            "answers": verdict.answers,
            "not_from_the_model": verdict.answers - verdict.from_model,
            "failed_requests": len(verdict.failures),
            "longest_gap": verdict.longest_gap,
            "fallbacks": verdict.fallbacks,
        }
        for pi, verdict in sorted(verdicts.items())
    }


def fallback_total(fallbacks: dict[str, dict[str, Any]]) -> int:
    """Every fallback and failed request in every run under traffic: the goal is 0."""
    return sum(
        sum(pi["fallbacks"].values()) + pi["failed_requests"]
        for run in fallbacks.values()
        for pi in run.values()
    )


def judge(figures: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each target with its measured value and met / not met (not measured when a figure is missing)."""
    checks = {
        "clean_4_pis_s": ("4 Pis from clean <= 6 min", figures.get("clean_4_s"), TARGET_4_CLEAN_S),
        "rerun_ratio": (
            "idempotent re-run <= 25% of the clean deploy",
            figures["rerun_4_s"] / figures["clean_4_s"] if "rerun_4_s" in figures else None,
            TARGET_RERUN_RATIO,
        ),
        "model_update_ratio": (
            "model-only update <= 30% of the clean deploy",
            figures["new_version_4_s"] / figures["clean_4_s"] if "new_version_4_s" in figures else None,
            TARGET_MODEL_UPDATE_RATIO,
        ),
        "model_update_disk_mb": (
            "model-only update adds <= 16 MB on each Pi",
            figures.get("new_version_4_max_disk_added_mb"),
            TARGET_MODEL_UPDATE_DISK_MB,
        ),
        "rollback_s": ("fleet rollback <= 60 s", figures.get("rollback_4_s"), TARGET_ROLLBACK_S),
        "fallbacks": (
            "fallbacks and failed requests under traffic = 0",
            figures.get("fallbacks_4"),
            0,
        ),
        "scaling_8_vs_2": (
            "8 Pis <= 1.5x the time of 2",
            figures["clean_8_s"] / figures["clean_2_s"]
            if {"clean_8_s", "clean_2_s"} <= figures.keys()
            else None,
            TARGET_SCALING,
        ),
    }
    return {
        key: {
            "target": title,
            "value": value,
            "limit": limit,
            "status": "not measured" if value is None else ("met" if value <= limit else "not met"),
        }
        for key, (title, value, limit) in checks.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8], help="fleet sizes to time")
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.sizes):
        parser.error("--sizes must be positive")
    yield_cpu_to_simulated_pis()
    figures: dict[str, float] = {}
    cpu_busy: dict[str, float] = {}
    control_cpu: dict[str, float] = {}
    disk: dict[str, dict[str, dict[str, int]]] = {}
    fallbacks: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hp-bench-") as tmp:
        bench = BenchFleet(Path(tmp))

        def play(
            figure: str,
            playbook: str,
            extravars: dict[str, Any] | None = None,
            traffic: Traffic | None = None,
        ) -> None:
            extravars = {"reports_dir": str(Path(tmp) / "reports"), **(extravars or {})}
            before, cpu_before = cpu_times(), children_cpu_s()
            with traffic or contextlib.nullcontext():
                run = run_playbook(playbook, inventory=bench.spec.inventory_path, extravars=extravars)
            wall = checked(run)
            cpu_busy[figure] = busy_pct(before, cpu_times())
            control_cpu[figure] = children_cpu_s() - cpu_before
            if traffic is None:
                figures[figure] = wall
            print(
                f"{figure}: {wall:.1f} s, host CPUs {cpu_busy[figure]:.0f}% busy, "
                f"control host {control_cpu[figure]:.1f} CPU s",
                flush=True,
            )
            if traffic is not None:
                fallbacks[figure] = fallback_summary(traffic.verdicts())
                for pi, seen in fallbacks[figure].items():
                    print(
                        f"{figure} {pi}: {seen['answers']} answers through EdgeInfer, "
                        f"{seen['not_from_the_model']} not from the model, {seen['failed_requests']} failed, "
                        f"fallbacks {seen['fallbacks']}",
                        flush=True,
                    )

        try:
            bench.fresh(max(args.sizes))  # the build reads the kinds of Pi from the Pis: bookworm and trixie
            play("build_s", "playbooks/build.yml")
            for size in sorted(args.sizes):
                bench.fresh(size)
                play(f"clean_{size}_s", "site.yml")
                if size != 4:
                    continue
                play("rerun_4_s", "site.yml")
                before = bench.disk(size)
                play("new_version_4_s", "site.yml", {"model_config": other_model_config(Path(tmp), 1.05)})
                disk["new_version_4"] = disk_delta(before, bench.disk(size))
                added = max(pi["disk_added_bytes"] for pi in disk["new_version_4"].values())
                figures["new_version_4_max_disk_added_mb"] = added / 1e6
                for pi, delta in sorted(disk["new_version_4"].items()):
                    print(
                        f"new_version_4 {pi}: copied {delta['copied_bytes'] / 1e6:.2f} MB, "
                        f"disk added {delta['disk_added_bytes'] / 1e6:.2f} MB",
                        flush=True,
                    )
                play("rollback_4_s", "rollback.yml")
                # The same runs under 50 Hz traffic, with a third model version so the update copies a bundle.
                play("rerun_4_traffic", "site.yml", traffic=bench.traffic(size))
                update = {"model_config": other_model_config(Path(tmp), 1.1)}
                play("new_version_4_traffic", "site.yml", update, traffic=bench.traffic(size))
                play("rollback_4_traffic", "rollback.yml", traffic=bench.traffic(size))
                figures["fallbacks_4"] = fallback_total(fallbacks)
        except BenchmarkError as exc:
            print(f"benchmark_fleet: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.down()
    summary = {
        "figures_s": figures,
        "host_cpu_busy_pct": cpu_busy,
        "control_host_cpu_s": control_cpu,
        "disk_per_pi": disk,
        "fallbacks_by_cause": fallbacks,
        "targets": judge(figures),
    }
    for entry in summary["targets"].values():
        value = "-" if entry["value"] is None else f"{entry['value']:.2f}"
        print(f"{entry['target']}: {value} (limit {entry['limit']}) -> {entry['status']}")
    out = REPO / "reports" / "benchmark_fleet.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
