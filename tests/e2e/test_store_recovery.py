"""End to end: the store across restarts and damage (issue 13): event history kept, a corrupt
index rebuilt, a damaged clip noticed, a full disk shown in ``status``. Real ``doorward`` CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DOORWARD, SMALL_CONFIG, doorward, doorward_json, ffprobe, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture()
def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_CONFIG)
    return path


def run_once(data: Path, config: Path, scene: str = "cat") -> str:
    res = doorward("run", "--config", str(config), "--source", f"sim:{scene}", "--data-dir",
                   str(data), "--exit-at-eof")
    return res.stderr


def test_event_history_survives_restarts_and_clips_point_at_their_events(
        tmp_path: Path, small_config: Path) -> None:
    data = tmp_path / "data"
    runs = 3
    for _ in range(runs):
        run_once(data, small_config)
    events = doorward_json("events", "list", "--data-dir", str(data), "--json")["events"]
    clips = doorward_json("clips", "list", "--data-dir", str(data), "--json")["clips"]
    assert len(events) == runs, events  # sim:cat has one event per run
    assert len({e["id"] for e in events}) == runs
    assert len(clips) == runs
    by_id = {e["id"]: e for e in events}
    for clip in clips:
        event = by_id[clip["event_id"]]
        assert event["clip_id"] == clip["id"]


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount(8) syntax, e.g. "4m") at ``where``: a disk that really fills."""
    if os.geteuid() != 0:
        pytest.skip("a small file system needs root (mount -t tmpfs); the store's file layer is "
                    "tested with an injected ENOSPC in tests/unit/test_store.py")
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                          str(where)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def status_doc(data: Path, config: Path) -> dict[str, Any]:
    return json.loads(doorward("status", "--config", str(config), "--data-dir", str(data),
                               "--json").stdout)


def test_enospc_shows_in_status_as_a_problem_naming_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(SMALL_CONFIG + "[store]\nmin_free_bytes = 0\n")
    with small_filesystem(tmp_path / "card", "2m") as card:
        data = card / "data"
        err = run_once(data, config)  # the cat's clip (~4 MB) cannot fit
        assert "No space left on device" in err
        assert doorward_json("clips", "list", "--data-dir", str(data), "--json")["clips"] == []
        problems = status_doc(data, config)["problems"]
        text = doorward("status", "--config", str(config), "--data-dir", str(data)).stdout
    full = [p for p in problems if "disk full" in p]
    assert full, problems
    assert "free space" in full[0] and "max_bytes" in full[0]  # names the fix
    assert "problem" in text and "disk full" in text


def test_free_space_floor_evicts_with_a_warning_and_shows_in_status(tmp_path: Path) -> None:
    config = tmp_path / "floor.toml"
    # the whole 24 MiB card is below a 32 MiB floor: every clip goes the moment it is sealed
    config.write_text(SMALL_CONFIG + f"[store]\nmin_free_bytes = {32 * 2**20}\n")
    with small_filesystem(tmp_path / "card", "24m") as card:
        data = card / "data"
        err = run_once(data, config)
        problems = status_doc(data, config)["problems"]
    evicted = [line for line in err.splitlines() if "evicting" in line]
    assert evicted and all("WARNING" in line for line in evicted), err
    assert "min_free_bytes" in evicted[0] and "just sealed" in evicted[0]
    floor = [p for p in problems if "min_free_bytes" in p]
    assert floor, problems
    assert "free space" in floor[0] and "lower [store] min_free_bytes" in floor[0]


def _garbage_header(index: Path) -> None:
    with index.open("r+b") as f:
        f.write(os.urandom(100))


def _truncated(index: Path) -> None:
    os.truncate(index, index.stat().st_size // 3)


def _garbage_page(index: Path) -> None:
    page = 4096  # SQLite's default page size; page 1 (the schema) is left alone
    pages = index.stat().st_size // page
    assert pages >= 3, pages
    with index.open("r+b") as f:
        for n in range(2, pages):  # every table and index page after the schema
            f.seek(n * page)
            f.write(os.urandom(page))


@pytest.mark.parametrize("corrupt", [_garbage_header, _truncated, _garbage_page],
                         ids=["garbage header", "truncated", "garbage page"])
def test_corrupt_index_is_moved_aside_and_rebuilt_from_the_clip_files(
        tmp_path: Path, small_config: Path, corrupt: Any) -> None:
    data = tmp_path / "data"
    run_once(data, small_config)
    run_once(data, small_config)
    before = doorward_json("clips", "list", "--data-dir", str(data), "--json")["clips"]
    assert len(before) == 2
    index = data / "index.sqlite"
    assert not (data / "index.sqlite-wal").exists()  # a clean stop checkpoints the WAL
    corrupt(index)
    damaged = index.read_bytes()
    # The read-only CLI names the fix instead of a traceback, and changes nothing.
    listing = doorward("clips", "list", "--data-dir", str(data), check=False)
    assert listing.returncode == 2, listing.stderr
    assert "Traceback" not in listing.stderr and "doorward run" in listing.stderr
    assert "index" in listing.stderr and index.read_bytes() == damaged
    # The daemon starts (no crash loop), keeps the damaged index for forensics, rebuilds.
    err = run_once(data, small_config)
    kept = list(data.glob("index.sqlite.corrupt-*"))
    assert [p.read_bytes() for p in kept if not p.name.endswith(("-wal", "-shm"))] == [damaged]
    assert any("WARNING" in line and "rebuilt" in line for line in err.splitlines()), err
    after = doorward_json("clips", "list", "--data-dir", str(data), "--json")["clips"]
    assert {c["id"] for c in before} < {c["id"] for c in after} and len(after) == 3
    for clip in after:
        assert Path(clip["path"]).stat().st_size == clip["bytes"]
    assert any("index.sqlite" in p and "rebuilt" in p and "lost" in p
               for p in status_doc(data, small_config)["problems"])


def playable_seconds(clip: dict[str, Any], data: Path, tmp_path: Path) -> float:
    """What the owner gets out of a (truncated) clip: export it, ask ffprobe how long it plays."""
    out = tmp_path / f"{clip['id']}.mp4"
    doorward("clips", "export", clip["id"], "--data-dir", str(data), "--identity",
             str(data / "dev-owner.key"), "-o", str(out))
    return float(ffprobe(out)["duration"])


def test_a_clip_damaged_after_sealing_is_marked_at_start_up_with_its_playable_length(
        tmp_path: Path, small_config: Path) -> None:
    data = tmp_path / "data"
    run_once(data, small_config)
    (clip,) = doorward_json("clips", "list", "--data-dir", str(data), "--json")["clips"]
    path = Path(clip["path"])
    os.truncate(path, path.stat().st_size // 2)
    err = run_once(data, small_config)
    after = {c["id"]: c for c in doorward_json("clips", "list", "--data-dir", str(data),
                                                "--json")["clips"]}
    damaged = after[clip["id"]]
    assert damaged["truncated"] is True and damaged["bytes"] == path.stat().st_size
    assert damaged["damage"] and "index said" in damaged["damage"]
    assert damaged["duration_s"] < clip["duration_s"] - 3.0
    assert damaged["duration_s"] == pytest.approx(playable_seconds(damaged, data, tmp_path),
                                                  abs=1.1)  # within one GOP
    assert any("WARNING" in line and clip["id"] in line for line in err.splitlines()), err
    assert any(clip["id"] in p for p in status_doc(data, small_config)["problems"])


def test_a_clip_cut_by_a_crash_gets_its_duration_from_the_media_not_the_wall_clock(
        tmp_path: Path, small_config: Path) -> None:
    """Frames run ~20x faster than real time here (no --realtime): wall-clock estimates are far
    off, media timestamps are not."""
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(small_config), "--source", "sim:porch",
         "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def recording() -> bool:
            return any(p.stat().st_size > 1_500_000 for p in (data / "clips").glob("*.partial"))
        wait_for(recording, timeout=120, what="a clip well under way")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    err = run_once(data, small_config, scene="cat")
    cut = [c for c in doorward_json("clips", "list", "--data-dir", str(data), "--json")["clips"]
           if c["truncated"]]
    assert len(cut) == 1, err
    playable = playable_seconds(cut[0], data, tmp_path)
    assert playable > 2.0
    assert cut[0]["duration_s"] == pytest.approx(playable, abs=1.1)  # within one GOP
    # the event the crash cut short is in the history, closed, pointing at its clip
    events = doorward_json("events", "list", "--data-dir", str(data), "--json")["events"]
    (event,) = [e for e in events if e["id"] == cut[0]["event_id"]]
    assert event["clip_id"] == cut[0]["id"] and event["ended_at"] == cut[0]["ended_at"]


def test_a_card_filled_by_someone_else_never_stops_the_daemon(tmp_path: Path,
                                                               small_config: Path) -> None:
    """The card fills up under a running daemon (another writer): clips are aborted, status.json
    cannot be rewritten, and still the daemon records on, stops cleanly and says why."""
    with small_filesystem(tmp_path / "card", "40m") as card:
        data = card / "data"
        proc = subprocess.Popen(
            [DOORWARD, "run", "--config", str(small_config), "--source", "sim:porch",
             "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: (data / "status.json").exists(), timeout=60, what="the daemon")
            with (card / "filler").open("wb", buffering=0) as f:  # everything that is left
                for block in (65536, 512):
                    with contextlib.suppress(OSError):
                        while True:
                            f.write(b"\0" * block)
            assert shutil.disk_usage(card).free < 65536
            lines: list[str] = []
            assert proc.stderr is not None
            for line in proc.stderr:  # until two clips (a minute of scene time apart) failed
                lines.append(line)
                if sum("clip" in x and "aborted" in x for x in lines) >= 2:
                    break
            assert proc.poll() is None, "".join(lines)
            proc.send_signal(signal.SIGTERM)
            _, rest = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.communicate()
        err = "".join(lines) + rest
        problems = status_doc(data, small_config)["problems"]
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert any("min_free_bytes" in p for p in problems), problems  # the floor: 64 MiB > 0 free
