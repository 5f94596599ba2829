"""The metrics-only listener: `GET /metrics` on its own port for the fleet's Prometheus, and nothing else.

    python -m app.metrics_listener --bind 0.0.0.0:METRICS_PORT --allow 10.0.0.5 \
        --app-url http://127.0.0.1:APP_PORT

as the inference_app role's unit runs it, with inference_app_metrics_port and inference_app_port.

Why a separate small server rather than a second bind of the app: the app stays bound to loopback and docker0,
so `/infer` is never reachable from off the Pi whatever this listener does, and this listener has one route,
so a firewall opening for its port cannot open the model. The allow-list is enforced here, on the TCP peer
address of each accepted connection, before a byte is read (socketserver's verify_request, made for this); the
unit adds systemd's IPAddressAllow/IPAddressDeny as a second, kernel-side fence where the host supports it.
Neither needs a firewall tool on the Pi.

It proxies the app's own loopback `/metrics` (so it does not care which app instance or process serves, nor
where their multiprocess files live), adds `hailo_pipeline_backend_up` (did the app answer at this scrape) and
appends the `*.prom` files of --textfile-dir (the EdgeInfer watch writes its result there). When the app is
down the listener still answers, with backend_up 0 and the watch's result: that is what the alerts need.
Standard library only, so it starts in milliseconds and holds no model.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import logging
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from app.config import LOOPBACK_URL

log = logging.getLogger("hailo_pipeline.metrics_listener")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Loopback is always allowed: local checks on the Pi (and the role's own readiness probe) use it.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks; a bare address is a /32 (/128). Raises ValueError naming a bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--allow {value!r} is not an IP address or network") from None
    return tuple(networks)


def peer_allowed(host: str, allowed: Sequence[Network]) -> bool:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the allow-list names them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in (*LOOPBACK, *allowed) if network.version == address.version)


def backend_up_text(up: bool) -> str:
    return (
        "# HELP hailo_pipeline_backend_up Whether the inference app answered /metrics at this scrape\n"
        "# TYPE hailo_pipeline_backend_up gauge\n"
        f"hailo_pipeline_backend_up {int(up)}\n"
    )


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        allowed: Sequence[Network],
        app_metrics_url: str,
        textfile_dir: Path | None,
        app_timeout_s: float = 2.0,
    ) -> None:
        # An IPv6 bind address needs an IPv6 socket (":: " also accepts IPv4 on a dual-stack host).
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.allowed = tuple(allowed)
        self.app_metrics_url = app_metrics_url
        self.textfile_dir = textfile_dir
        self.app_timeout_s = app_timeout_s
        super().__init__(address, MetricsHandler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Closes a connection from outside the allow-list before reading it: no answer, no hint."""
        if peer_allowed(client_address[0], self.allowed):
            return True
        log.warning("refused a connection from %s (not in the allow-list)", client_address[0])
        return False

    def app_metrics(self) -> str | None:
        try:
            with urllib.request.urlopen(self.app_metrics_url, timeout=self.app_timeout_s) as response:
                return response.read().decode()
        # URLError/OSError: app stopped or restarting; HTTPException: answer cut short; HTTPError (a
        # URLError): the app answered but not 200. All mean "no app metrics at this scrape".
        except (urllib.error.URLError, http.client.HTTPException, OSError, UnicodeDecodeError):
            return None

    def textfiles(self) -> str:
        if self.textfile_dir is None:
            return ""
        parts = []
        for path in sorted(self.textfile_dir.glob("*.prom")):
            try:
                text = path.read_text()
            except OSError:  # removed between glob and read
                continue
            parts.append(text if text.endswith("\n") else text + "\n")
        return "".join(parts)

    def scrape(self) -> str:
        app = self.app_metrics()
        body = app if app is not None else ""
        if body and not body.endswith("\n"):
            body += "\n"
        return body + backend_up_text(app is not None) + self.textfiles()


class MetricsHandler(BaseHTTPRequestHandler):
    server: MetricsServer
    server_version = "hailo-pipeline-metrics"
    sys_version = ""

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, "this listener serves GET /metrics only\n", "text/plain; charset=utf-8")
            return
        self._answer(200, self.server.scrape(), CONTENT_TYPE)

    def do_HEAD(self) -> None:
        self._answer(405, "", "text/plain; charset=utf-8")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def _answer(self, status: int, text: str, content_type: str) -> None:
        body = text.encode()
        self.send_response(status)
        if status == 405:
            self.send_header("Allow", "GET")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def parse_bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--bind {value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # No default port: the unit passes the one group_vars/pis sets, which Prometheus's targets use too.
    parser.add_argument("--bind", type=parse_bind, required=True, help="HOST:PORT to listen on")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        help="address or CIDR allowed to scrape (repeat); loopback always",
    )
    parser.add_argument("--app-url", default=LOOPBACK_URL, help="the app's loopback base URL")
    parser.add_argument(
        "--textfile-dir", type=Path, help="folder of *.prom files to append (the EdgeInfer watch)"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        allowed = parse_networks(args.allow)
    except ValueError as exc:
        parser.error(str(exc))
    server = MetricsServer(args.bind, allowed, args.app_url.rstrip("/") + "/metrics", args.textfile_dir)
    log.info(
        "serving /metrics on %s:%d to loopback and %s", *args.bind, [str(n) for n in allowed] or "nobody else"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
