"""`python -m simfleet engine|images|up|down|start|stop|status|arm64-check`."""

import argparse
import time

import docker.errors

from simfleet import arm64, engine, fleet, images


def _engine(args: argparse.Namespace) -> int:
    engine.ensure_engine()
    print("simfleet: docker engine answers")
    return 0


def _images(args: argparse.Namespace) -> int:
    started = time.monotonic()
    built = images.build_images(engine.ensure_engine())
    for tag, image in built.items():
        print(f"{tag}  {image.short_id}")
    print(f"simfleet: images ready in {time.monotonic() - started:.1f} s")
    return 0


def _up(args: argparse.Namespace) -> int:
    client = engine.ensure_engine()
    images.build_images(client)
    print(fleet.up(client, args.pis), end="")
    return 0


def _down(args: argparse.Namespace) -> int:
    fleet.down(engine.ensure_engine())
    return 0


def _stop(args: argparse.Namespace) -> int:
    fleet.stop(engine.ensure_engine(), args.name)
    return 0


def _start(args: argparse.Namespace) -> int:
    fleet.start(engine.ensure_engine(), args.name)
    return 0


def _status(args: argparse.Namespace) -> int:
    rows = fleet.status(engine.ensure_engine())
    print(fleet.format_status(rows))
    return 0 if rows and all(row.ready for row in rows) else 1


def _arm64_check(args: argparse.Namespace) -> int:
    return arm64.main(args.release or list(arm64.PI_RELEASES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simfleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "engine", help="install docker.io/debootstrap if missing, start dockerd if none answers"
    ).set_defaults(func=_engine)
    sub.add_parser(
        "images", help=f"build {', '.join(images.PI_IMAGES.values())} and {images.STANDIN_IMAGE}"
    ).set_defaults(func=_images)
    up = sub.add_parser(
        "up", help="bring up hp-pi-1..N on hp-fleet (every third on trixie), write inventory/local/hosts.yml"
    )
    up.add_argument("--pis", type=int, default=3, help="number of simulated Pis (default 3)")
    up.set_defaults(func=_up)
    sub.add_parser("down", help="remove the fleet's containers, network and volumes").set_defaults(func=_down)
    for name, func, verb in (("stop", _stop, "stop"), ("start", _start, "start")):
        cmd = sub.add_parser(name, help=f"{verb} one Pi (hp-pi-N or N)")
        cmd.add_argument("name")
        cmd.set_defaults(func=func)
    sub.add_parser("status", help="state, address and readiness of each Pi").set_defaults(func=_status)
    check = sub.add_parser(
        "arm64-check", help="serve each Pi OS release's aarch64 release under qemu; compare with x86_64"
    )
    check.add_argument(
        "--release", action="append", choices=list(arm64.PI_RELEASES), help="repeatable (default: all)"
    )
    check.set_defaults(func=_arm64_check)
    args = parser.parse_args(argv)
    if getattr(args, "pis", 1) < 1:
        parser.error("--pis must be at least 1")
    try:
        return int(args.func(args))
    except (engine.EngineError, fleet.FleetError, RuntimeError, docker.errors.DockerException) as exc:
        print(f"simfleet: error: {exc}")
        return 1
