"""The gunicorn worker for one thread per worker (the default): gthread's event loop, requests served inline.

gthread hands every request from its poller thread to a pool thread and back (two wake-ups and GIL passes per
request), and with several pool threads the Python parts of concurrent requests queue behind each other for
the GIL while ONNX Runtime runs. Profiling issue 15 showed that these handoffs and convoys, not the model,
were the latency tail. ONNX Runtime here runs on the calling thread, so a worker can never do more than one
inference at a time anyway: parallelism comes from workers (processes). This worker keeps gthread's poller,
keep-alive, connection limits and graceful stop, and runs each request on the poller thread, as an asyncio
server does.
"""

from __future__ import annotations

import socket
import struct
from concurrent import futures

from gunicorn.workers import gthread

# A request's bytes are read on the poller thread: a client that stalls mid-request must not stall every other
# connection of the worker. Loopback and docker0 deliver a request in microseconds; after this long the read
# fails and the connection is closed. (Kernel-level, so it holds whatever timeout Python sets on the socket.)
STALL_LIMIT_S = 1
_TIMEVAL = struct.pack("ll", STALL_LIMIT_S, 0)


class InlineWorker(gthread.ThreadWorker):
    def enqueue_req(self, conn: gthread.TConn) -> None:
        """Serve the connection's request now, on this thread, instead of submitting it to the pool."""
        if not conn.initialized:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL)
        done: futures.Future = futures.Future()
        if conn.initialized or conn.data_ready or conn.wait_for_data(0):
            done.set_result(self.handle(conn))
        else:
            # A fresh connection with no request yet waits in the poller (gthread's own deferral), so a
            # client that connects early never holds the thread.
            done.set_result(gthread._DEFER)
        self.finish_request(conn, done)
