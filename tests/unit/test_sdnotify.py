"""ServiceNotifier's decisions with injected times, the environment rules of sd_watchdog_enabled(),
the STATUS text, and lgpio's working directory. No sockets here: see
tests/integration/test_systemd.py for the real datagrams."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import pytest
from gpiozero import Device

from agent.device.buttons import ensure_lgpio_work_dir, make_pin_factory
from agent.errors import DoorwardError
from agent.runtime.frame_loop import Pipeline, service_state
from agent.runtime.sdnotify import (
    NullNotifier,
    ServiceNotifier,
    SocketNotifier,
    watchdog_interval_s,
)
from motion import DetectorParams, EventParams, EventTracker, MotionDetector


class Recorded:
    """A Notifier that keeps what would have been sent."""

    enabled = True

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: str) -> bool:
        self.sent.append(message)
        return True

    def close(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line for msg in self.sent for line in msg.split("\n")]


def make(watchdog_s: float | None = 8.0, ready_after: int = 3,
         state: list[str] | None = None) -> tuple[ServiceNotifier, Recorded]:
    box = state if state is not None else ["idle"]
    rec = Recorded()
    return ServiceNotifier(rec, describe=lambda: box[0], watchdog_s=watchdog_s,
                           ready_after_frames=ready_after), rec


def test_ready_only_after_the_first_frames_and_only_once() -> None:
    n, rec = make(watchdog_s=None, ready_after=3)
    n.frame(0.0)
    n.frame(0.1)
    assert "READY=1" not in rec.lines()
    n.frame(0.2)
    assert rec.sent == ["READY=1\nSTATUS=idle"]  # one datagram, the first status with it
    for i in range(3, 50):
        n.frame(i / 10)
    assert rec.lines().count("READY=1") == 1


def test_status_is_sent_when_the_state_changes_at_most_once_a_second() -> None:
    state = ["idle"]
    n, rec = make(watchdog_s=None, ready_after=1, state=state)
    n.frame(0.0)
    state[0] = "recording event 1"
    n.frame(0.5)  # changed, but the last check was under a second ago
    assert rec.lines() == ["READY=1", "STATUS=idle"]
    n.frame(1.0)
    n.frame(1.5)
    n.frame(2.0)  # due again, unchanged: nothing sent
    assert rec.lines() == ["READY=1", "STATUS=idle", "STATUS=recording event 1"]
    state[0] = "idle,\n2 uploads queued"
    n.frame(3.0)
    assert rec.lines()[-1] == "STATUS=idle, 2 uploads queued"  # a newline cannot end the value


def test_watchdog_pings_at_most_every_quarter_and_only_on_frames() -> None:
    n, rec = make(watchdog_s=8.0, ready_after=1)
    times = [i * 0.1 for i in range(100)]  # 10 s of frames at 10 fps
    pings: list[float] = []
    for t in times:
        before = rec.lines().count("WATCHDOG=1")
        n.frame(t)
        if rec.lines().count("WATCHDOG=1") > before:
            pings.append(t)
    assert pings[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(g >= 2.0 - 1e-9 for g in gaps) and all(g <= 2.1 + 1e-9 for g in gaps)
    # Frames stop at 9.9 s; there is no timer, so nothing pings until a frame comes again, and
    # then at once.
    n.frame(30.0)
    assert rec.sent[-1].endswith("WATCHDOG=1")


def test_no_watchdog_pings_without_watchdog_usec() -> None:
    n, rec = make(watchdog_s=None, ready_after=1)
    for i in range(100):
        n.frame(float(i))
    assert "WATCHDOG=1" not in rec.lines()


def test_stopping_once_and_nothing_after_it() -> None:
    n, rec = make(ready_after=1)
    n.frame(0.0)
    n.stopping("SIGTERM")
    n.stopping("eof")
    n.frame(10.0)
    assert rec.sent[-1] == "STOPPING=1\nSTATUS=stopping (SIGTERM)"
    assert rec.lines().count("STOPPING=1") == 1


def test_disabled_notifier_never_asks_for_the_state() -> None:
    def describe() -> str:
        raise AssertionError("describe() must not run when nothing is sent")

    n = ServiceNotifier(NullNotifier(), describe=describe, watchdog_s=1.0)
    for i in range(10):
        n.frame(float(i))
    n.stopping("eof")


@pytest.mark.parametrize("bad", [{"ready_after_frames": 0}, {"watchdog_s": 0.0}])
def test_invalid_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ServiceNotifier(NullNotifier(), describe=lambda: "", **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("env", "pid", "expected"), [
    ({}, 100, None),
    ({"WATCHDOG_USEC": "30000000"}, 100, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "100"}, 100, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "101"}, 100, None),  # meant for another
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, 100, None),
    ({"WATCHDOG_USEC": "0"}, 100, None),
    ({"WATCHDOG_USEC": "-5"}, 100, None),
    ({"WATCHDOG_USEC": "30s"}, 100, None),
])
def test_watchdog_environment_follows_sd_watchdog_enabled(env: dict[str, str], pid: int,
                                                          expected: float | None) -> None:
    assert watchdog_interval_s(env, pid) == expected


def test_notify_socket_parsing() -> None:
    assert isinstance(SocketNotifier.from_env({}), NullNotifier)
    assert isinstance(SocketNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1"}), NullNotifier)
    abstract = SocketNotifier.from_env({"NOTIFY_SOCKET": "@doorward/notify"})
    assert isinstance(abstract, SocketNotifier) and abstract.address == "\0doorward/notify"
    path = SocketNotifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify"})
    assert isinstance(path, SocketNotifier) and path.address == "/run/systemd/notify"


def test_send_failure_is_logged_once_and_never_raises(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    notifier = SocketNotifier(str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.WARNING, logger="agent.runtime.sdnotify"):
        assert notifier.send("WATCHDOG=1") is False
        assert notifier.send("WATCHDOG=1") is False
    notifier.close()
    failures = [r for r in caplog.records if "notify" in r.getMessage()]
    assert len(failures) == 1 and "nobody-listens" in failures[0].getMessage()


def test_lgpio_work_dir_order(tmp_path: Path) -> None:
    env = {"LG_WD": "/custom"}
    assert ensure_lgpio_work_dir(env, tmp_path) == "/custom" and env == {"LG_WD": "/custom"}
    env = {"RUNTIME_DIRECTORY": "/run/doorward:/run/other"}
    assert ensure_lgpio_work_dir(env, tmp_path) == "/run/doorward"
    assert env["LG_WD"] == "/run/doorward"
    env = {}
    assert ensure_lgpio_work_dir(env, tmp_path) == str(tmp_path) and env["LG_WD"] == str(tmp_path)
    env = {}
    assert ensure_lgpio_work_dir(env, None) is None and env == {}


def test_service_state_names_the_event_and_the_queue() -> None:
    pipeline = Pipeline(MotionDetector(DetectorParams()), EventTracker(EventParams()),
                        recorder=None, store=None)
    assert service_state(pipeline) == "idle"
    assert service_state(pipeline, {"upload:clips": 1, "upload:snapshots": 1,
                                    "message:events": 1}) == \
        "idle, 2 uploads queued, 1 message queued"
    pipeline.ring(0.0)  # no recorder (no owner): the event is tracked, nothing recorded
    assert service_state(pipeline, {}) == "event 1 (not recording)"


def test_default_pin_factory_sets_lg_wd_before_gpiozero_loads_lgpio(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPIO on this PC, so the default factory fails; LG_WD is set by then, and mock pins
    never touch it."""
    if Device.pin_factory is not None or os.path.exists("/dev/gpiochip0"):
        pytest.skip("GPIO (or a global gpiozero pin factory) is present: the default would work")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.delenv("LG_WD", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    make_pin_factory("mock", work_dir=tmp_path).close()
    assert "LG_WD" not in os.environ
    with pytest.raises(DoorwardError, match="no GPIO here"):
        make_pin_factory(None, work_dir=tmp_path)
    assert os.environ["LG_WD"] == str(tmp_path)
