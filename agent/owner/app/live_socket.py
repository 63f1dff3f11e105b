"""Live view in the page (issue 17): a WebSocket carrying the decrypted fMP4 of one session.

``GET /api/devices/<id>/live?seconds=N`` upgraded to a WebSocket (behind the same Guard as every
route: the session cookie and, for a WebSocket, an Origin of this app). A worker thread runs
:func:`agent.owner.live_cli.watch` (the signed ``live.start``, verification, opening, renewals)
and hands each segment to the event loop; the socket sends a JSON text message
``{"codec": "avc1.PPCCLL"}`` then the init segment as binary, then each fragment as binary, and
``{"end": reason}`` or ``{"error": text}`` last. The page feeds the binaries to Media Source
Extensions. When the page closes the socket (the dialog closed, the tab gone) the worker stops
watching and sends ``live.stop``: the device ends the session at once. The plaintext exists only
in this process's memory and the page's.

Wiring (agent.owner.app.server)::

    WebSocketRoute("/api/devices/{device_id}/live", lambda ws: serve_live(ws, service))
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from agent.errors import DoorwardError
from agent.owner.app.service import OwnerService
from agent.owner.live_cli import watch
from uplink import LiveSegment

DEFAULT_SECONDS = 300
MAX_SECONDS = 3600  # renewed every 5 minutes while the page watches


async def serve_live(ws: WebSocket, service: OwnerService) -> None:
    """Run one live session for the page on ``ws`` (see the module docstring)."""
    await ws.accept()
    device_id = ws.path_params["device_id"]
    try:
        seconds = int(ws.query_params.get("seconds", DEFAULT_SECONDS))
    except ValueError:
        seconds = DEFAULT_SECONDS
    seconds = max(1, min(seconds, MAX_SECONDS))
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[Any] = asyncio.Queue()
    closed = threading.Event()

    def push(item: Any) -> None:  # on the worker thread: enqueue only
        loop.call_soon_threadsafe(out.put_nowait, item)

    def run() -> None:
        try:
            device = service.device(device_id)
            stats = watch(service.ring, device, service.broker(device), seconds, push,
                          timeout=service.timeout, keep_going=lambda: not closed.is_set())
            push({"end": stats["ended"], "stats": stats})
        except DoorwardError as exc:
            push({"error": str(exc)})
        finally:
            push(None)

    worker = threading.Thread(target=run, name=f"live-view-{device_id}", daemon=True)
    worker.start()
    listener = asyncio.ensure_future(_until_closed(ws, closed))
    try:
        while (item := await out.get()) is not None:
            if isinstance(item, LiveSegment):
                if item.kind == "init":
                    await ws.send_json({"codec": item.codec})
                if item.data:
                    await ws.send_bytes(item.data)
            elif not closed.is_set():
                await ws.send_json(item)
    except (WebSocketDisconnect, RuntimeError):
        closed.set()  # the page went away: the worker sends live.stop
    finally:
        closed.set()
        listener.cancel()
        await asyncio.to_thread(worker.join, 30)
        if ws.client_state.name == "CONNECTED":
            await ws.close()


async def _until_closed(ws: WebSocket, closed: threading.Event) -> None:
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
    finally:
        closed.set()


__all__ = ["serve_live"]
