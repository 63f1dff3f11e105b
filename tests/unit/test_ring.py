"""The pre-roll ring and the fake encoder: bounded memory, whole GOPs, keyframe starts, coverage."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.recording.encoder import EncodedPacket, FakeEncoder, gop_frames
from agent.recording.recorder import PrerollRing

FPS = 15.0
BLANK = np.zeros((720 * 3 // 2, 1280), np.uint8)


def fake_stream(seconds: float, *, fps: float = FPS, gop_s: float = 1.0) -> list[EncodedPacket]:
    enc = FakeEncoder(fps=fps, gop_s=gop_s)
    out: list[EncodedPacket] = []
    for i in range(round(seconds * fps)):
        out += enc.encode(BLANK, i / fps)
    return out


def test_fake_encoder_is_deterministic_with_a_keyframe_every_gop() -> None:
    a, b = fake_stream(3.0), fake_stream(3.0)
    assert [p.data for p in a] == [p.data for p in b]
    assert [i for i, p in enumerate(a) if p.keyframe] == [0, 15, 30]
    assert a[15].data.startswith(b"K15") and a[16].data.startswith(b"P16")
    assert [p.pts for p in a[:3]] == [0, 6000, 12000]  # 90 kHz ticks
    assert a[15].t == pytest.approx(1.0)


def test_timestamps_stay_strictly_increasing_when_source_time_repeats() -> None:
    enc = FakeEncoder()
    pts = [enc.encode(BLANK, t)[0].pts for t in (0.0, 0.5, 0.5, 0.4, 1.0)]
    assert pts == sorted(set(pts))


@pytest.mark.parametrize("gop_s", [0.0, -1.0, 1.5])
def test_gop_longer_than_a_second_or_empty_is_refused(gop_s: float) -> None:
    with pytest.raises(ConfigError, match="gop_s"):
        gop_frames(gop_s, FPS)


def test_gop_frames_rounds_to_the_frame_rate() -> None:
    assert gop_frames(1.0, 15) == 15
    assert gop_frames(0.5, 25) == 12  # round half to even, never 0
    assert gop_frames(0.01, 15) == 1


def test_ring_drops_packets_until_the_first_keyframe() -> None:
    ring = PrerollRing(3.0)
    packets = fake_stream(2.0)
    for p in packets[5:]:  # join mid-GOP
        ring.push(p)
    held = ring.packets_from(0.0)
    assert held[0].keyframe and held[0] is packets[15]
    assert ring.dropped_packets == 10


def test_ring_covers_pre_roll_with_at_most_one_extra_gop() -> None:
    ring = PrerollRing(3.0)
    for p in fake_stream(20.0):
        ring.push(p)
        if p.t >= 5.0:
            first, last = ring.first_t, ring.last_t
            assert first is not None and last is not None
            assert first <= last - 3.0 + 1e-9  # covers the pre-roll...
            assert first > last - 3.0 - 1.0  # ...plus less than one more GOP


def test_packets_from_starts_at_the_last_keyframe_at_or_before_t() -> None:
    ring = PrerollRing(3.0)
    for p in fake_stream(10.0):
        ring.push(p)
    # the ring now holds t = 6.0 .. 9.933 (GOPs at 6, 7, 8, 9)
    assert ring.first_t == pytest.approx(6.0)
    assert ring.packets_from(7.5)[0].t == pytest.approx(7.0)
    assert ring.packets_from(8.0)[0].t == pytest.approx(8.0)
    assert ring.packets_from(0.0)[0].t == pytest.approx(6.0)  # older than held: oldest keyframe
    assert ring.packets_from(99.0)[0].t == pytest.approx(9.0)
    tail = ring.packets_from(7.5)
    assert tail[-1].t == pytest.approx(149 / 15)
    assert all(b.t > a.t for a, b in itertools.pairwise(tail))
    assert len(tail) == 3 * 15


def test_memory_stays_bounded_over_ten_minutes() -> None:
    ring = PrerollRing(3.0)
    enc = FakeEncoder(fps=FPS)
    per_second = enc.key_bytes + (enc.gop - 1) * enc.delta_bytes
    peak = 0
    for i in range(round(600 * FPS)):
        for p in enc.encode(BLANK, i / FPS):
            ring.push(p)
        peak = max(peak, ring.memory_bytes)
        assert len(ring) <= (3 + 1) * FPS + 1
    assert peak <= (3 + 1) * per_second + enc.key_bytes
    assert ring.memory_bytes == sum(p.size for p in ring.packets_from(0.0))


def test_byte_cap_drops_gops_when_keyframes_stop() -> None:
    ring = PrerollRing(3.0, max_bytes=100_000)
    ring.push(EncodedPacket(b"K" * 10_000, 0, 0, True, 0.0))
    for i in range(1, 1000):  # an encoder that never sends another keyframe
        ring.push(EncodedPacket(b"P" * 1_000, i, i, False, i / FPS))
        assert ring.memory_bytes <= 100_000
    ring.push(EncodedPacket(b"K" * 10_000, 1000, 1000, True, 1000 / FPS))
    assert ring.packets_from(0.0)[0].keyframe


@settings(max_examples=200, deadline=None)
@given(
    pre_roll=st.floats(0.0, 5.0),
    steps=st.lists(st.tuples(st.floats(0.001, 0.5), st.booleans()), min_size=1, max_size=300),
)
def test_ring_invariants_for_irregular_streams(
    pre_roll: float, steps: list[tuple[float, bool]]
) -> None:
    ring = PrerollRing(pre_roll)
    t, seen_key, pushed = 0.0, False, []
    for dt, key in steps:
        t += dt
        p = EncodedPacket(b"x" * 10, round(t * 90000), round(t * 90000), key, t)
        ring.push(p)
        seen_key |= key
        if seen_key:
            pushed.append(p)
        held = ring.packets_from(-1.0)
        if not seen_key:
            assert held == []
            continue
        assert held[0].keyframe
        assert held == pushed[len(pushed) - len(held) :]  # a contiguous suffix of the stream
        keys = [q.t for q in held if q.keyframe]
        # covers the pre-roll, unless the stream's first keyframe is younger than that
        assert held[0].t <= t - pre_roll or held[0] is next(q for q in pushed if q.keyframe)
        # and holds no GOP it does not need
        assert len(keys) < 2 or keys[1] > t - pre_roll
