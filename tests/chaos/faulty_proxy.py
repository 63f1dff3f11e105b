"""A fault-injecting HTTP proxy for the chaos tests: put it between the device and the bucket.

Each request is forwarded unchanged (headers included, so S3 signatures still verify) to the
upstream on loopback, except that, drawn per request from a seeded random generator, it may be:

- ``latency``: delayed by up to ``max_latency_s`` before it is forwarded;
- ``reset``: answered by closing the connection without a response (after reading the request);
- ``error``: answered 500 or 503 with an S3-style XML error, never forwarded;
- ``truncate``: forwarded, but the response body is cut in half and the connection closed
  (the headers still announce the full Content-Length).

Usage::

    proxy = FaultyProxy(upstream_port=s3.port, faults=Faults(reset=0.05, error=0.1), seed=7)
    proxy.start()                 # proxy.url -> the endpoint_url to give the device
    ...
    proxy.counts                  # {"forwarded": 812, "reset": 41, "error": 80, ...}
    proxy.stop()

Faults can be changed while it runs (``proxy.faults = Faults()`` turns it into a plain proxy).
"""

from __future__ import annotations

import http.client
import random
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


@dataclass(frozen=True)
class Faults:
    """Probabilities per request (they are tried in this order; the rest is forwarded)."""

    reset: float = 0.0
    error: float = 0.0
    truncate: float = 0.0
    latency: float = 0.0
    max_latency_s: float = 0.5


class FaultyProxy:
    """See the module docstring."""

    def __init__(self, upstream_port: int, faults: Faults, *, seed: int = 0) -> None:
        self.upstream_port, self.faults = upstream_port, faults
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                try:
                    proxy._handle(self)
                except (BrokenPipeError, ConnectionResetError):  # the device was killed
                    with proxy._lock:
                        proxy.counts["client-gone"] += 1
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                # a device killed mid-request resets its connection: expected here, so counted
                # rather than printed; anything else is printed as usual
                if isinstance(sys.exc_info()[1], ConnectionError):
                    with proxy._lock:
                        proxy.counts["client-gone"] += 1
                    return
                super().handle_error(request, client_address)  # type: ignore[arg-type]

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="faulty-proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _draw(self) -> str:
        f = self.faults
        with self._lock:
            x = self._rng.random()
            for name, p in (("reset", f.reset), ("error", f.error), ("truncate", f.truncate),
                            ("latency", f.latency)):
                if x < p:
                    return name
                x -= p
        return "forward"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        fault = self._draw()
        with self._lock:
            self.counts[fault] += 1
        if fault == "reset":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "error":
            code = 503 if self._rng.random() < 0.5 else 500
            xml = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                   f"{'SlowDown' if code == 503 else 'InternalError'}</Code>"
                   f"<Message>injected</Message></Error>").encode()
            h.send_response(code)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(xml)))
            h.end_headers()
            h.wfile.write(xml)
            return
        if fault == "latency":
            time.sleep(self._rng.uniform(0, self.faults.max_latency_s))
        self._forward(h, body, truncate=fault == "truncate")

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes, *, truncate: bool) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        finally:
            conn.close()
        h.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                h.send_header(k, v)
        length = resp.getheader("Content-Length") if h.command == "HEAD" else None
        h.send_header("Content-Length", length or str(len(data)))  # HEAD: the object's size
        h.end_headers()
        if truncate and data:
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(data)
