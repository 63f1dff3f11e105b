"""The chaos runs as tests (short versions; `scripts/chaos` runs the full ones and prints counts).

Each runs the real daemon against a real Mosquitto and a real SeaweedFS behind a fault-injecting
proxy, then audits from the owner's side: every clip the device holds is in the bucket exactly
once and opens, every message the device sent arrived, in order.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.chaos.faulty_proxy import Faults
from tests.chaos.rig import ChaosRig

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("DOORWARD_CHAOS_KILLS", "6"))


def check(report_path: Path, rig: ChaosRig) -> None:
    report = rig.audit()
    report_path.write_text(json.dumps(report.to_json(), indent=1))
    assert report.clips_recorded >= 1
    assert report.ok and report.clips_pending == 0, report.to_json()


def test_kill_9_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with ChaosRig(tmp_path, seed=11) as rig:
        rig.kill_loop(kills=KILLS, scene="busy", rng=random.Random(11))
        rig.drain()
        check(tmp_path / "report.json", rig)
        assert rig.report.kills >= KILLS // 2


def test_a_faulty_bucket_and_kills_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    faults = Faults(reset=0.08, error=0.12, truncate=0.08, latency=0.2, max_latency_s=0.3)
    with ChaosRig(tmp_path, faults=faults, seed=12) as rig:
        rig.kill_loop(kills=max(2, KILLS // 2), scene="busy", rng=random.Random(12),
                      max_delay_s=10.0)
        rig.drain()  # scripts/chaos keeps the faults on here too, with a longer wait
        check(tmp_path / "report.json", rig)
        assert sum(v for k, v in rig.report.faults.items() if k != "forward") > 0


def test_broker_and_bucket_outages_lose_nothing(tmp_path: Path) -> None:
    with ChaosRig(tmp_path, seed=13) as rig:
        rig.outage(seconds=20)
        check(tmp_path / "report.json", rig)


def test_clock_jumps_both_ways_between_runs_lose_nothing(tmp_path: Path) -> None:
    """The Pi has no RTC: restarts see the clock jump a day ahead, back, and to the real time."""
    with ChaosRig(tmp_path, seed=14) as rig:
        rig.kill_loop(kills=max(3, KILLS // 2), scene="busy", rng=random.Random(14),
                      clocks=("+1d", "-3h", None, "+10m"))
        rig.drain()
        check(tmp_path / "report.json", rig)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_full_disk_corrupts_nothing_and_crashes_nothing(tmp_path: Path) -> None:
    """The data directory on a 3 MiB file system: clips fill it, the store evicts delivered ones
    and aborts what cannot be written; nothing that is kept or uploaded is corrupt."""
    floor = "[store]\nmin_free_bytes = 262144\n"  # the card is smaller than the default floor
    with ChaosRig(tmp_path, seed=15, disk_bytes=3 << 20, config_extra=floor) as rig:
        rig.kill_loop(kills=max(3, KILLS // 2), scene="busy", rng=random.Random(15),
                      max_delay_s=8.0)
        rig.drain()
        report = rig.audit()
        (tmp_path / "report.json").write_text(json.dumps(report.to_json(), indent=1))
        assert report.crashes == 0 and report.clips_corrupt == 0, report.to_json()
        assert report.clips_recorded + report.clips_aborted >= 1, report.to_json()
        assert report.clips_duplicated == 0 and report.messages_lost == 0, report.to_json()
