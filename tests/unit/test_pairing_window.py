"""agent.device.pairing_window: the device's pairing window policy, with exact times."""

from __future__ import annotations

import pytest

from agent.device.pairing_window import Decision, PairingWindow

A, B = "k-aaaaaaaaaaaaaaaa", "k-bbbbbbbbbbbbbbbb"


def opened(at: float = 100.0) -> PairingWindow:
    w = PairingWindow()
    w.open(at)
    return w


def test_closed_until_opened() -> None:
    w = PairingWindow()
    assert not w.is_open(0.0)
    assert w.on_hello(A, 0.0) is Decision.IGNORED
    assert w.close_reason == "never opened"


def test_expires_at_exactly_60_seconds() -> None:
    w = opened(100.0)
    assert w.is_open(100.0)
    assert w.is_open(159.999)
    assert w.on_hello(A, 159.999) is Decision.ALLOWED
    assert not w.is_open(160.0)
    assert w.close_reason == "expired"
    assert w.on_confirm(A, 160.0) is Decision.IGNORED


def test_expiry_without_is_open_call() -> None:
    w = opened(0.0)
    assert w.on_hello(A, 60.0) is Decision.IGNORED
    assert w.close_reason == "expired"


def test_two_different_owners_abort() -> None:
    w = opened()
    assert w.on_hello(A, 101.0) is Decision.ALLOWED
    assert w.on_hello(A, 102.0) is Decision.ALLOWED  # the same owner may retry
    assert w.on_hello(B, 103.0) is Decision.ABORTED
    assert not w.is_open(103.0)
    assert "two different owner keys" in (w.close_reason or "")
    # Nobody gets through afterwards, not even the first owner's confirmation.
    assert w.on_confirm(A, 104.0) is Decision.IGNORED
    assert w.on_hello(B, 104.0) is Decision.IGNORED


def test_second_owner_after_first_exchange_started_aborts() -> None:
    w = opened()
    assert w.on_hello(A, 101.0) is Decision.ALLOWED
    assert w.on_confirm(A, 102.0) is Decision.ALLOWED
    assert w.on_failed_confirm(102.0) is False
    assert w.on_confirm(B, 103.0) is Decision.ABORTED
    assert not w.is_open(103.0)


def test_five_failures_close() -> None:
    w = opened()
    w.on_hello(A, 101.0)
    for i in range(4):
        assert w.on_failed_confirm(101.0 + i) is False
        assert w.is_open(101.0 + i)
    assert w.failures == 4
    assert w.on_failed_confirm(106.0) is True
    assert not w.is_open(106.0)
    assert w.close_reason == "5 failed confirmations"
    assert w.on_failed_confirm(107.0) is False  # closed: nothing more is counted
    assert w.failures == 5


def test_success_closes() -> None:
    w = opened()
    w.on_hello(A, 101.0)
    w.on_success(102.0)
    assert not w.is_open(102.0)
    assert w.close_reason == "paired"
    assert w.on_hello(A, 103.0) is Decision.IGNORED


def test_reopen_starts_afresh() -> None:
    w = opened(0.0)
    w.on_hello(A, 1.0)
    w.on_failed_confirm(2.0)
    w.on_hello(B, 3.0)  # abort
    w.open(10.0)
    assert w.owner_key_id is None and w.failures == 0 and w.close_reason is None
    assert w.on_hello(B, 11.0) is Decision.ALLOWED
    assert w.owner_key_id == B


def test_ignored_is_logged_once_per_closed_period() -> None:
    w = PairingWindow()
    assert w.should_log_ignored() is True
    assert [w.should_log_ignored() for _ in range(5)] == [False] * 5
    w.open(0.0)
    assert w.should_log_ignored() is False  # open: nothing is being ignored for the window
    assert not w.is_open(60.0)  # expiry starts a new closed period
    assert w.should_log_ignored() is True
    assert w.should_log_ignored() is False
    w.open(100.0)
    w.on_success(101.0)
    assert w.should_log_ignored() is True
    assert w.should_log_ignored() is False


def test_close_keeps_first_reason() -> None:
    w = opened()
    w.close("factory reset")
    w.close("expired")
    assert w.close_reason == "factory reset"


def test_custom_parameters_and_validation() -> None:
    w = PairingWindow(duration_s=5.0, max_failures=1)
    w.open(0.0)
    assert w.is_open(4.9) and not w.is_open(5.0)
    w.open(10.0)
    assert w.on_failed_confirm(11.0) is True
    with pytest.raises(ValueError, match="duration_s"):
        PairingWindow(duration_s=0.0)
    with pytest.raises(ValueError, match="duration_s"):
        PairingWindow(duration_s=float("inf"))
    with pytest.raises(ValueError, match="max_failures"):
        PairingWindow(max_failures=0)
