"""Live view on loopback (``scripts/bench live-view``): glass-to-glass latency and extra CPU.

The daemon runs ``sim:porch`` in real time at its default 1280x720, 15 fps with a real Mosquitto;
the owner is provisioned straight into its database. After a baseline window without a session,
the owner side (agent.owner.live_cli.watch, in this process) watches for ``--seconds``.

- Latency: for each fragment, this computer's clock when the fragment is verified and decrypted
  minus the device's clock when its frame entered the encoder (carried, signed, in the fragment's
  header; same machine, same clock). Frames the session replays from the pre-roll ring (filmed
  before the request) are left out. Target p95 <= 1.0 s.
- Extra CPU: the daemon's own CPU per second (status.json ``process_cpu_s`` less the simulator's
  rendering ``source_cpu_s``) with a session minus without, as a fraction of the encoder's CPU per
  second (``encoder_cpu_s``) during the session.
- Dropped frames (status.json ``dropped_frames``) in the baseline window and during the session:
  the session's must stay 0 (the exit code says whether it did and whether p95 <= 1.0 s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.owner.client import BrokerOptions
from agent.owner.keyring import OwnerKeyring, PairedDevice
from agent.owner.live_cli import watch
from tests.helpers import DOORWARD, doorward_json
from tests.servers import Mosquitto
from uplink import LiveSegment


def _status(data: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((data / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


def _window(data: Path, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    a = _status(data)
    time.sleep(seconds)
    return a, _status(data)


def _own_cpu(a: dict[str, Any], b: dict[str, Any]) -> float:
    return (b["process_cpu_s"] - b.get("source_cpu_s", 0)) - \
        (a["process_cpu_s"] - a.get("source_cpu_s", 0))


def _drops(a: dict[str, Any], b: dict[str, Any]) -> int:
    return int(b.get("dropped_frames", 0)) - int(a.get("dropped_frames", 0))


def _pct(v: list[float], p: int) -> float:
    return round(statistics.quantiles(v, n=100, method="inclusive")[p - 1], 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--baseline", type=float, default=20.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-view-"))
    broker = Mosquitto(tmp / "broker")
    broker.start()
    data = tmp / "device"
    label = doorward_json("device", "label", "--json", "--data-dir", str(data))
    ring, _ = OwnerKeyring.init(tmp / "owner")
    db = DeviceDB(data / "device.sqlite")
    ConsentStore(db).add_owner(ring.public_raw, ring.recipient, "owner", time.time())
    db.close()
    device = PairedDevice(label["device_id"], label["public_key"], label["fingerprint"],
                          broker.url, time.time())
    ring.add_device(device)
    proc = subprocess.Popen([DOORWARD, "run", "--source", "sim:porch", "--realtime",
                             "--data-dir", str(data), "--broker", broker.url],
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (_status(data).get("mqtt_connected") and _status(data).get("frames", 0) > 45
                   and "encoder_cpu_s" in _status(data)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the daemon did not start: run it by hand to see why")
            time.sleep(0.2)
        base_a, base_b = _window(data, args.baseline)
        latencies: list[float] = []
        asked = time.time()

        def got(seg: LiveSegment) -> None:
            if seg.kind == "chunk" and seg.t is not None and seg.t >= asked:
                latencies.append(time.time() - seg.t)

        live_a = _status(data)
        summary = watch(ring, device, BrokerOptions(broker.url), args.seconds, got)
        live_b = _status(data)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        broker.stop()
    live_s = (live_b["frames"] - live_a["frames"]) / 15
    base_s = (base_b["frames"] - base_a["frames"]) / 15
    base_per_s = _own_cpu(base_a, base_b) / base_s
    live_per_s = _own_cpu(live_a, live_b) / live_s
    enc_per_s = (live_b["encoder_cpu_s"] - live_a["encoder_cpu_s"]) / live_s
    final = _status(data)
    result = {
        "benchmark": "live-view", "size": "1280x720", "fps": 15, "session_s": args.seconds,
        "fragments": summary["fragments"], "bytes": summary["bytes"],
        "lost_messages": summary["lost_messages"], "ended": summary["ended"],
        "latency_samples": len(latencies),
        "latency_p50_s": _pct(latencies, 50), "latency_p95_s": _pct(latencies, 95),
        "latency_max_s": round(max(latencies), 3),
        "daemon_cpu_per_s_without": round(base_per_s, 3),
        "daemon_cpu_per_s_with": round(live_per_s, 3),
        "encoder_cpu_per_s": round(enc_per_s, 3),
        "extra_cpu_fraction_of_encoder": round((live_per_s - base_per_s) / enc_per_s, 3),
        "dropped_frames": final.get("dropped_frames"),
        "dropped_frames_baseline": _drops(base_a, base_b),
        "dropped_frames_session": _drops(live_a, live_b),
        "load_average": os.getloadavg(),
        "frames": final.get("frames"),
    }
    print(json.dumps(result, indent=2))
    return 0 if result["dropped_frames_session"] == 0 and result["latency_p95_s"] <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
