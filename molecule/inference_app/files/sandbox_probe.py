"""Run inside hailo-inference.service's sandbox (and outside it, as the control): which writes and address
families the kernel lets through. Prints {check: "ok" | errno name} as JSON."""

import errno
import json
import os
import socket
import sys

OWN_DIR = sys.argv[1]  # owned by the service user, outside its ReadWritePaths
RESULT: dict[str, str] = {}


def attempt(name: str, action) -> None:
    try:
        action()
        RESULT[name] = "ok"
    except OSError as exc:
        RESULT[name] = errno.errorcode.get(exc.errno, str(exc.errno))


def write_and_remove(path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("probe")
    os.remove(path)


attempt("write_own_dir", lambda: write_and_remove(os.path.join(OWN_DIR, "probe")))
attempt("af_packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM).close())
attempt("af_netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())
attempt("af_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("af_unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
print(json.dumps(RESULT))
