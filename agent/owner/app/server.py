"""The owner's web app: routes over :class:`OwnerService`, behind :class:`Guard`.

Starlette routes, served by uvicorn on 127.0.0.1. The page (``static/``: plain HTML, CSS and
JavaScript modules, no build step) calls the JSON API below; media routes stream plaintext
decrypted on the fly from the sealed object in memory (HTTP range requests for ``<video>``).

    GET  /                                   the page (after ``/?token=...`` set the cookie)
    GET  /static/<file>                      its scripts and styles
    GET  /api/me                             owner key id, recipient, devices, bucket
    GET  /api/now                            devices with status, brokers, recent events
    GET  /api/events                         server-sent events: the live feed
    GET  /api/devices/<id>/consent           consent in force (signed consent.show)
    POST /api/devices/<id>/consent/grant     {"scopes": [...], "days": N | "until_revoked": true}
    POST /api/devices/<id>/consent/revoke    {"scopes": [...] | null}
    GET  /api/devices/<id>/ledger            the ledger, verified, pin advanced
    POST /api/devices/<id>/members           {"public_key", "recipient", "role"}
    POST /api/devices/<id>/members/remove    {"key_id"}
    GET  /api/devices/<id>/clips?page=N      the timeline (verified manifests, chain)
    GET  /api/devices/<id>/clips/<clip>/video     decrypted MP4, Range ok (?download=1)
    GET  /api/devices/<id>/clips/<clip>/snapshot  decrypted JPEG
    GET  /api/devices/<id>/clips/<clip>/export    the sealed object as stored (.age)
    GET  /api/live/<id>/<clip>.jpg           a picture decoded from the clip in progress
    POST /api/pair                           {"broker", "device_id", "setup_code" | "qr", ...}
    GET  /api/devices/<id>/requests          footage requests, with the clips in their window
    POST /api/devices/<id>/requests/<req>/approve  {"clips": [...] | null, "days": N}
    POST /api/devices/<id>/requests/<req>/deny     {"reason": "..." | null}
    WS   /api/devices/<id>/live?seconds=N    live view: codec, init segment, fragments (live_socket)

Usage (agent.owner.cli ``doorward owner app``)::

    run(service, port=0, open_browser=True)     # prints the URL with its token; Ctrl-C stops
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from agent.errors import DoorwardError
from agent.owner.app.live import LiveFeed
from agent.owner.app.live_socket import serve_live
from agent.owner.app.requests_api import RequestsApi
from agent.owner.app.security import ASGIApp, Guard
from agent.owner.app.service import OwnerService, QrLabel
from agent.owner.app.snapshots import SnapshotFinder
from uplink import AgeError

STATIC = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_ID = r"{device_id:str}"
KEEPALIVE_S = 15.0


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, stop)`` for a single ``bytes=`` range, None for no (or an ignorable) header,
    ``"unsatisfiable"`` for a range outside ``size``."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: the whole body (RFC 9110 allows it)
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        return (max(size - n, 0), size) if n > 0 and size > 0 else "unsatisfiable"
    start = int(m.group(1))
    stop = min(int(m.group(2)) + 1, size) if m.group(2) else size
    if start >= size or stop <= start:
        return "unsatisfiable"
    return start, stop


def _error(exc: Exception, status: int = 502) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status)


def _page(guard: Guard) -> str:
    html = resources.files("agent.owner.app").joinpath("static/index.html").read_text("utf-8")
    return html.replace("{{CSRF}}", guard.csrf)


class App:
    """The routes; ``asgi`` is the guarded ASGI app to serve."""

    def __init__(self, service: OwnerService, guard: Guard, feed: LiveFeed | None = None,
                 snapshots: SnapshotFinder | None = None) -> None:
        self.service = service
        self.guard = guard
        self.feed = feed
        self.snapshots = snapshots
        self.stopping = threading.Event()
        d = "/api/devices/" + _ID
        routes = [
            Route("/", self.index),
            Route("/static/{name:str}", self.static),
            Route("/api/me", self.me),
            Route("/api/now", self.now),
            Route("/api/events", self.events),
            Route(d + "/consent", self.consent),
            Route(d + "/consent/grant", self.grant, methods=["POST"]),
            Route(d + "/consent/revoke", self.revoke, methods=["POST"]),
            Route(d + "/ledger", self.ledger),
            Route(d + "/members", self.member_add, methods=["POST"]),
            Route(d + "/members/remove", self.member_remove, methods=["POST"]),
            Route(d + "/clips", self.clips),
            Route(d + "/clips/{clip_id:str}/video", self.video),
            Route(d + "/clips/{clip_id:str}/snapshot", self.snapshot),
            Route(d + "/clips/{clip_id:str}/export", self.export),
            Route("/api/live/" + _ID + "/{clip_id:str}.jpg", self.live_jpeg),
            Route("/api/pair", self.pair, methods=["POST"]),
            # footage requests (issue 16)
            Route(d + "/requests", self.requests_list),
            Route(d + "/requests/{request_id:str}/approve", self.requests_approve,
                  methods=["POST"]),
            Route(d + "/requests/{request_id:str}/deny", self.requests_deny, methods=["POST"]),
            # live view (issue 17)
            WebSocketRoute(d + "/live", self.live_view),
        ]
        self.requests = RequestsApi(service)
        self.starlette = Starlette(routes=routes)
        self.asgi: ASGIApp = guard.wrap(self.starlette)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Response:
        try:
            result = await run_in_threadpool(fn, *args, **kwargs)
        except DoorwardError as exc:
            return _error(exc)
        return JSONResponse(result)

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        try:
            doc = await request.json()
        except ValueError as exc:
            raise DoorwardError(f"the request body is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise DoorwardError("the request body must be a JSON object")
        return doc

    # -- page ------------------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return HTMLResponse(_page(self.guard))

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", status_code=404)
        data = resources.files("agent.owner.app").joinpath(f"static/{name}").read_bytes()
        return Response(data, media_type=STATIC[name])

    async def me(self, request: Request) -> Response:
        return await self._call(self.service.describe)

    async def now(self, request: Request) -> Response:
        devices = await run_in_threadpool(self.service.describe)
        feed = self.feed
        for d in devices["devices"]:
            d["status"] = feed.status.get(d["device_id"]) if feed else None
        return JSONResponse({**devices, "brokers": feed.broker_state() if feed else [],
                             "events": feed.recent()[:50] if feed else []})

    async def events(self, request: Request) -> Response:
        feed = self.feed
        if feed is None:
            return _error(DoorwardError("the live feed is off"), 503)
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

        def push(item: dict[str, Any]) -> None:  # on the feed's thread: enqueue only
            loop.call_soon_threadsafe(_offer, inbox, item)

        stop = feed.listen(push)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                idle = 0.0
                while not self.stopping.is_set():  # so a shutdown need not cancel the stream
                    try:
                        item = await asyncio.wait_for(inbox.get(), 0.5)
                    except TimeoutError:
                        idle += 0.5
                        if idle >= KEEPALIVE_S:
                            idle = 0.0
                            yield b": keepalive\n\n"
                        continue
                    idle = 0.0
                    yield f"event: {item['type']}\ndata: {json.dumps(item)}\n\n".encode()
            finally:
                stop()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    # -- consent, ledger, members, pairing ---------------------------------------------------
    async def consent(self, request: Request) -> Response:
        return await self._call(self.service.consent_show, request.path_params["device_id"])

    async def grant(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            days = body.get("days")
            scopes, until = body.get("scopes"), bool(body.get("until_revoked"))
            if not isinstance(scopes, list) or (days is not None and not isinstance(days, int)):
                raise DoorwardError("give scopes as a list and days as a whole number")
        except DoorwardError as exc:
            return _error(exc, 400)
        return await self._call(self.service.consent_grant, request.path_params["device_id"],
                                scopes, days, until)

    async def revoke(self, request: Request) -> Response:
        try:
            scopes = (await self._body(request)).get("scopes")
            if scopes is not None and not isinstance(scopes, list):
                raise DoorwardError("give scopes as a list, or null for all")
        except DoorwardError as exc:
            return _error(exc, 400)
        return await self._call(self.service.consent_revoke, request.path_params["device_id"],
                                scopes)

    async def ledger(self, request: Request) -> Response:
        return await self._call(self.service.ledger, request.path_params["device_id"])

    async def member_add(self, request: Request) -> Response:
        try:
            b = await self._body(request)
            args = [str(b.get(k) or "") for k in ("public_key", "recipient", "role")]
        except DoorwardError as exc:
            return _error(exc, 400)
        return await self._call(self.service.member_add, request.path_params["device_id"], *args)

    async def member_remove(self, request: Request) -> Response:
        try:
            key_id = str((await self._body(request)).get("key_id") or "")
        except DoorwardError as exc:
            return _error(exc, 400)
        return await self._call(self.service.member_remove, request.path_params["device_id"],
                                key_id)

    # -- footage requests (issue 16) ------------------------------------------------------------
    async def requests_list(self, request: Request) -> Response:
        return await self._call(self.requests.listing, request.path_params["device_id"])

    async def requests_approve(self, request: Request) -> Response:
        try:
            b = await self._body(request)
            clips, days = b.get("clips"), b.get("days", 2)
            if clips is not None and not (isinstance(clips, list)
                                          and all(isinstance(c, str) for c in clips)):
                raise DoorwardError("give clips as a list of clip ids, or null for all")
            if not isinstance(days, int):
                raise DoorwardError("give days as a whole number")
        except DoorwardError as exc:
            return _error(exc, 400)
        return await self._call(self.requests.approve, request.path_params["device_id"],
                                request.path_params["request_id"], clips, days)

    async def requests_deny(self, request: Request) -> Response:
        try:
            reason = (await self._body(request)).get("reason")
            if reason is not None and not isinstance(reason, str):
                raise DoorwardError("give the reason as text")
        except DoorwardError as exc:
            return _error(exc, 400)
        return await self._call(self.requests.deny, request.path_params["device_id"],
                                request.path_params["request_id"], reason or None)

    async def pair(self, request: Request) -> Response:
        try:
            b = await self._body(request)
            broker = str(b.get("broker") or "").strip()
            if not broker:
                raise DoorwardError("give the broker's address, e.g. mqtt://192.168.1.10:1883")
            fp: str | None
            if b.get("qr"):
                label = QrLabel.parse(str(b["qr"]))
                device_id, code, fp = label.device_id, label.setup_code, label.fingerprint
            else:
                device_id = str(b.get("device_id") or "").strip()
                code = str(b.get("setup_code") or "").strip()
                fp = str(b.get("fingerprint") or "").strip() or None
                if not device_id or not code:
                    raise DoorwardError("give the device id and setup code from the label, or "
                                        "the label's QR text")
        except DoorwardError as exc:
            return _error(exc, 400)
        try:
            paired = await run_in_threadpool(self.service.pair, broker_url=broker,
                                             device_id=device_id, setup_code=code,
                                             fingerprint=fp, timeout=float(b.get("timeout") or 60))
        except DoorwardError as exc:
            return _error(exc)
        if self.feed is not None:
            self.feed.add_device(self.service.device(paired["device_id"]))
        return JSONResponse(paired)

    # -- clips -----------------------------------------------------------------------------------
    async def clips(self, request: Request) -> Response:
        q = request.query_params
        try:
            page = int(q.get("page", "0"))
        except ValueError:
            return _error(DoorwardError("page must be a whole number"), 400)
        return await self._call(self.service.clips, request.path_params["device_id"], page=page,
                                refresh=q.get("refresh") == "1")

    async def video(self, request: Request) -> Response:
        p = request.path_params
        try:
            media = await run_in_threadpool(self.service.sealed, p["device_id"], p["clip_id"],
                                            "video")
        except DoorwardError as exc:
            return _error(exc, 404 if "no verified manifest" in str(exc) else 502)
        size = media.size
        headers = {"Accept-Ranges": "bytes"}
        if request.query_params.get("download") == "1":
            headers["Content-Disposition"] = f'attachment; filename="{p["clip_id"]}.mp4"'
        wanted = parse_range(request.headers.get("range"), size)
        if wanted == "unsatisfiable":
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        if wanted is None:
            start, stop, status = 0, size, 200
        else:
            assert isinstance(wanted, tuple)
            start, stop = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["Content-Length"] = str(stop - start)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type="video/mp4")

        def body() -> Iterator[bytes]:
            try:
                yield from media.iter_range(start, stop)
            except AgeError:  # the headers are gone: end the body short, the player notices
                return

        return StreamingResponse(body(), status_code=status, headers=headers,
                                 media_type="video/mp4")

    async def snapshot(self, request: Request) -> Response:
        p = request.path_params
        try:
            media = await run_in_threadpool(self.service.sealed, p["device_id"], p["clip_id"],
                                            "snapshot")
            jpeg = await run_in_threadpool(media.read, 0, media.size)
        except (DoorwardError, AgeError) as exc:
            return _error(exc, 404 if "no verified manifest" in str(exc) else 502)
        return Response(jpeg, media_type="image/jpeg")

    async def export(self, request: Request) -> Response:
        p = request.path_params
        try:
            data, key = await run_in_threadpool(self.service.sealed_bytes, p["device_id"],
                                                p["clip_id"])
        except DoorwardError as exc:
            return _error(exc, 404 if "no verified manifest" in str(exc) else 502)
        name = key.rsplit("/", 1)[-1]
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def live_view(self, websocket: WebSocket) -> None:  # live view (issue 17)
        await serve_live(websocket, self.service)

    async def live_jpeg(self, request: Request) -> Response:
        p = request.path_params
        jpeg = self.snapshots.jpeg(p["device_id"], p["clip_id"]) if self.snapshots else None
        if jpeg is None:
            return Response("no picture yet", status_code=404)
        return Response(jpeg, media_type="image/jpeg")


def _offer(inbox: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    if inbox.full():  # a page that stopped reading: drop its oldest, never block the feed
        inbox.get_nowait()
    inbox.put_nowait(item)


def build(service: OwnerService, guard: Guard, *, live: bool = True,
          snapshot_wait_s: float = 60.0) -> tuple[App, LiveFeed | None]:
    """The app and its live feed (started by the caller), wired together."""
    finder = SnapshotFinder(service, wait_s=snapshot_wait_s)
    feed = None
    if live:
        snap = finder.find if service.bucket is not None else None
        feed = LiveFeed(service.ring, broker_url=service.broker_url, login=service.login,
                        snapshot=snap,
                        warm=finder.warm)
    return App(service, guard, feed, finder), feed


def _listen(port: int) -> Any:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))  # loopback only: the owner's computer, nobody else
        sock.listen(128)  # connections wait in the backlog until the server thread accepts
    except OSError as exc:
        sock.close()
        raise DoorwardError(f"cannot listen on 127.0.0.1:{port}: {exc}; pick another --port") \
            from exc
    return sock


def _server(app: App) -> Any:
    import uvicorn

    config = uvicorn.Config(app.asgi, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1)
    return uvicorn.Server(config)


def run(service: OwnerService, *, port: int = 0, open_browser: bool = True) -> None:
    """Serve on 127.0.0.1 until Ctrl-C: print the URL with its token, open it if asked."""
    sock = _listen(port)
    guard = Guard(sock.getsockname()[1])
    app, feed = build(service, guard)
    if feed is not None:
        feed.start()
    threading.Thread(target=service.warm, name="owner-app-warm", daemon=True).start()
    print(f"Doorward owner app: {guard.login_url}\n(only this computer can open it; Ctrl-C "
          "stops it)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(guard.login_url)
    try:
        _server(app).run(sockets=[sock])
    finally:
        app.stopping.set()
        if feed is not None:
            feed.stop()
        service.close()


class Running:
    """The app served from a thread (tests, benchmarks): ``url`` signs in; ``stop()`` ends it."""

    def __init__(self, service: OwnerService, *, live: bool = True,
                 snapshot_wait_s: float = 60.0) -> None:
        sock = _listen(0)
        self.guard = Guard(sock.getsockname()[1])
        self.app, self.feed = build(service, self.guard, live=live,
                                    snapshot_wait_s=snapshot_wait_s)
        if self.feed is not None:
            self.feed.start()
        self.service = service
        self.server = _server(self.app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       name="owner-app-server", daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.guard.port}"

    @property
    def url(self) -> str:
        return self.guard.login_url

    def stop(self) -> None:
        self.app.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.feed is not None:
            self.feed.stop()
        self.service.close()
