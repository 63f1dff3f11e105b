"""Issue 12, finding 1: the revoke's reply is sent only once the upload in flight has stopped.

The daemon's revoke hook (agent.delivery.wiring.uplink_hooks, via tests/adversarial/lane.py)
runs on the loop thread after the revocation commits; the controller publishes the reply when it
returns. Here the upload lane is held inside a request (the in-memory store's ``before_put``)
when the revocation commits: the hook must still be waiting then, and return only after the lane
stopped the upload.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.paths import DataDir
from tests.adversarial.lane import upload_rig
from tests.helpers import wait_for
from uplink.memory_store import MemoryObjectStore


def test_revoke_hook_returns_only_after_the_upload_in_flight_stopped(tmp_path: Path) -> None:
    store, inside, release = MemoryObjectStore(), threading.Event(), threading.Event()

    def hold(key: str) -> None:
        if key.endswith(".mp4.age"):
            inside.set()
            release.wait(20)

    store.before_put = hold
    clip = tmp_path / "clip.age"
    clip.write_bytes(b"c" * 300_000)
    replied = threading.Event()
    early: list[bool] = []

    def watch(data: Path) -> None:  # its own connection: sqlite objects are per thread
        db = DeviceDB(DataDir(data).device_db)
        try:
            consent = ConsentStore(db)
            wait_for(lambda: not consent.allows("clips", time.time()), timeout=10,
                     what="the revocation to commit")
            early.append(replied.wait(1.0))  # the PUT is still held: no reply may be out yet
        finally:
            db.close()
            release.set()

    with upload_rig(tmp_path, lambda: store) as rig:
        rig.grant(["clips"])
        rig.queue_clip(clip, None, "clips")
        assert inside.wait(20), "the upload never started"
        watcher = threading.Thread(target=watch, args=(rig.data,))
        watcher.start()
        rig.revoke(["clips"])  # on this (the loop's) thread, as the controller does
        replied.set()
        watcher.join(15)
        assert early == [False], "the reply would go out while the PUT is still in flight"
        assert rig.settled()  # stopped and dropped before the reply, not after
        assert store.objects == {}
        assert [e["kind"] for e in rig.entries()].count("outbox-drop") == 1
