"""Live view in the owner's page in a real Chromium: the device card's Live button plays (MSE fed
over the app's WebSocket with fragments the local server verified and decrypted) against the real
daemon and Mosquitto; closing the dialog stops the session on the device (the ledger has it). A
WebSocket from another origin is refused."""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.owner.app.server import Running
from agent.owner.app.service import OwnerService
from tests.browser.conftest import screenshot
from tests.helpers import pair_for_test, spawn_daemon, wait_for
from tests.servers import MOSQUITTO_MISSING, Mosquitto, mosquitto_path

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # serial: real-time playback


@dataclass
class World:
    data: Path
    app: Running
    chrome: Any
    artifacts: Path

    def js(self, script: str, *args: Any) -> Any:
        return self.chrome.execute_script(script, *args)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chrome: Any, artifacts: Path
          ) -> Iterator[World]:
    if mosquitto_path() is None:
        pytest.skip(MOSQUITTO_MISSING)
    tmp = tmp_path_factory.mktemp("live-page")
    broker = Mosquitto(tmp / "mosquitto", tls=False)
    broker.start()
    p = pair_for_test(tmp, broker.url)
    data, ring = p.data, p.ring
    daemon, _ = spawn_daemon(tmp, broker.url)
    app = None
    try:
        wait_for(lambda: (_status(data).get("pid") == daemon.pid
                          and _status(data).get("mqtt_connected")) or daemon.poll() is not None,
                 timeout=30, what="the daemon to connect")
        assert daemon.poll() is None, daemon.communicate()[1]
        app = Running(OwnerService(ring, bucket=None, timeout=15))
        chrome.get(app.url)
        wait_for(lambda: chrome.execute_script(
            "return document.querySelectorAll('#devices .live-button').length > 0"),
            timeout=10, what="the device card's Live button: " + chrome.execute_script(
                "return document.body.innerText.slice(0, 600)") + str(chrome.get_log("browser")))
        yield World(data, app, chrome, artifacts)
    finally:
        chrome.get("about:blank")
        if app is not None:
            app.stop()
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
        broker.stop()


def _status(data: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((data / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


def _ledger(data: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{data / 'device.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT data FROM ledger WHERE kind = 'live-view'").fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def _live_state(world: World) -> str:
    """The live dialog's status line (what the socket last said: asking, live, an error, ended),
    the player's ready and network states, its buffered ranges and error, and the browser's log:
    a failure then says whether the device answered or the player stalled."""
    page = world.js(
        "const v = document.getElementById('live-video');"
        "return [document.getElementById('live-status').textContent, v.readyState,"
        " v.networkState, v.buffered.length, v.error && v.error.message]")
    return f"page {page}, browser log {world.chrome.get_log('browser')}"


def test_the_live_button_plays_and_closing_stops_the_session(world: World) -> None:
    assert world.js("return MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.42C01E\"')"), \
        "this Chromium cannot play H.264 in Media Source Extensions: install Debian's chromium"
    world.js("document.querySelector('#devices .live-button').click()")
    try:
        wait_for(lambda: world.js("const v = document.getElementById('live-video');"
                                  "return v.readyState >= 2 && v.currentTime > 0"),
                 timeout=20, what="live video to start playing")
    except AssertionError as e:  # the page's state when it gave up, not when it was clicked
        raise AssertionError(f"{e}: {_live_state(world)}") from e
    first = world.js("return document.getElementById('live-video').currentTime")
    wait_for(lambda: world.js("return document.getElementById('live-video').currentTime") > first
             + 1.0, timeout=10, what="currentTime to advance")
    screenshot(world.chrome, world.artifacts, "live-view")
    world.js("document.getElementById('live-close').click()")
    wait_for(lambda: _ledger(world.data), timeout=20, what="the live-view ledger entry")
    entry = _ledger(world.data)[-1]
    assert entry["reason"].startswith("stopped by") and entry["bytes"] > 0, entry


def test_a_websocket_from_another_origin_is_refused(world: World) -> None:
    host = world.app.url.split("//", 1)[1].split("/", 1)[0]
    conn = http.client.HTTPConnection(host, timeout=10)
    device = world.js("return document.querySelector('#devices [data-device]')"
                      ".getAttribute('data-device')")
    conn.request("GET", f"/api/devices/{device}/live", headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example",
        "Cookie": "; ".join(f"{c['name']}={c['value']}" for c in world.chrome.get_cookies())})
    resp = conn.getresponse()
    assert resp.status == 403, resp.status
