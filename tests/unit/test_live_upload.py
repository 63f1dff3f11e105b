"""A clip in progress leaves in segments: the loop's segmenter and the uploads lane's side."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.segment_upload import SegmentUploaded, SegmentUploader, Superseded
from agent.device.database import DeviceDB
from agent.recording.live_segments import LiveCut, LiveSegmenter
from agent.recording.recorder import ClipInProgress
from uplink.age import SEALED_CHUNK_SIZE, AgeReader, AgeWriter
from uplink.agekeys import Identity
from uplink.clip_progress import verify_progress
from uplink.keys import device_id_for, public_raw
from uplink.objectstore import PutResult

OWNER = Identity.generate()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Recording:
    """A recorder writing a real sealed file, chunk by chunk."""

    def __init__(self, path: Path) -> None:
        self.path, self.clip_id = path, "c0ffee"
        self.file = path.open("wb")
        self.writer = AgeWriter(self.file, [OWNER.recipient])
        self.plain = bytearray()

    def write(self, n: int) -> None:
        data = bytes([len(self.plain) % 251]) * n
        self.plain += data
        self.writer.write(data)
        self.file.flush()

    def in_progress(self) -> ClipInProgress | None:
        return ClipInProgress(self.clip_id, self.path, (str(OWNER.recipient),))


def segmenter(queued: list[LiveCut], clock: Clock, *, accept: bool = True) -> LiveSegmenter:
    def queue(cut: LiveCut) -> bool:
        if accept:
            queued.append(cut)
        return accept

    return LiveSegmenter(queue, every_s=2.0, clock=clock)


def test_segments_are_whole_sealed_chunks_contiguous_from_the_first_byte(tmp_path: Path) -> None:
    rec, clock, queued = Recording(tmp_path / "c.mp4.age.partial"), Clock(), []
    live = segmenter(queued, clock)
    live.tick(rec)  # the clip starts: the first cut is due in 2 s
    rec.write(3 * 65536 + 100)
    clock.t = 1.0
    assert live.tick(rec) is None  # not due yet
    clock.t = 2.0
    first = live.tick(rec)
    assert first is not None and first.offset == 0 and first.n == 1
    rec.write(65536)
    clock.t = 4.0
    second = live.tick(rec)
    assert second is not None and second.offset == first.length and second.n == 2
    assert (second.length % SEALED_CHUNK_SIZE) == 0
    joined = rec.path.read_bytes()[:second.offset + second.length]
    reader = AgeReader(io.BytesIO(joined), [OWNER], allow_truncated=True)
    opened = reader.read()
    assert opened == bytes(rec.plain[:len(opened)]) and len(opened) >= 4 * 65536


def test_without_consent_nothing_is_cut_and_the_next_cut_starts_at_zero(tmp_path: Path) -> None:
    rec, clock = Recording(tmp_path / "c.mp4.age.partial"), Clock()
    refused: list[LiveCut] = []
    live = segmenter(refused, clock, accept=False)
    live.tick(rec)
    rec.write(2 * 65536 + 1)
    clock.t = 2.0
    assert live.tick(rec) is None
    live.queue = lambda cut: refused.append(cut) is None  # consent granted mid-clip
    clock.t = 4.0
    cut = live.tick(rec)
    assert cut is not None and cut.offset == 0 and cut.n == 1


def test_a_new_clip_starts_again_from_segment_one(tmp_path: Path) -> None:
    rec, clock, queued = Recording(tmp_path / "c.mp4.age.partial"), Clock(), []
    live = segmenter(queued, clock)
    live.tick(rec)
    rec.write(2 * 65536 + 1)
    clock.t = 2.0
    assert live.tick(rec) is not None
    rec.clip_id = "beef"
    live.tick(rec)
    clock.t = 4.0
    assert live.tick(rec).n == 1  # type: ignore[union-attr]


class Bucket:
    """Just enough of the ObjectStore port, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> PutResult:
        self.objects[key] = data
        return PutResult(key, len(data), hashlib.sha256(data).hexdigest(), False)

    def delete(self, keys: Sequence[str]) -> list[str]:
        return [k for k in keys if self.objects.pop(k, None) is not None]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DeviceDB]:
    d = DeviceDB(tmp_path / "device.sqlite")
    yield d
    d.close()


def uploader(bucket: Bucket, db: DeviceDB, key: Ed25519PrivateKey) -> SegmentUploader:
    return SegmentUploader(bucket, db, prefix="doorward",  # type: ignore[arg-type]
                           device_id=device_id_for(public_raw(key)), device_key=key)


def spec(path: Path, n: int, offset: int, length: int) -> dict[str, Any]:
    return {"live": True, "clip_id": "c0ffee", "segment": n, "offset": offset, "length": length,
            "path": str(path), "recipients": [str(OWNER.recipient)]}


def test_segments_and_a_signed_progress_record_then_retired(tmp_path: Path,
                                                            db: DeviceDB) -> None:
    key, bucket, checks = Ed25519PrivateKey.generate(), Bucket(), []
    path = tmp_path / "c.mp4.age.partial"
    path.write_bytes(bytes(range(256)) * 40)
    up = uploader(bucket, db, key)
    first = up.upload(spec(path, 1, 0, 4000), checks.append)
    second = up.upload(spec(path, 2, 4000, 2000), checks.append)
    assert isinstance(first, SegmentUploaded) and isinstance(second, SegmentUploaded)
    assert checks == [None] * 4  # consent asked before each of the four requests
    record = verify_progress(bucket.objects[second.keys[1]], public_raw(key))
    assert [(s.offset, s.size) for s in record.segments] == [(0, 4000), (4000, 2000)]
    assert b"".join(bucket.objects[s.key] for s in record.segments) == path.read_bytes()[:6000]
    again = up.upload(spec(path, 2, 4000, 2000), checks.append)  # a retry after a crash
    assert again == second and len(checks) == 4
    stored = sorted(bucket.objects)
    assert sorted(up.retire("c0ffee")) == stored and bucket.objects == {}
    assert up.live_keys("c0ffee") == []


def test_a_segment_of_a_clip_already_sealed_or_erased_is_superseded(tmp_path: Path,
                                                                   db: DeviceDB) -> None:
    up = uploader(Bucket(), db, Ed25519PrivateKey.generate())
    gone = up.upload(spec(tmp_path / "renamed.partial", 1, 0, 10), lambda s: None)
    assert gone == Superseded("c0ffee")
    short = tmp_path / "cut.partial"
    short.write_bytes(b"x" * 5)  # cut back by recovery
    assert up.upload(spec(short, 1, 0, 10), lambda s: None) == Superseded("c0ffee")


def test_a_revoke_between_segment_and_record_stops_the_record(tmp_path: Path,
                                                              db: DeviceDB) -> None:
    bucket, path = Bucket(), tmp_path / "c.mp4.age.partial"
    path.write_bytes(b"y" * 100)
    calls: list[object] = []

    def progress(state: object) -> None:
        calls.append(state)
        if len(calls) == 2:
            raise RuntimeError("consent revoked")

    with pytest.raises(RuntimeError):
        uploader(bucket, db, Ed25519PrivateKey.generate()).upload(spec(path, 1, 0, 100), progress)
    assert [k for k in bucket.objects if k.endswith(".progress.jws")] == []


def test_a_segment_that_does_not_continue_the_run_is_superseded(tmp_path: Path,
                                                                db: DeviceDB) -> None:
    """After a withdrawal the loop's next cut starts past byte 0: it must not be joined."""
    path = tmp_path / "c.mp4.age.partial"
    path.write_bytes(b"z" * 300)
    bucket = Bucket()
    up = uploader(bucket, db, Ed25519PrivateKey.generate())
    assert up.upload(spec(path, 3, 200, 100), lambda s: None) == Superseded("c0ffee")
    assert bucket.objects == {}


class DiesAfterSegment(Bucket):
    """The device dies (or the bucket fails) after a segment is stored, before its record."""

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> PutResult:
        if key.endswith(".progress.jws") and any(".live-0002" in k for k in self.objects):
            raise ConnectionError("power lost")
        return super().put_bytes(key, data, content_type)


def test_a_segment_stored_before_a_crash_is_retired_with_the_rest(tmp_path: Path,
                                                                  db: DeviceDB) -> None:
    """Killed between a segment's PUT and its record: the whole clip's upload must still delete
    that segment (it was left in the bucket for good, outside every record)."""
    key, bucket = Ed25519PrivateKey.generate(), DiesAfterSegment()
    path = tmp_path / "c.mp4.age.partial"
    path.write_bytes(b"v" * 300)
    up = uploader(bucket, db, key)
    up.upload(spec(path, 1, 0, 100), lambda s: None)
    with pytest.raises(ConnectionError):
        up.upload(spec(path, 2, 100, 100), lambda s: None)
    assert any(".live-0002" in k for k in bucket.objects)
    after_restart = uploader(bucket, db, key)
    after_restart.retire("c0ffee")
    assert bucket.objects == {}


def test_a_revoke_between_segment_and_record_withdraws_the_segment(tmp_path: Path,
                                                                   db: DeviceDB) -> None:
    """Consent revoked after the first segment's PUT: the withdrawal must delete it, though no
    record names it (it stayed in the bucket after the revocation)."""
    bucket, path = Bucket(), tmp_path / "c.mp4.age.partial"
    path.write_bytes(b"y" * 100)
    up = uploader(bucket, db, Ed25519PrivateKey.generate())

    def revoked_after_put(state: object) -> None:
        if bucket.objects:
            raise RuntimeError("consent revoked")

    with pytest.raises(RuntimeError):
        up.upload(spec(path, 1, 0, 100), revoked_after_put)
    assert bucket.objects  # the segment went before the revocation was seen
    withdrawn = up.withdraw_all()
    assert bucket.objects == {} and [c for c, _ in withdrawn] == ["c0ffee"]
