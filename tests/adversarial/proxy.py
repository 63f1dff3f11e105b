"""A throttling TCP proxy for tests: a slow S3 endpoint, so an upload is reliably in flight.

Usage::

    with ThrottlingProxy(("127.0.0.1", seaweed.port), bytes_per_s=64 * 1024) as proxy:
        settings = S3Settings(bucket=..., endpoint_url=proxy.url, addressing_style="path")
        ...
        started = proxy.wait_for_request(lambda r: r.path.endswith(".mp4.age"), body_bytes=65536)
        ...
        assert not [r for r in proxy.requests() if r.completed_at and r.completed_at > t]

It listens on a free 127.0.0.1 port and forwards every connection to ``upstream``; the client's
bytes towards the server are paced to ``bytes_per_s`` (shared by all connections: the uplink is
the bottleneck), the server's answers pass at full speed. The accepted sockets get a small
receive buffer, so little of a request body can hide in the kernel between client and proxy.

It also reads the HTTP/1.1 requests it forwards (request line, ``Content-Length``, the body
length), so a test can tell when each request body has been forwarded completely: that is the
moment the server can act on it (an object stored, a part accepted). A request whose body never
completed (the client aborted the connection) keeps ``completed_at = None``.

Threads: one acceptor, two pumps per connection; :meth:`close` stops them all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

CHUNK = 4096
RCVBUF = 16 * 1024


@dataclass
class Request:
    """One HTTP request seen going upstream; times are ``time.time()``."""

    conn: int
    method: str
    path: str
    length: int | None  # Content-Length; None when absent (chunked: not tracked further)
    started_at: float
    forwarded: int = 0  # body bytes forwarded upstream so far
    completed_at: float | None = None  # when the last body byte was forwarded

    @property
    def open(self) -> bool:
        return self.completed_at is None


class ThrottlingProxy:
    """See the module docstring."""

    def __init__(self, upstream: tuple[str, int], bytes_per_s: float) -> None:
        self.upstream = upstream
        self.bytes_per_s = float(bytes_per_s)
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._requests: list[Request] = []
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._conn_ids = iter(range(1, 1 << 30))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> ThrottlingProxy:
        self._spawn(self._accept_loop)
        return self

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> ThrottlingProxy:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def set_rate(self, bytes_per_s: float) -> None:
        with self._lock:
            self.bytes_per_s = float(bytes_per_s)
            self._next_slot = 0.0

    # -- what was seen -----------------------------------------------------------------------------

    def requests(self) -> list[Request]:
        """A snapshot (copies) of every request seen so far, in order of arrival."""
        with self._lock:
            return [Request(**vars(r)) for r in self._requests]

    def wait_for_request(self, match: Callable[[Request], bool], *, body_bytes: int = 0,
                         timeout: float = 60.0) -> Request:
        """Wait until a request matching ``match`` has forwarded ``body_bytes`` of its body."""
        def found() -> Request | None:
            return next((r for r in self._requests if match(r) and r.forwarded >= body_bytes),
                        None)

        with self._changed:
            if not self._changed.wait_for(lambda: found() is not None, timeout):
                seen = [(r.method, r.path, r.forwarded) for r in self._requests]
                raise AssertionError(f"no matching request within {timeout} s; seen {seen}")
            hit = found()
            assert hit is not None
            return Request(**vars(hit))

    # -- threads ---------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="test-proxy")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
                conn = next(self._conn_ids)
            self._spawn(self._pump_up, conn, client, server)
            self._spawn(self._pump_down, server, client)

    def _pace(self, n: int) -> None:
        """Block until ``n`` more bytes fit under the rate cap (shared by all connections)."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + n / self.bytes_per_s
        delay = slot - time.monotonic()
        if delay > 0:
            self._closing.wait(delay)

    def _pump_up(self, conn: int, src: socket.socket, dst: socket.socket) -> None:
        parser = HttpRequests(conn, self._record)
        try:
            while not self._closing.is_set():
                data = src.recv(CHUNK)
                if not data:
                    break
                self._pace(len(data))
                dst.sendall(data)
                with self._changed:
                    parser.feed(data, time.time())
                    self._changed.notify_all()
        except OSError:
            pass
        finally:
            _close_pair(src, dst)

    def _pump_down(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closing.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close_pair(src, dst)

    def _record(self, request: Request) -> None:  # called with the lock held (from feed)
        self._requests.append(request)


@dataclass
class HttpRequests:
    """Splits one connection's client->server byte stream into :class:`Request` records."""

    conn: int
    on_request: Callable[[Request], None]
    head: bytes = b""
    current: Request | None = None
    lost: bool = False

    def feed(self, data: bytes, now: float) -> None:
        while data and not self.lost:
            cur = self.current
            if cur is not None and cur.completed_at is None:
                take = min((cur.length or 0) - cur.forwarded, len(data))
                cur.forwarded += take
                data = data[take:]
                if cur.forwarded >= (cur.length or 0):
                    cur.completed_at = now
                continue
            buf = self.head + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.head = buf
                return
            self.head, data = b"", buf[end + 4:]
            self._begin(buf[:end].decode("latin-1"), now)

    def _begin(self, head: str, now: float) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            self.lost = True
            return
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.lost = True
        length = int(headers["content-length"]) if "content-length" in headers else None
        self.current = Request(self.conn, parts[0], parts[1], length, now)
        if not length:
            self.current.completed_at = now
        self.on_request(self.current)


def _close_pair(a: socket.socket, b: socket.socket) -> None:
    for sock in (a, b):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
