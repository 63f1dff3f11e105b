"""PressClassifier: debounce and hold thresholds with injected times (no pins, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.device.buttons import ButtonEvent, PressClassifier


def run(c: PressClassifier, button: str, press_at: float, release_at: float | None,
        *, until: float, step: float = 0.05) -> list[ButtonEvent]:
    """Press, tick every ``step`` s, release (if given), tick until ``until``; all events."""
    events = c.pressed(button, press_at)
    t = press_at
    while t < until:
        t = round(t + step, 9)
        if release_at is not None and press_at < release_at <= t:
            events += c.released(button, release_at)
            release_at = None
        events += c.tick(t)
    return events


def kinds(events: list[ButtonEvent]) -> list[str]:
    return [e.kind for e in events]


def test_ring_is_emitted_once_after_debounce() -> None:
    c = PressClassifier()
    assert c.pressed("ring", 10.0) == []
    assert c.tick(10.02) == []  # not stable for 30 ms yet
    assert c.tick(10.03) == [ButtonEvent("ring", 10.0)]
    assert c.tick(10.5) == []


def test_ring_held_20_s_never_pairs_or_resets() -> None:
    c = PressClassifier()
    events = run(c, "ring", 0.0, 20.0, until=25.0)
    assert kinds(events) == ["ring"]


def test_setup_3_s_is_pair_on_release() -> None:
    c = PressClassifier()
    events = run(c, "setup", 100.0, 103.0, until=104.0)
    assert [(e.kind, e.t) for e in events] == [("pair", 103.0)]
    assert events[0].held_s == pytest.approx(3.0)


def test_pair_is_not_emitted_while_still_held() -> None:
    c = PressClassifier()
    events = run(c, "setup", 0.0, None, until=9.9)
    assert events == []


@pytest.mark.parametrize("hold", [3.0, 5.0, 9.9])
def test_setup_between_3_and_10_s_is_pair_only(hold: float) -> None:
    c = PressClassifier()
    # 1.1 + 3.0 is not exactly 4.1 in floating point: a hold at the threshold must still count.
    events = run(c, "setup", 1.1, 1.1 + hold, until=1.1 + hold + 1.0)
    assert kinds(events) == ["pair"]


def test_setup_10_s_is_reset_while_held_and_never_pair() -> None:
    c = PressClassifier()
    events = run(c, "setup", 0.0, None, until=10.0)
    assert events == [ButtonEvent("reset", 10.0, held_s=10.0)]
    # Keep holding, then let go: nothing more for this hold.
    assert run(c, "setup", 10.0, 15.0, until=16.0) == []  # repeated press edge is ignored
    assert c.tick(20.0) == []


def test_reset_without_ticks_is_detected_at_release() -> None:
    # The loop stalled for the whole hold: the release still classifies it by duration.
    c = PressClassifier()
    c.pressed("setup", 0.0)
    assert c.released("setup", 12.0) == [ButtonEvent("reset", 10.0, held_s=10.0)]
    assert c.tick(12.1) == []


def test_setup_1_s_is_short_and_nothing_else() -> None:
    c = PressClassifier()
    events = run(c, "setup", 0.0, 1.0, until=12.0)
    assert events == [ButtonEvent("setup-short", 1.0, held_s=1.0)]


def test_release_then_press_within_debounce_is_a_bounce() -> None:
    c = PressClassifier()
    c.pressed("setup", 0.0)
    c.tick(0.1)
    c.released("setup", 2.0)
    c.pressed("setup", 2.02)  # 20 ms later: a bounce, the hold goes on
    c.released("setup", 3.5)
    assert c.tick(3.6) == [ButtonEvent("pair", 3.5, held_s=3.5)]


def test_press_bounces_give_one_ring() -> None:
    c = PressClassifier()
    events: list[ButtonEvent] = []
    for t, down in [(0.0, True), (0.004, False), (0.008, True), (0.011, False), (0.015, True)]:
        events += c.pressed("ring", t) if down else c.released("ring", t)
    events += c.tick(0.1)
    for t, down in [(5.0, False), (5.01, True), (5.02, False)]:  # release bounces
        events += c.pressed("ring", t) if down else c.released("ring", t)
    events += c.tick(6.0)
    assert events == [ButtonEvent("ring", 0.015)]
    # A real second press after a settled release rings again.
    c.pressed("ring", 7.0)
    assert kinds(c.tick(7.1)) == ["ring"]


def test_blip_shorter_than_debounce_is_noise() -> None:
    c = PressClassifier()
    c.pressed("ring", 0.0)
    c.released("ring", 0.01)
    assert c.tick(1.0) == []


def test_release_without_press_is_ignored() -> None:
    # A button already down at start-up is ignored until released: a stuck SETUP must not reset.
    c = PressClassifier()
    assert c.released("setup", 30.0) == []
    assert c.tick(40.0) == []


def test_buttons_are_independent() -> None:
    c = PressClassifier()
    events = c.pressed("setup", 0.0)
    events += c.pressed("ring", 1.0)
    events += c.released("ring", 2.0)
    events += c.released("setup", 4.0)
    events += c.tick(5.0)
    assert kinds(events) == ["ring", "pair"]


def test_unknown_button_and_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown button 'door'"):
        PressClassifier().pressed("door", 0.0)
    with pytest.raises(ValueError, match="setup_pair_hold_s < setup_reset_hold_s"):
        PressClassifier(setup_pair_hold_s=10.0, setup_reset_hold_s=3.0)


edges = st.lists(st.tuples(st.sampled_from(["ring", "setup"]), st.booleans(),
                           st.floats(min_value=0.0, max_value=3.0)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(edges)
def test_any_edge_sequence_keeps_the_rules(seq: list[tuple[str, bool, float]]) -> None:
    """RING only ever rings; one SETUP hold never yields more than one of pair/reset/short."""
    c = PressClassifier()
    t = 0.0
    events: list[ButtonEvent] = []
    for button, down, gap in seq:
        t += gap
        events += c.pressed(button, t) if down else c.released(button, t)
        events += c.tick(t)
    events += c.released("setup", t + 0.001) + c.released("ring", t + 0.001)
    events += c.tick(t + 20.0)
    ring_presses = sum(1 for b, down, _ in seq if b == "ring" and down)
    assert kinds(events).count("ring") <= ring_presses
    setup = [e for e in events if e.kind != "ring"]
    setup_presses = sum(1 for b, down, _ in seq if b == "setup" and down)
    assert len(setup) <= setup_presses
    for e in setup:
        assert e.held_s is not None
        if e.kind == "pair":
            assert 3.0 - 1e-6 <= e.held_s < 10.0
        elif e.kind == "setup-short":
            assert e.held_s < 3.0
    latest = float("-inf")
    for e in events:  # in order, up to a press confirmed one debounce late
        assert e.t >= latest - c.debounce_s
        latest = max(latest, e.t)


ring_edges = st.lists(st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=15.0)),
                      max_size=40)


@settings(max_examples=200, deadline=None)
@given(ring_edges)
def test_ring_alone_never_yields_anything_but_ring(seq: list[tuple[bool, float]]) -> None:
    c = PressClassifier()
    t = 0.0
    events: list[ButtonEvent] = []
    for down, gap in seq:
        t += gap
        events += c.tick(t)
        events += c.pressed("ring", t) if down else c.released("ring", t)
    events += c.tick(t + 60.0)
    assert set(kinds(events)) <= {"ring"}
