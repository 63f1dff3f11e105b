"""The local control socket behind ``doorward press ring|setup [--hold SECONDS] [--data-dir D]``.

The daemon serves ``<data-dir>/control.sock``, a Unix stream socket with mode 0600, from one
background thread that serves up to ``MAX_CONNECTIONS`` connections at once, each for at most
``IO_TIMEOUT_S`` (so idle clients cannot lock ``doorward press`` out). Each connection carries
ONE request line of JSON (at most 1 KiB, newline included) and gets one reply line::

    -> {"cmd": "press", "button": "ring" | "setup", "hold_s": 3.5}      (hold_s optional, 0..30)
    <- whatever on_command returns, e.g. {"ok": true}; on a refusal {"ok": false, "error": "..."}

Anything malformed is refused with a reason and never reaches ``on_command``. Only the daemon's own
uid (or root) may talk to it (checked with SO_PEERCRED, on top of the file mode). Wiring::

    inbox: queue.Queue[object] = queue.Queue()
    def on_command(msg: dict[str, Any]) -> dict[str, Any]:
        inbox.put(msg)                      # only enqueue: the loop owns all state
        return {"ok": True}
    server = ControlServer(DataDir(data_dir).control_socket, on_command).start()
    sim = SimulatedPress(factory, ring_pin=17, setup_pin=27)   # agent.device.buttons; mock pins
    ... in the loop: a dequeued press -> sim.press(msg["button"], msg["hold_s"], now); every
    iteration sim.tick(now) (before buttons.tick(now)); at exit server.close().

The CLI side is :func:`send_command`, which refuses a socket that is not ours or not 0600.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.device.control_plane import ControlPress
from agent.errors import DoorwardError
from uplink import JsonRefused, loads_strict

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1024  # one request line, newline included
MAX_REPLY_BYTES = 65536
MAX_HOLD_S = 30.0
DEFAULT_HOLD_S = 0.2  # a plain `doorward press ring`: a short, finger-like press
IO_TIMEOUT_S = 2.0  # per connection, in all: a silent client is answered and closed after it
MAX_CONNECTIONS = 64  # served at once; past it the oldest connection is dropped
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes on Linux, NUL included
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

CommandHandler = Callable[[dict[str, Any]], dict[str, Any]]


def press_handler(inbox: queue.Queue[Any]) -> CommandHandler:
    """The daemon's ``on_command``: queue the press for the loop, which acts on it
    (``agent.device.control_plane.ControlPress``), and say it was queued."""

    def on_command(msg: dict[str, Any]) -> dict[str, Any]:
        inbox.put(ControlPress(msg["button"], float(msg["hold_s"])))
        return {"ok": True, "queued": f"press {msg['button']} for {msg['hold_s']} s"}

    return on_command


def parse_message(data: bytes) -> dict[str, Any]:
    """Validate one request line (without its newline); return it normalised, ``hold_s`` a float.

    Raises ValueError with the reason for anything but ``{"cmd": "press", "button": "ring"}`` (or
    "setup") plus an optional finite ``hold_s`` in 0..30: unknown or duplicate keys, NaN,
    non-objects, bad UTF-8.
    """
    try:
        obj = loads_strict(data)
    except JsonRefused as err:
        if err.member is not None:
            raise ValueError("request has a duplicate key") from err
        raise ValueError(f"request refused: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError("request is not UTF-8") from err
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"request is not JSON: {err}") from err
    if not isinstance(obj, dict):
        raise ValueError("request must be a JSON object")
    unknown = sorted(set(obj) - {"cmd", "button", "hold_s"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}: allowed are cmd, button, hold_s")
    if obj.get("cmd") != "press":
        raise ValueError(f'"cmd" must be "press", got {obj.get("cmd")!r}')
    button = obj.get("button")
    if button not in ("ring", "setup"):
        raise ValueError(f'"button" must be "ring" or "setup", got {button!r}')
    hold = obj.get("hold_s", DEFAULT_HOLD_S)
    if isinstance(hold, bool) or not isinstance(hold, int | float) or not math.isfinite(hold) \
            or not 0.0 <= hold <= MAX_HOLD_S:
        raise ValueError(f'"hold_s" must be a number of seconds in 0..{MAX_HOLD_S:g}, got {hold!r}')
    return {"cmd": "press", "button": button, "hold_s": float(hold)}


def peer_allowed(peer_uid: int, own_uid: int) -> bool:
    """The socket's access rule: the same user, or root."""
    return peer_uid in (own_uid, 0)


def _peer_uid(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)


class ControlServer:
    """Serves the control socket; ``start()`` binds it (0600) and starts the server thread.

    ``on_command`` gets each valid, normalised request and returns the reply object; it runs on
    the server thread, so it must only enqueue and return quickly. ``start()`` refuses
    (DoorwardError) if the path exists and is not a socket, or if a daemon already answers on it;
    a stale socket left by a crash is removed. ``close()`` stops the thread and removes the
    socket. Usable as a context manager (enter starts).
    """

    def __init__(self, path: Path, on_command: CommandHandler, *,
                 io_timeout_s: float = IO_TIMEOUT_S) -> None:
        self.path = path
        self._on_command = on_command
        self._io_timeout_s = io_timeout_s
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    def start(self) -> ControlServer:
        if self._sock is not None:
            raise RuntimeError(f"control server on {self.path} is already started")
        if len(os.fsencode(self.path)) > _SUN_PATH_MAX:
            raise DoorwardError(f"control socket path {self.path} is longer than {_SUN_PATH_MAX} "
                                "bytes, which Unix sockets cannot use: choose a shorter --data-dir")
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._inode = self._bind_private(sock)
            sock.listen(MAX_CONNECTIONS)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="doorward-control", daemon=True)
        self._thread.start()
        log.info("control socket listening", extra={"fields": {"path": str(self.path)}})
        return self

    def close(self) -> None:
        """Stop serving and remove the socket file (only if it is still ours). Idempotent."""
        if self._thread is not None and self._wake_w is not None:
            self._wake_w.send(b"x")
            self._thread.join(timeout=self._io_timeout_s * 2 + 5)
            if self._thread.is_alive():
                log.error("control server thread did not stop (on_command blocked?)")
        for s in (self._sock, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._sock = self._wake_r = self._wake_w = self._thread = None
        if self._inode is not None:
            try:
                if os.lstat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass  # already gone: the goal of close() holds
            self._inode = None

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise DoorwardError(f"{self.path} exists and is not a socket: move it away, doorward "
                                "keeps its control socket there")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(self._io_timeout_s)
            try:
                probe.connect(str(self.path))
            except ConnectionRefusedError:
                log.info("removing stale control socket",
                         extra={"fields": {"path": str(self.path)}})
                os.unlink(self.path)
                return
            except OSError as err:
                raise DoorwardError(f"cannot check the existing socket {self.path}: {err}") from err
        raise DoorwardError(f"another doorward is running with this data dir ({self.path.parent}): "
                            "stop it first, or use another --data-dir")

    def _bind_private(self, sock: socket.socket) -> int:
        # umask is process-wide, so keep the window short; the chmod + check below is what counts.
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError as err:
            raise DoorwardError(f"cannot create the control socket {self.path}: {err}; check that "
                                "the data dir exists and is writable") from err
        finally:
            os.umask(old)
        try:
            os.chmod(self.path, 0o600)
            st = os.lstat(self.path)
            if (not stat.S_ISSOCK(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o600
                    or st.st_uid != os.geteuid()):
                raise DoorwardError(
                    f"control socket {self.path} came out with mode {stat.S_IMODE(st.st_mode):o}, "
                    f"uid {st.st_uid}; refusing to serve")
        except BaseException:
            os.unlink(self.path)
            raise
        return st.st_ino

    def _serve(self) -> None:
        """Serve every connection at once from this one thread (non-blocking sockets and a
        selector), so silent clients cost a slot each, not everyone's turn: each connection has
        ``io_timeout_s`` in all to send its line, and past ``MAX_CONNECTIONS`` open ones the
        oldest is dropped to make room."""
        assert self._sock is not None and self._wake_r is not None
        listener, wake = self._sock, self._wake_r
        conns: dict[socket.socket, _Conn] = {}  # insertion order: oldest first
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            try:
                while True:
                    due = min((c.deadline for c in conns.values()), default=None)
                    wait = None if due is None else max(0.0, due - time.monotonic())
                    for key, _ in sel.select(wait):
                        if key.fileobj is wake:
                            return
                        if key.fileobj is listener:
                            self._accept_all(listener, sel, conns)
                        elif isinstance(key.fileobj, socket.socket) and key.fileobj in conns:
                            self._on_readable(conns[key.fileobj], sel, conns)
                    now = time.monotonic()
                    for c in [c for c in conns.values() if c.deadline <= now]:
                        self._finish(c, sel, conns, problem="no complete request in time")
            finally:
                for c in list(conns.values()):
                    self._drop(c, sel, conns)

    def _accept_all(self, listener: socket.socket, sel: selectors.BaseSelector,
                    conns: dict[socket.socket, _Conn]) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # nothing (more) waiting, or the client gave up between select and accept
            conn.setblocking(False)
            if len(conns) >= MAX_CONNECTIONS:
                oldest = next(iter(conns.values()))
                self._finish(oldest, sel, conns, problem=(
                    f"more than {MAX_CONNECTIONS} open connections to the control socket: the "
                    "oldest is dropped; send the request at once when you connect"))
            try:
                uid = _peer_uid(conn)
            except OSError:
                conn.close()
                continue
            c = _Conn(conn, uid, time.monotonic() + self._io_timeout_s)
            conns[conn] = c
            sel.register(conn, selectors.EVENT_READ)

    def _on_readable(self, c: _Conn, sel: selectors.BaseSelector,
                     conns: dict[socket.socket, _Conn]) -> None:
        try:
            chunk = c.sock.recv(MAX_MESSAGE_BYTES - len(c.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(c, sel, conns)  # reset by the peer: nobody to answer
            return
        c.buf += chunk
        if not chunk or b"\n" in chunk or len(c.buf) >= MAX_MESSAGE_BYTES:
            self._finish(c, sel, conns)

    def _drop(self, c: _Conn, sel: selectors.BaseSelector,
              conns: dict[socket.socket, _Conn]) -> None:
        """Close without a reply (the peer is gone, or the server stops)."""
        self._drop_from_selector(c, sel, conns)
        c.sock.close()

    def _finish(self, c: _Conn, sel: selectors.BaseSelector, conns: dict[socket.socket, _Conn],
                *, problem: str | None = None) -> None:
        """Judge what the connection sent (or ``problem``), reply once and close it."""
        self._drop_from_selector(c, sel, conns)
        try:
            c.sock.setblocking(True)
            c.sock.settimeout(self._io_timeout_s)  # the reply is one short line: this never waits
            self._handle(c, problem)
        except Exception:
            # One bad connection must not end the control socket for the daemon's lifetime.
            log.exception("control socket: request failed")
        finally:
            c.sock.close()

    @staticmethod
    def _drop_from_selector(c: _Conn, sel: selectors.BaseSelector,
                            conns: dict[socket.socket, _Conn]) -> None:
        conns.pop(c.sock, None)
        sel.unregister(c.sock)

    def _handle(self, c: _Conn, problem: str | None) -> None:
        conn, uid = c.sock, c.uid
        # Read (bounded) before judging, so that even a refused client gets the reply instead of a
        # broken pipe while it is still sending.
        line: bytes | None = None
        if problem is None:
            try:
                line = _request_line(bytes(c.buf))
            except ValueError as err:
                problem = str(err)
        if not peer_allowed(uid, os.geteuid()):
            log.warning("control socket: refused peer", extra={"fields": {"uid": uid}})
            _reply(conn, {"ok": False, "error": f"uid {uid} may not use this control socket"})
            return
        if problem is not None:
            log.warning("control socket: bad request", extra={"fields": {"reason": problem}})
            _reply(conn, {"ok": False, "error": problem})
            return
        if line is None:
            return  # connected and closed without a word: a liveness probe
        try:
            msg = parse_message(line)
        except ValueError as err:
            log.warning("control socket: bad request", extra={"fields": {"reason": str(err)}})
            _reply(conn, {"ok": False, "error": str(err)})
            return
        try:
            reply = self._on_command(msg)
        except Exception as err:
            # Logged with its traceback here and reported to the client: the socket keeps serving.
            log.exception("control socket: on_command failed")
            reply = {"ok": False, "error": f"the daemon could not take the command: {err!r}"}
        _reply(conn, reply)


@dataclass
class _Conn:
    """One client connection being served: its peer uid, what it sent so far, its deadline."""

    sock: socket.socket
    uid: int
    deadline: float
    buf: bytearray = field(default_factory=bytearray)


def _request_line(buf: bytes) -> bytes | None:
    """The request line without its newline, from everything the client sent (at most
    ``MAX_MESSAGE_BYTES``, up to its first newline or its end); None if it sent nothing;
    ValueError if it is not one line."""
    newline = buf.find(b"\n")
    if newline < 0:
        if len(buf) >= MAX_MESSAGE_BYTES:
            raise ValueError(f"request longer than {MAX_MESSAGE_BYTES} bytes")
        if not buf:
            return None
        raise ValueError("incomplete request: end it with a newline")
    if newline != len(buf) - 1:
        raise ValueError("one JSON line per connection")
    return buf[:newline]


def _reply(conn: socket.socket, reply: dict[str, Any]) -> None:
    try:
        conn.sendall(json.dumps(reply).encode() + b"\n")
    except OSError as err:
        log.warning("control socket: client left before the reply", extra={"fields": {"err": err}})


def send_command(path: Path, msg: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the daemon listening on ``path`` and return its reply object.

    Refuses (DoorwardError) unless ``path`` is a socket owned by us with mode 0600 and the process
    behind it runs as us or root; a missing or stale socket means no daemon runs for that data dir.
    """
    missing = (f"no running doorward daemon for data dir {path.parent} "
               "(start `doorward run`)")
    try:
        st = os.lstat(path)
    except FileNotFoundError as err:
        raise DoorwardError(missing) from err
    me = os.geteuid()
    if not stat.S_ISSOCK(st.st_mode):
        raise DoorwardError(f"{path} is not a socket: refusing to use it ({missing})")
    if st.st_uid != me:
        raise DoorwardError(f"{path} belongs to uid {st.st_uid}, not to you (uid {me}): refusing; "
                            "run this as the user that runs the daemon")
    if stat.S_IMODE(st.st_mode) != 0o600:
        raise DoorwardError(f"{path} has mode {stat.S_IMODE(st.st_mode):o}, not 600: refusing; "
                            "restart the daemon to recreate it")
    payload = json.dumps(msg).encode() + b"\n"
    if len(payload) > MAX_MESSAGE_BYTES:
        raise DoorwardError(f"request longer than {MAX_MESSAGE_BYTES} bytes")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            _connect(sock, path, timeout)
        except (ConnectionRefusedError, FileNotFoundError) as err:
            raise DoorwardError(
                f"{missing}; {path} is left over from a daemon that stopped") from err
        except OSError as err:
            raise DoorwardError(f"cannot connect to {path}: {err}") from err
        server_uid = _peer_uid(sock)
        if not peer_allowed(server_uid, me):
            raise DoorwardError(f"the process behind {path} runs as uid {server_uid}: refusing")
        try:
            sock.sendall(payload)
            raw = _read_reply(sock)
        except TimeoutError as err:
            raise DoorwardError(
                f"the daemon did not answer on {path} within {timeout:g} s") from err
        except OSError as err:
            raise DoorwardError(f"lost the connection to the daemon on {path}: {err}") from err
    try:
        reply = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DoorwardError(f"the daemon sent a reply that is not JSON: {err}") from err
    if not isinstance(reply, dict):
        raise DoorwardError("the daemon sent a reply that is not a JSON object")
    return reply


def _connect(sock: socket.socket, path: Path, timeout: float) -> None:
    """Connect, retrying while the server's listen queue is full (Linux answers EAGAIN at once
    instead of waiting, even with a timeout) until ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(str(path))
            return
        except BlockingIOError as err:
            if time.monotonic() >= deadline:
                raise DoorwardError(f"the daemon's control socket {path} stayed busy for "
                                    f"{timeout:g} s: try again, or restart the daemon") from err
            time.sleep(0.02)  # back off briefly: the daemon accepts everything it can at once


def _read_reply(sock: socket.socket) -> bytes:
    buf = bytearray()
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise DoorwardError("the daemon closed the connection without a complete reply")
        buf += chunk
        if len(buf) > MAX_REPLY_BYTES:
            raise DoorwardError(f"the daemon's reply is longer than {MAX_REPLY_BYTES} bytes")
    return bytes(buf[: buf.index(b"\n")])
