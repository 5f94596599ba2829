"""`python -m app`: start the inference app under gunicorn, exactly as the Pi's systemd unit does."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from app.backends.base import BackendError
from app.backends.selection import choose_backend
from app.config import BACKENDS, DEFAULT_BIND, ENV_DOC, AppConfig, ConfigError
from app.handover import REEXEC_ARGV_ENV, reexec_argv
from bundle_contract.files import BundleError, read_metadata, verify_bundle

log = logging.getLogger("app.cli")

GUNICORN_CONF = Path(__file__).with_name("gunicorn.conf.py")


def parser() -> argparse.ArgumentParser:
    env_lines = "\n".join(f"  {name:<36} {doc}" for name, doc in ENV_DOC.items())
    p = argparse.ArgumentParser(
        prog="python -m app",
        description=(
            "Serve the TCN-VAE encoder as EdgeInfer's model backend: gunicorn + Flask with POST /infer, "
            "GET /healthz (200 once the model is loaded and warmed up), /livez and /metrics. "
            "Replaces itself with gunicorn (app/gunicorn.conf.py)."
        ),
        epilog=(
            f"environment (flags win):\n{env_lines}\n\n"
            "on a Pi:\n  python -m app --bundle /opt/hailo_pipeline/current/bundle "
            "--bind 127.0.0.1:8000 --bind 172.17.0.1:8000\n"
            "HailoRT needs hailo_platform: `sudo apt install hailo-all`, venv with --system-site-packages."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--bundle", type=Path, help="bundle folder holding model_metadata.json [HAILO_PIPELINE_BUNDLE]"
    )
    p.add_argument(
        "--bind",
        action="append",
        metavar="HOST:PORT",
        help=f"address to listen on, repeatable (default {DEFAULT_BIND}); loopback and docker0 only on a Pi",
    )
    p.add_argument(
        "--backend", choices=BACKENDS, help="inference backend (default auto) [HAILO_PIPELINE_BACKEND]"
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="gunicorn worker processes [HAILO_PIPELINE_WORKERS]"
    )
    p.add_argument("--threads", type=int, metavar="N", help="threads per worker [HAILO_PIPELINE_THREADS]")
    p.add_argument(
        "--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="[HAILO_PIPELINE_LOG_LEVEL]"
    )
    return p


def gunicorn_environment(args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """The environment gunicorn and its workers get: flags win over inherited variables; checked and sized."""
    env = dict(env)
    for flag, name in (
        (args.bundle, "HAILO_PIPELINE_BUNDLE"),
        (args.backend, "HAILO_PIPELINE_BACKEND"),
        (args.workers, "HAILO_PIPELINE_WORKERS"),
        (args.threads, "HAILO_PIPELINE_THREADS"),
        (args.log_level, "HAILO_PIPELINE_LOG_LEVEL"),
    ):
        if flag is not None:
            env[name] = str(flag)
    config = AppConfig.from_env(env)
    check_is_bundle(config.bundle_dir)
    for name in ("HAILO_PIPELINE_WORKERS", "HAILO_PIPELINE_THREADS"):
        if name in env and (not env[name].isdigit() or int(env[name]) < 1):
            raise ConfigError(f"{name} must be a positive integer, got {env[name]!r}")
    if hailort_chosen(config) and not config.hailo_multi_process:
        if int(env.get("HAILO_PIPELINE_WORKERS", "1")) > 1:
            raise ConfigError(
                "HailoRT without hailort.service opens the chip from one process only: use --workers 1, "
                "or set HAILO_PIPELINE_HAILO_MULTI_PROCESS=true with hailort.service running"
            )
        env["HAILO_PIPELINE_WORKERS"] = "1"
    return env


def check_is_bundle(path: Path) -> None:
    """A path that is no bundle at all will never serve: exit now instead of answering 503 through every
    systemd restart. A bundle whose files fail their sha256 still starts: /healthz names the damaged file."""
    try:
        read_metadata(path)
    except BundleError as exc:
        raise ConfigError(f"--bundle {path} is not a bundle: {exc}") from None


def hailort_chosen(config: AppConfig) -> bool:
    """Decided before forking only for sizing; each worker decides (and logs) again for itself."""
    if config.backend == "onnxruntime":
        return False
    try:
        metadata = verify_bundle(config.bundle_dir)
    except BundleError as exc:
        log.warning("bundle does not verify, workers will report not ready: %s", exc)
        return False
    try:
        choice = choose_backend(config, metadata)
    except BackendError as exc:
        raise ConfigError(str(exc)) from None
    if choice.backend == "hailort":
        from app.backends.hailort_backend import import_hailo_platform

        try:
            import_hailo_platform()
        except BackendError as exc:
            raise ConfigError(str(exc)) from None
    return choice.backend == "hailort"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = parser().parse_args(argv)
    try:
        env = gunicorn_environment(args, dict(os.environ))
    except ConfigError as exc:
        print(f"python -m app: {exc}", file=sys.stderr)
        return 2
    # A release switch re-execs gunicorn's master as this same command, through `current` (app/handover.py).
    env[REEXEC_ARGV_ENV] = reexec_argv(sys.executable, sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)]
    for address in args.bind or [DEFAULT_BIND]:
        command += ["--bind", address]
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process so systemd's stop signal reaches gunicorn's master directly; the interpreter
    # running this module is the venv's, so its gunicorn is the one started.
    os.execve(sys.executable, command, env)
    return 0  # unreachable: execve does not return
