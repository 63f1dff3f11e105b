"""The full chaos runs (``scripts/chaos``): the counts RELIABILITY.md quotes.

1. kill -9 at random points, 100 times, while the busy scene records and uploads;
2. the same with the bucket behind a fault-injecting proxy (resets, 500/503, truncated
   responses, latency), 30 kills;
3. clock jumps between runs (+1 day, -3 h, +10 min, the real time), 20 kills;
4. a broker and bucket outage of 20 s of the scene while it records, in real time;
5. 10,000 malformed inputs on every way in (tests/chaos/test_fuzz.py).

Each prints its report (clips recorded, delivered once, still queued, lost, duplicated, corrupt;
messages sent, lost, duplicated, out of order; crashes) and exits non-zero if any run was not
clean. A clip "still queued" is not lost: the bucket kept failing and the outbox backs off.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_pipeline import machine  # noqa: E402
from tests.chaos.faulty_proxy import Faults  # noqa: E402
from tests.chaos.rig import ChaosRig, Report  # noqa: E402

FAULTS = Faults(reset=0.08, error=0.12, truncate=0.08, latency=0.2, max_latency_s=0.3)


def kills(tmp: Path, n: int, *, faults: Faults | None = None,
          clocks: tuple[str | None, ...] = (None,), seed: int = 1) -> Report:
    with ChaosRig(tmp, faults=faults, seed=seed) as rig:
        rng = random.Random(seed)
        for i in range(n):
            rig.kill_loop(kills=1, scene="busy", rng=rng, clocks=clocks,
                          max_delay_s=10.0 if faults else 6.0)
            print(f"\r  {i + 1}/{n} runs", end="", flush=True)
        print()
        rig.drain(keep_faults=faults is not None)
        if faults is None:
            return rig.audit()
        during = rig.audit()
        print(f"  with the faults still on: {json.dumps(during.to_json())}", flush=True)
        rig.drain()  # the bucket heals: what was still queued goes, once
        return rig.audit()


def outage(tmp: Path) -> Report:
    with ChaosRig(tmp, seed=4) as rig:
        rig.outage(seconds=20)
        return rig.audit()


def main() -> int:
    ap = argparse.ArgumentParser(description="the full chaos runs")
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "chaos-out")
    args = ap.parse_args()
    args.out.mkdir(exist_ok=True)
    print(f"machine: {machine()}")
    runs = {
        f"kill -9 x{args.kills}": lambda t: kills(t, args.kills),
        f"faulty bucket, kill -9 x{max(3, args.kills * 3 // 10)}":
            lambda t: kills(t, max(3, args.kills * 3 // 10), faults=FAULTS, seed=2),
        f"clock jumps, kill -9 x{max(3, args.kills // 5)}":
            lambda t: kills(t, max(3, args.kills // 5), clocks=("+1d", "-3h", None, "+10m"),
                            seed=3),
        "broker + bucket outage (20 s)": outage,
    }
    clean = True
    for name, fn in runs.items():
        print(f"== {name}", flush=True)
        start = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            report = fn(Path(tmp))
        doc = {**report.to_json(), "seconds": round(time.monotonic() - start)}
        print(json.dumps(doc), flush=True)
        (args.out / f"{name.split(',')[0].replace(' ', '_')}.json").write_text(json.dumps(doc))
        clean &= report.ok
    print("== 10,000 malformed inputs on every way in", flush=True)
    fuzz = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/chaos/test_fuzz.py"], cwd=ROOT,
                          env={**os.environ, "DOORWARD_FUZZ_N": "10000"}, check=False)
    clean &= fuzz.returncode == 0
    print("ALL CLEAN" if clean else "NOT CLEAN: see the reports above")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
