"""A CLI that guides (issue 19): progress on long work, human lists with units and an explicit
"no entries", `press --hold` that returns when the hold ends, `owner pair` failing at once on a
refusing broker, and `run`/`doctor` failing on the same configuration before anything exists."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.progress import Progress, amount
from agent.store import ClipRecord, EventRecord
from agent.tools.clips_cli import clip_line, event_line
from agent.tools.device_cli import RELEASE_MARGIN_S, hold_until
from tests.servers import free_port


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


# ---- progress ---------------------------------------------------------------------------------


def test_on_a_terminal_a_bar_is_redrawn_in_place() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress("downloading c-1", total=4_000_000, unit="bytes", stream=out, tty=True,
                  clock=clock) as bar:
        for done in (1_000_000, 2_000_000, 4_000_000):
            clock.t += 1
            bar.update(done)
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n")  # 3 updates + the final state
    assert "downloading c-1 [############------------]  50% 2.0 MB of 4.0 MB" in text
    assert "100% 4.0 MB of 4.0 MB" in text


def test_elsewhere_a_log_line_every_interval_and_one_at_the_end(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="doorward.progress")
    with Progress("rendering porch", total=300, unit="frames", stream=io.StringIO(), tty=False,
                  log_every_s=5, clock=clock) as bar:
        for frame in range(1, 301):
            clock.t += 0.1  # 30 s in all
            bar.update(frame)
    lines = [r.getMessage() for r in caplog.records]
    assert 5 <= len(lines) <= 7, lines  # not one per frame
    assert "rendering porch [" in lines[0] and "frames" in lines[0]
    assert lines[-1] == "rendering porch: done, 300 frames in 30 s"


def test_a_short_job_off_a_terminal_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="doorward.progress")
    with Progress("decrypting", total=10, stream=io.StringIO(), tty=False) as bar:
        bar.update(10)
    assert caplog.records == []


def test_amounts_are_rounded_with_units() -> None:
    assert [amount(v, "bytes") for v in (512, 4_200, 26_700_000, 3.2e9)] == [
        "512 B", "4.2 kB", "26.7 MB", "3.2 GB"]
    assert amount(12.0, "frames") == "12 frames"


# ---- human lists ------------------------------------------------------------------------------


def test_event_and_clip_lines_are_rounded_with_units() -> None:
    e = EventRecord("e-7", "ring", "2026-05-01T19:30:12Z", "2026-05-01T19:30:20Z", 1.25, 5.5,
                    0.1234, "c-1")
    assert event_line(e) == ("2026-05-01 19:30 UTC  ring       4.2 s  peak  12% of the view  "
                             "clip c-1  (e-7)")
    c = ClipRecord(id="c-1", path=Path("x"), snapshot_path=None,
                   started_at="2026-05-01T19:30:09Z", ended_at="2026-05-01T19:30:21Z",
                   source_start_s=0, source_end_s=12.34, duration_s=12.34, bytes=4_213_000,
                   truncated=True, recipients=(), delivered=False, event_id="e-7")
    assert clip_line(c) == ("c-1  2026-05-01 19:30 UTC    12.3 s     4.2 MB  on the device only, "
                            "truncated by a crash")


def test_empty_lists_say_no_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.store import ClipStore

    ClipStore(tmp_path, max_bytes=10**9, retention_days=30).close()
    for what in ("events", "clips"):
        assert main([what, "list", "--data-dir", str(tmp_path)]) == 0
        assert capsys.readouterr().out.startswith("no entries: no ")


# ---- press --hold, owner pair ------------------------------------------------------------------


def test_press_returns_when_the_hold_ends() -> None:
    clock = Clock()
    hold_until("setup", 3.5, clock=clock, sleep=clock.sleep)
    assert clock.t == pytest.approx(100 + 3.5 + RELEASE_MARGIN_S)


def test_owner_pair_fails_at_once_when_the_broker_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    owner = str(tmp_path / "owner")
    assert main(["owner", "--owner-dir", owner, "init"]) == 0
    started = time.monotonic()
    rc = main(["owner", "--owner-dir", owner, "pair", "--broker",
               f"mqtt://127.0.0.1:{free_port()}", "--device", "dw-" + "a" * 16,
               "--setup-code", "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA", "--timeout", "30"])
    assert rc == 2 and time.monotonic() - started < 5  # not the 30 s timeout
    err = capsys.readouterr().err
    assert "cannot reach the broker" in err and "nothing accepts connections" in err


# ---- run and doctor agree; nothing is created before config and source are good ------------------


@pytest.mark.parametrize(("toml", "args", "needle"), [
    ("[motion]\nmin_aera = 0.1\n", [], "motion.min_aera is unknown"),
    ("", ["--source", "sim:nowhere"], "nowhere"),
    ("", ["--source", "webcam"], "--source 'webcam'"),
    ("[recording]\nencoder = 'hardware'\n", [], "only picamera2 has"),
    ("", ["--broker", "http://x"], "--broker 'http://x'"),
])
def test_run_fails_before_creating_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, toml: str,
                                            args: list[str], needle: str) -> None:
    import agent.app

    monkeypatch.setattr(agent.app, "build", never_built)  # a check that lets it through fails
    config = tmp_path / "d.toml"
    config.write_text(toml)
    data = tmp_path / "data"
    assert main(["run", "--config", str(config), "--data-dir", str(data), *args]) == 2
    assert needle in capsys.readouterr().err
    assert not data.exists()


def never_built(*args: object, **kwargs: object) -> None:
    raise AssertionError("the daemon was built: the check did not stop it")


def test_without_picamera2_run_says_so_first_and_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import agent.app

    monkeypatch.setattr(agent.app, "build", never_built)
    monkeypatch.setitem(sys.modules, "picamera2", None)
    data = tmp_path / "data"
    assert main(["run", "--source", "picamera2", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "picamera2 is not available" in err and "no paired owner" not in err
    assert not data.exists()


def test_doctor_fails_where_run_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "d.toml"
    config.write_text("[motion]\nmin_aera = 0.1\n[camera]\nwidth = 3\n")
    assert main(["doctor", "--config", str(config), "--data-dir", str(tmp_path / "d"),
                 "--source", "sim:porch", "--timeout", "0.1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  config" in out and "motion.min_aera is unknown" in out
    assert "camera.width = 3" in out  # every problem, not the first


def test_the_installed_config_is_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "state"
    config = tmp_path / "doorward.toml"
    config.write_text(f'[store]\ndata_dir = "{data}"\n')
    monkeypatch.setenv("DOORWARD_CONFIG", str(config))
    assert main(["device", "label", "--json"]) == 0  # no --config, no --data-dir
    assert (data / "device.key").exists()
