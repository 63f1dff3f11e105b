"""The Recorder end to end: libx264 -> pre-roll ring -> fragmented MP4 -> age -> store.

Checked with the real ``ffprobe`` and ``age`` CLIs. Frames are a synthetic 720p scene: a textured
background, a white square moving right, and a flickering patch (foliage) for a realistic bit rate.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from agent.camera.base import Frame
from agent.errors import ConfigError
from agent.recording.encoder import X264Encoder
from agent.recording.recorder import Recorder
from agent.store import ClipRecord, ClipSink, ClipStore
from tests.helpers import age_decrypt, ffprobe
from uplink.age import AgeReader
from uplink.agekeys import Identity, write_identity_file

FPS = 15
W, H = 1280, 720
SQUARE = 100


def square_x(i: int) -> int:
    return 50 + 7 * i


def scene(frames: int, width: int = W, height: int = H, first: int = 0) -> Iterator[Frame]:
    """Frames ``first`` .. ``first + frames - 1`` of the scene, at 15 fps."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.full((height * 3 // 2, width), 128, np.uint8)
    background[:height] = (40 + (xx // 8 + yy // 8) % 2 * 60 + xx * 80 // width).astype(np.uint8)
    tiles = (120 + rng.integers(-8, 9, (4, height // 4, width // 4))).astype(np.uint8)
    for i in range(first, first + frames):
        main = background.copy()
        main[height - height // 4 : height, : width // 4] = tiles[i % 4]
        x = square_x(i) * width // W
        main[200 : 200 + SQUARE, x : x + SQUARE] = 255
        yield Frame(i, i / FPS, main, main[:height:4, ::4])


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> tuple[Identity, Path]:
    identity = Identity.generate()
    key = tmp_path_factory.mktemp("owner") / "identity.txt"
    write_identity_file(key, identity)
    return identity, key


def new_store(path: Path, store_class: type[ClipStore] = ClipStore) -> ClipStore:
    store = store_class(path, max_bytes=1 << 30, retention_days=30, min_free_bytes=0)
    store.recover()
    return store


def open_sealed(path: Path, identity: Identity, *, allow_truncated: bool = False) -> bytes:
    with open(path, "rb") as f:
        reader = AgeReader(f, [identity], allow_truncated=allow_truncated)
        data = reader.read()
        assert reader.truncated == allow_truncated
        return data


def decoded_frames(mp4: bytes, *, cut: bool = False) -> int:
    """Frames PyAV decodes from an MP4 in memory (no plaintext file needed).

    A ``cut`` file may end inside a fragment: decoding stops with InvalidDataError there.
    """
    frames = 0
    with av.open(io.BytesIO(mp4), "r") as container:
        try:
            for _ in container.decode(video=0):
                frames += 1
        except av.error.InvalidDataError:
            if not cut:
                raise
    return frames


def record(
    recorder: Recorder, frames: int, start_i: int, end_i: int, area: Any = None, first: int = 0
) -> ClipRecord | None:
    """Push ``frames`` frames; start a clip on frame ``start_i``, end it on frame ``end_i``."""
    result = None
    size = recorder.encoder.width, recorder.encoder.height
    for frame in scene(frames, *size, first=first):
        recorder.push(frame)
        if frame.index == start_i:
            recorder.start_clip(frame.t, event_id=1, reason="motion")
        if recorder.recording and area is not None:
            recorder.offer_snapshot(frame, area(frame.index))
        if frame.index == end_i:
            result = recorder.end_clip(frame.t)
    return result


def test_clip_covers_pre_roll_and_event_and_plays(
    tmp_path: Path, owner: tuple[Identity, Path]
) -> None:
    identity, _ = owner
    store = new_store(tmp_path / "data")
    recorder = Recorder(X264Encoder(W, H, FPS), store, [identity.recipient], pre_roll_s=3.0)
    # trigger at t = 4.0 (frame 60), end at t = 9.0 (frame 135); the most motion at frame 100
    clip = record(recorder, 150, 60, 135, area=lambda i: 1.0 - abs(i - 100) / 100)
    assert clip is not None and not recorder.recording
    # pre-roll starts at the keyframe at t = 1.0 (GOP = 15 frames): frames 15..135
    assert clip.source_start_s == pytest.approx(1.0)
    assert clip.source_end_s == pytest.approx(9.0 + 1 / FPS)
    assert clip.duration_s == pytest.approx(121 / FPS)
    assert not clip.truncated and clip.bytes == clip.path.stat().st_size
    mp4 = open_sealed(clip.path, identity)
    assert mp4[4:8] == b"ftyp" and decoded_frames(mp4) == 121
    plain = tmp_path / "clip.mp4"  # only to hand to ffprobe; the store never holds plaintext
    plain.write_bytes(mp4)
    probe = ffprobe(plain)
    assert probe["codec"] == "h264" and probe["frames"] == 121
    assert probe["duration"] == pytest.approx(121 / FPS, abs=0.07)
    assert probe["duration"] >= 3.0 + 5.0  # the pre-roll plus the event
    jpeg = cv2.imdecode(np.frombuffer(open_sealed(clip.snapshot_path, identity), np.uint8), 0)
    assert jpeg.shape == (H, W)
    x_best, x_first = square_x(100), square_x(60)
    assert jpeg[220:280, x_best + 20 : x_best + 80].mean() > 240  # the square where it peaked
    assert jpeg[220:280, x_first + 20 : x_first + 80].mean() < 200
    # the ring holds pre-roll + trigger delay (5 s) plus at most a GOP and a frame
    assert recorder.ring.memory_bytes <= clip.bytes / clip.duration_s * 6.2
    recorder.close()


def test_age_cli_decrypts_the_clip(tmp_path: Path, owner: tuple[Identity, Path]) -> None:
    identity, key = owner
    store = new_store(tmp_path / "data")
    recorder = Recorder(X264Encoder(640, 360, FPS), store, lambda: [identity.recipient])
    clip = record(recorder, 90, 45, 80)
    assert clip is not None and clip.snapshot_path is not None
    out = tmp_path / "clip.mp4"
    proc = age_decrypt(key, clip.path, out)
    assert proc.returncode == 0, proc.stderr.decode()
    probe = ffprobe(out)
    assert probe["codec"] == "h264" and probe["frames"] == 80 - 0 + 1  # pre-roll from frame 0
    snap = tmp_path / "snap.jpg"
    assert age_decrypt(key, clip.snapshot_path, snap).returncode == 0
    assert cv2.imread(str(snap)).shape == (360, 640, 3)
    recorder.close()


@pytest.mark.parametrize("cut", [None, 0.5, 0.8])
def test_clip_cut_by_a_crash_recovers_to_a_playable_prefix(
    tmp_path: Path, owner: tuple[Identity, Path], cut: float | None
) -> None:
    identity, _ = owner
    store = new_store(tmp_path / "data")
    recorder = Recorder(X264Encoder(W, H, FPS), store, [identity.recipient])
    for frame in scene(150):
        recorder.push(frame)
        if frame.index == 45:
            assert recorder.start_clip(frame.t, event_id="e", reason="motion")
    # kill -9 now: the disk holds whatever the writers have handed to the OS so far
    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "data", crashed)
    [partial] = list((crashed / "clips").glob("*.partial"))
    if cut is not None:  # the card lost the tail of the file as well
        os.truncate(partial, int(partial.stat().st_size * cut))
    store2 = ClipStore(crashed, max_bytes=1 << 30, retention_days=30, min_free_bytes=0)
    report = store2.recover()
    [clip] = store2.list_clips()
    assert report.recovered_truncated == (clip.id,) and clip.truncated
    assert list((crashed / "clips").glob("*.partial")) == []
    mp4 = open_sealed(clip.path, identity, allow_truncated=True)
    frames = decoded_frames(mp4, cut=True)
    assert 15 <= frames <= 150 - 15
    plain = tmp_path / "prefix.mp4"
    plain.write_bytes(mp4)
    probe = ffprobe(plain)
    assert probe["codec"] == "h264" and probe["frames"] >= 15
    recorder.close()


class Disk:
    """A simulated card: clip files fail with ENOSPC past ``limit`` bytes, or at creation."""

    def __init__(self, limit: int | None = None, fail_open: bool = False) -> None:
        self.limit, self.fail_open = limit, fail_open

    def store(self, path: Path) -> ClipStore:
        disk = self

        class FullDiskSink(ClipSink):
            def __init__(self, *args: Any) -> None:
                if disk.fail_open:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "clip.partial")
                super().__init__(*args)

            def write(self, data: bytes | bytearray | memoryview) -> int:
                if disk.limit is not None and self.bytes_written + len(data) > disk.limit:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.partial))
                return super().write(data)

        class FullDiskStore(ClipStore):
            sink_class = FullDiskSink

        return new_store(path, FullDiskStore)


@pytest.mark.parametrize(
    "disk",
    [Disk(limit=200_000), Disk(limit=100), Disk(fail_open=True)],
    ids=["mid-clip", "in the age header", "creating the file"],
)
def test_disk_full_aborts_the_clip_and_the_daemon_goes_on(
    tmp_path: Path, owner: tuple[Identity, Path], disk: Disk
) -> None:
    identity, _ = owner
    store = disk.store(tmp_path / "data")
    recorder = Recorder(X264Encoder(W, H, FPS), store, [identity.recipient])
    assert record(recorder, 120, 45, 110) is None
    assert not recorder.recording and recorder.clips_failed == 1
    assert recorder.last_error is not None and recorder.last_error.startswith("disk full")
    assert "free space" in recorder.last_error  # names the fix
    # what the daemon's status tick writes, `doorward status` lists as a problem
    from agent.runtime.status_file import StatusFile
    from agent.tools.status_report import status_document

    status = StatusFile(tmp_path)
    status.update(state="running", store_error=recorder.last_error)
    status.flush(force=True)
    doc = status_document(tmp_path, max_bytes=1 << 30, broker_configured=False,
                          bucket_configured=False)
    assert doc["problems"] == [f"recording: {recorder.last_error}"]
    assert os.listdir(store.clips_dir) == [] and store.list_clips() == []
    assert store.recover().changed is False  # no row or file left behind
    disk.limit, disk.fail_open = None, False  # space was freed: the next clip records
    again = record(recorder, 60, 150, 170, first=120)
    assert again is not None and recorder.last_error is None
    # the stream went on: pre-roll from the keyframe at frame 105 (t = 7 s) to frame 170
    assert decoded_frames(open_sealed(again.path, identity)) == 170 - 105 + 1
    recorder.close()


def test_disk_full_while_sealing_the_end_loses_only_that_clip(
    tmp_path: Path, owner: tuple[Identity, Path]
) -> None:
    identity, _ = owner
    disk = Disk()
    store = disk.store(tmp_path / "data")
    recorder = Recorder(X264Encoder(640, 360, FPS), store, [identity.recipient])
    for frame in scene(60, 640, 360):
        recorder.push(frame)
        if frame.index == 20:
            recorder.start_clip(frame.t, event_id=1, reason="motion")
    disk.limit = 0  # the card fills up before the last fragment and final chunk are written
    assert recorder.end_clip(4.0) is None
    assert recorder.last_error is not None and "disk full" in recorder.last_error
    assert os.listdir(store.clips_dir) == [] and store.list_clips() == []
    recorder.close()


def test_without_an_owner_nothing_is_recorded(tmp_path: Path) -> None:
    store = new_store(tmp_path / "data")
    recorder = Recorder(X264Encoder(640, 360, FPS), store, lambda: [])
    for frame in scene(20, 640, 360):
        recorder.push(frame)
    assert recorder.start_clip(1.0, event_id=1, reason="motion") is None
    assert recorder.last_error is not None and "no owner" in recorder.last_error
    assert not recorder.recording and os.listdir(store.clips_dir) == []
    recorder.close()


def test_close_seals_the_clip_in_progress(tmp_path: Path, owner: tuple[Identity, Path]) -> None:
    identity, _ = owner
    store = new_store(tmp_path / "data")
    recorder = Recorder(X264Encoder(640, 360, FPS), store, [identity.recipient])
    for frame in scene(60, 640, 360):
        recorder.push(frame)
        if frame.index == 30:
            recorder.start_clip(frame.t, event_id=1, reason="motion")
    clip = recorder.close()  # SIGTERM
    assert clip is not None and not clip.truncated
    assert decoded_frames(open_sealed(clip.path, identity)) == 60
    assert [c.id for c in store.list_clips()] == [clip.id]


def test_x264_gops_are_regular_and_every_keyframe_carries_its_headers() -> None:
    enc = X264Encoder(640, 360, FPS, gop_s=1.0)
    packets = [p for f in scene(61, 640, 360) for p in enc.encode(f.main, f.t)]
    packets += enc.flush()
    assert len(packets) == 61
    assert [i for i, p in enumerate(packets) if p.keyframe] == [0, 15, 30, 45, 60]
    assert enc.extradata is not None and b"\x00\x00\x01\x67" in enc.extradata  # SPS, Annex B
    for p in packets:
        assert (b"\x00\x00\x01\x67" in p.data) == p.keyframe  # repeated SPS on keyframes only
        assert p.dts == p.pts and p.pts == round(p.t * 90000)  # no B-frames, 90 kHz clock
    enc.close()
    with pytest.raises(ValueError, match="after close"):
        enc.encode(np.zeros((540, 640), np.uint8), 9.0)


def test_x264_refuses_wrong_frames_and_settings() -> None:
    enc = X264Encoder(640, 360, FPS)
    with pytest.raises(ValueError, match=r"shape \(540, 640\)"):
        enc.encode(np.zeros((1080, 1280), np.uint8), 0.0)
    with pytest.raises(ConfigError, match="preset"):
        X264Encoder(640, 360, FPS, preset="warp-speed")
    with pytest.raises(ConfigError, match="even"):
        X264Encoder(641, 360, FPS)


def test_the_zero_copy_encoder_is_safe_when_the_caller_reuses_its_buffer() -> None:
    """X264Encoder hands libx264 the caller's array without a copy; a camera that refills one
    buffer every frame must still get exactly the stream that fresh arrays give."""
    rng = np.random.default_rng(7)
    pictures = [rng.integers(0, 255, (240 * 3 // 2, 320), dtype=np.uint8) for _ in range(8)]

    def stream(reuse: bool) -> bytes:
        enc, out, buf = X264Encoder(320, 240, FPS), b"", np.empty_like(pictures[0])
        for i in range(45):
            picture = pictures[i % len(pictures)]
            if reuse:
                buf[:] = picture
            packets = enc.encode(buf if reuse else picture.copy(), i / FPS)
            out += b"".join(p.data for p in packets)
        return out + b"".join(p.data for p in enc.flush())

    assert stream(reuse=True) == stream(reuse=False)


def test_the_encoder_measures_its_own_cpu_including_libx264_threads() -> None:
    import time as _time

    enc = X264Encoder(640, 360, FPS)
    picture = np.random.default_rng(3).integers(0, 255, (540, 640), dtype=np.uint8)
    started = _time.process_time()
    for i in range(60):
        enc.encode(picture, i / FPS)
    process = _time.process_time() - started
    assert 0.5 * process < enc.cpu_s() <= process + 0.05  # most of it, never more than all


def test_fragment_tap_marks_where_each_fragment_ends_and_when_it_plays_to() -> None:
    """Issue 13 (6): the progress a cut clip's duration comes from. Each noted prefix of the
    plaintext decodes to exactly the frames up to that fragment's recorded end time."""
    from agent.recording.encoder import StreamInfo
    from agent.recording.recorder import ClipOutput, FragmentTap

    encoder = X264Encoder(320, 180, FPS)
    plain = io.BytesIO()
    ends: list[int] = []
    output = ClipOutput(FragmentTap(plain, ends.append), StreamInfo.of(encoder))
    for frame in scene(100, 320, 180):
        for pkt in encoder.encode(frame.main, frame.t):
            output.write(pkt)
    for pkt in encoder.flush():
        output.write(pkt)
    output.close()
    encoder.close()
    data = plain.getvalue()
    assert len(ends) == len(output.fragment_ends) >= 6 and ends == sorted(set(ends))
    assert data[ends[-1] + 4: ends[-1] + 8] == b"mfra"  # only the random-access index follows
    for end, t_end in zip(ends, output.fragment_ends, strict=True):
        frames = decoded_frames(data[:end])
        assert frames == round(t_end * FPS), (end, t_end, frames)  # scene starts at t = 0


def test_a_crashed_clip_is_recovered_with_its_media_duration(
        tmp_path: Path, owner: tuple[Identity, Path]) -> None:
    """A clip cut mid-way (kill -9) whose frames came far faster than real time: the duration
    in the index is what its whole sealed chunks play, from the recorded fragment ends."""
    identity, _ = owner
    store = new_store(tmp_path / "data")
    recorder = Recorder(X264Encoder(640, 360, FPS), store, [identity.recipient])
    for frame in scene(160, 640, 360):
        recorder.push(frame)
        if frame.index == 45:
            recorder.start_clip(frame.t, event_id="e1", reason="motion")
    assert recorder.recording
    clip = recorder._clip
    assert clip is not None
    clip.sink.flush()  # as the OS would hold it after kill -9 (no close, no commit)
    store.close()
    again = new_store(tmp_path / "data")  # start-up after the crash
    (rec,) = again.list_clips()
    assert rec.truncated
    mp4 = open_sealed(rec.path, identity, allow_truncated=True)
    frames = decoded_frames(mp4, cut=True)
    assert frames > 15
    # the last whole fragment: a partial one after it may decode a few frames more, never less
    assert frames / FPS - 1.0 <= rec.duration_s <= frames / FPS + 1e-6
