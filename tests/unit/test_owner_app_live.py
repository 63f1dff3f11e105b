"""The owner app's live feed and snapshots: messages verified as ``owner events`` verifies them,
statuses kept per device, a picture found for a ring (from the clip in progress) in memory."""

from __future__ import annotations

import io
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.owner.app.live import LiveFeed
from agent.owner.app.service import OwnerService
from agent.owner.app.settings import BucketOptions
from agent.owner.app.snapshots import SnapshotFinder, live_url, newest_frame_jpeg
from tests.owner_app_fixtures import Bucketful
from uplink.age import encrypt
from uplink.clip_progress import ClipProgress, Segment, progress_key, segment_key, sign_progress
from uplink.manifest import SeqState
from uplink.memory_store import MemoryObjectStore
from uplink.messages import EventBody, MessageSigner, StatusBody, sign_status
from uplink.mqtt_types import InboundMessage
from uplink.objectstore import object_keys
from uplink.wire import iso_utc


def fmp4(seconds: float = 2.0, fps: int = 10) -> bytes:
    """A small fragmented MP4 as the device writes them (a fragment at each keyframe)."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4",
                 options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.codec_context.gop_size = fps
        s.codec_context.time_base = Fraction(1, fps)
        rng = np.random.default_rng(1)
        for i in range(int(seconds * fps)):  # noise: big fragments, as a real picture makes
            img = rng.integers(0, 255, (96, 160, 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return out.getvalue()


@pytest.fixture
def bucket(tmp_path: Path) -> Bucketful:
    return Bucketful.create(tmp_path / "owner", MemoryObjectStore())


def msg(b: Bucketful, payload: str | bytes, stream: str = "events", *,
        retain: bool = False) -> InboundMessage:
    data = payload.encode() if isinstance(payload, str) else payload
    return InboundMessage(f"doorward/{b.device_id}/{stream}", data, retain, 1)


def test_events_are_verified_opened_and_chained(bucket: Bucketful) -> None:
    feed = LiveFeed(bucket.ring)
    feed.load_keys()
    signer = MessageSigner(bucket.device_key)
    now = time.time()
    ring, state = signer.sign(SeqState(), EventBody("ring", "7", iso_utc(now), clip_id="c1"),
                              now=now, content="sealed",
                              recipients=[bucket.ring.identity.recipient])
    item = feed.feed(msg(bucket, ring.jws))
    assert item is not None and item["kind"] == "ring" and item["clip_id"] == "c1"
    assert item["verified"] and item["chain"] == [] and item["content"] == "sealed"
    _, state2 = signer.sign(state, EventBody("motion-started", "8", iso_utc(now)), now=now,
                            content="clear")
    third, _ = signer.sign(state2, EventBody("motion-ended", "8", iso_utc(now)), now=now,
                           content="clear")
    gap = feed.feed(msg(bucket, third.jws))  # the second never arrived: said so
    assert gap is not None and gap["chain"]
    forged = feed.feed(msg(bucket, ring.jws[:-4] + "AAAA"))
    assert forged is not None and forged["type"] == "rejected"
    assert feed.feed(msg(bucket, ring.jws, "cmd")) is None  # commands are not events
    assert [e["id"] for e in feed.recent()] == [3, 2, 1]


def test_status_online_then_the_brokers_offline_will(bucket: Bucketful) -> None:
    feed = LiveFeed(bucket.ring)
    feed.load_keys()
    token = sign_status(StatusBody("online", "1.2.3", 5), bucket.device_key, now=time.time())
    item = feed.feed(msg(bucket, token, "status", retain=True))
    assert item is not None and item["state"] == "online" and item["version"] == "1.2.3"
    assert feed.status[bucket.device_id]["verified"]
    item = feed.feed(msg(bucket, b"offline", "status"))
    assert item is not None and item["state"] == "offline" and not item["verified"]
    assert feed.status[bucket.device_id]["version"] == "1.2.3"  # last known, kept


def test_newest_frame_of_a_prefix_decodes_to_jpeg() -> None:
    video = fmp4()
    whole = newest_frame_jpeg(video)
    assert whole is not None and whole[:2] == b"\xff\xd8"
    assert newest_frame_jpeg(video[: len(video) * 4 // 5]) is not None  # cut mid-fragment
    assert newest_frame_jpeg(b"not a video") is None


def _in_progress(b: Bucketful, clip_id: str, video: bytes) -> None:
    """Upload ``clip_id`` as the device does while recording: sealed segments + signed record."""
    from datetime import UTC, datetime

    base = object_keys("doorward", b.device_id, clip_id, datetime.now(UTC).date()
                       ).manifest.removesuffix(".manifest.jws")
    sealed = encrypt(video, [b.ring.identity.recipient])
    cut = len(sealed) - 100  # a clip still being written: its final chunk not there yet
    import hashlib

    seg = Segment(segment_key(base, 1), 0, cut, hashlib.sha256(sealed[:cut]).hexdigest())
    b.store.put_bytes(seg.key, sealed[:cut])
    record = ClipProgress(device_id=b.device_id, clip_id=clip_id, segments=(seg,),
                          recipients=(str(b.ring.identity.recipient),),
                          updated_at=iso_utc(time.time()))
    b.store.put_bytes(progress_key(base), sign_progress(record, b.device_key).encode())


def test_a_ring_gets_its_picture_from_the_clip_in_progress(bucket: Bucketful) -> None:
    service = OwnerService(bucket.ring, bucket=BucketOptions("b"), store=bucket.store)
    finder = SnapshotFinder(service, wait_s=2, poll_s=0.05)
    assert finder.find(bucket.device_id, "c-none") is None  # nothing came: no picture
    _in_progress(bucket, "c-live", fmp4(seconds=3))
    assert finder.find(bucket.device_id, "c-live") == live_url(bucket.device_id, "c-live")
    jpeg = finder.jpeg(bucket.device_id, "c-live")
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    service.close()


def test_a_ring_prefers_the_uploaded_snapshot_once_the_manifest_is_there(
        bucket: Bucketful) -> None:
    from datetime import UTC, datetime

    bucket.add_clip("c-done", b"video", b"\xff\xd8pic", start=datetime.now(UTC))
    service = OwnerService(bucket.ring, bucket=BucketOptions("b"), store=bucket.store)
    finder = SnapshotFinder(service, wait_s=1, poll_s=0.05)
    url = finder.find(bucket.device_id, "c-done")
    assert url == f"/api/devices/{bucket.device_id}/clips/c-done/snapshot"
    assert service.manifest(bucket.device_id, "c-done").clip_id == "c-done"
    service.close()


def test_snapshot_is_pushed_to_listeners_for_every_event_of_the_clip(bucket: Bucketful) -> None:
    feed = LiveFeed(bucket.ring, snapshot=lambda d, c: f"/pic/{c}")
    feed.load_keys()
    got: list[dict[str, Any]] = []
    done = threading.Event()

    def listener(item: dict[str, Any]) -> None:
        got.append(item)
        if item["type"] == "snapshot":
            done.set()

    feed.listen(listener)
    feed._snapper = threading.Thread(target=feed._snap_loop, daemon=True)
    feed._snapper.start()
    signer = MessageSigner(bucket.device_key)
    now = time.time()
    ring, _ = signer.sign(SeqState(), EventBody("ring", "7", iso_utc(now), clip_id="c9"),
                          now=now, content="clear")
    item = feed.feed(msg(bucket, ring.jws))
    assert item is not None
    assert done.wait(5)
    assert got[-1] == {"type": "snapshot", "id": item["id"], "device_id": bucket.device_id,
                       "clip_id": "c9", "snapshot": "/pic/c9", "kind": "ring"}
    assert feed.recent()[0]["snapshot"] == "/pic/c9"
    feed._snapshots.put(None)
