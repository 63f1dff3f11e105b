"""How much of an event is lost when the device dies mid-event (``scripts/bench live``).

The daemon records the ``visit`` scene in real time at 1280x720, 15 fps with ``clips`` consent and
a real SeaweedFS bucket; at a random moment of the visitor's event it is killed with SIGKILL (the
doorbell torn off the wall). What the owner then gets from the bucket alone (segments checked
against the signed progress record, joined, opened with the owner's identity) is decoded, and
the loss is the source time of the kill minus the end of the last frame the owner can see.
Target: <= 5 s. ``--segment-s 0`` measures the old behaviour (whole clips only) for comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.device.consent import ConsentStore  # noqa: E402
from agent.device.database import DeviceDB  # noqa: E402
from agent.device.identity import DeviceIdentity  # noqa: E402
from scripts.bench_pipeline import machine  # noqa: E402
from tests.servers_s3 import SeaweedS3  # noqa: E402
from uplink.age import AgeReader  # noqa: E402
from uplink.agekeys import Identity  # noqa: E402
from uplink.clip_progress import verify_progress  # noqa: E402
from uplink.keys import public_raw  # noqa: E402

DOORWARD = str(Path(sys.executable).parent / "doorward")


def provision(data: Path, owner: Identity) -> DeviceIdentity:
    ident = DeviceIdentity.load_or_create(data)
    db = DeviceDB(data / "device.sqlite")
    consent = ConsentStore(db)
    consent.add_owner(os.urandom(32), str(owner.recipient), "owner", time.time())
    consent.grant(["clips"], None, "k-bench", time.time())
    db.close()
    return ident


def status(data: Path) -> dict[str, object]:
    try:
        return dict(json.loads((data / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


def wait(pred: object, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > end:
            raise TimeoutError("the daemon did not get there in time")
        time.sleep(0.02)


def trial(tmp: Path, s3: SeaweedS3, segment_s: float, rng: random.Random) -> dict[str, float]:
    data, owner = tmp / "device", Identity.generate()
    ident = provision(data, owner)
    bucket = s3.create_bucket("live")
    cfg = tmp / "device.toml"
    cfg.write_text(f'[camera]\nwidth = 1280\nheight = 720\nfps = 15\n[s3]\nbucket = "{bucket}"\n'
                   f'endpoint_url = "{s3.url}"\naddressing_style = "path"\n'
                   f"[uplink]\nlive_segment_s = {segment_s}\n")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3.access_key,
           "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.Popen([DOORWARD, "run", "--config", str(cfg), "--source", "sim:visit",
                             "--data-dir", str(data), "--realtime"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: status(data).get("recording") and status(data).get("pid") == proc.pid, 60)
        delay = rng.uniform(3.0, 15.0)
        time.sleep(delay)  # a random moment of the event (this is the experiment, not a wait)
        st = status(data)
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    # source time at the kill: the last status plus the wall time since its last frame
    t_kill = float(st["source_t_s"]) + (killed_at - float(st["last_frame_at"]))  # type: ignore[arg-type]
    db = sqlite3.connect(data / "index.sqlite")
    (clip_start,) = db.execute(
        "SELECT source_start_s FROM clips WHERE state = 'partial'").fetchone()
    db.close()
    seen = owner_sees(s3, bucket, ident, owner)
    end = clip_start + seen if seen is not None else clip_start
    return {"delay_s": delay, "event_s": t_kill - clip_start, "seen_s": seen or 0.0,
            "lost_s": t_kill - end}


def owner_sees(s3: SeaweedS3, bucket: str, ident: DeviceIdentity,
               owner: Identity) -> float | None:
    """Seconds of video the owner can play from the bucket alone (None: nothing there)."""
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    progress = [k for k in keys if k.endswith(".progress.jws")]
    if not progress:
        return None
    token = client.get_object(Bucket=bucket, Key=progress[0])["Body"].read()
    record = verify_progress(token, public_raw(ident.key))
    sealed = b"".join(client.get_object(Bucket=bucket, Key=s.key)["Body"].read()
                      for s in record.segments)
    mp4 = AgeReader(io.BytesIO(sealed), [owner], allow_truncated=True).read()
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        times = [float(p.pts * stream.time_base) for p in container.demux(stream)
                 if p.pts is not None]
    return max(times) - min(times) + 1 / 15 if times else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--segment-s", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"machine: {machine()}")
    print(f"live segments every {args.segment_s} s; {args.trials} kills at random moments of an "
          "event (1280x720, 15 fps, sim:visit in real time, SeaweedFS on loopback)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        s3 = SeaweedS3(Path(tmp) / "s3")
        s3.start()
        try:
            for i in range(args.trials):
                row = trial(Path(tmp) / f"t{i}", s3, args.segment_s, rng)
                rows.append(row)
                print(f"  kill {i + 1}: {row['event_s']:5.1f} s into the clip, owner sees "
                      f"{row['seen_s']:5.1f} s, lost {row['lost_s']:4.1f} s", flush=True)
        finally:
            s3.stop()
    lost = sorted(r["lost_s"] for r in rows)
    print(f"lost: median {statistics.median(lost):.1f} s, max {lost[-1]:.1f} s "
          f"(target <= 5 s): {'MET' if lost[-1] <= 5.0 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
