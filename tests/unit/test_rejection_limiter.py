"""agent.device.ledger.RejectionLimiter: one record per reason per window, nothing lost at
shutdown."""

from __future__ import annotations

from agent.device.ledger import RejectionLimiter


def test_a_flood_is_one_record_per_reason_per_window_and_counted() -> None:
    lim = RejectionLimiter(window_s=60.0)
    offers = [lim.offer("malformed" if i % 2 else "unknown-owner", 100.0 + i * 0.001)
              for i in range(10_000)]
    assert [o for o in offers if o is not None] == [0, 0]  # the first of each reason only
    assert lim.flush(130.0) == []  # the window has not passed
    assert lim.flush(130.0, everything=True) == [("malformed", 4999), ("unknown-owner", 4999)]
    assert lim.flush(1000.0, everything=True) == []  # counted once


def test_the_next_record_after_a_window_carries_the_suppressed_count() -> None:
    lim = RejectionLimiter(window_s=60.0)
    assert lim.offer("bad-signature", 0.0) == 0
    assert [lim.offer("bad-signature", t) for t in (1.0, 2.0, 3.0)] == [None] * 3
    assert lim.offer("bad-signature", 61.0) == 3
    assert lim.offer("bad-signature", 30.0) == 0  # a clock stepping back opens the window
