"""Uplink benchmarks (``scripts/bench uplink``), against a real Mosquitto and SeaweedFS on loopback.

1. event latency: the daemon runs simulated visits in real time with events consent (clear content,
   so the bench can match messages to log lines); for every event message, the time from the
   device's decision (the JSON log line's timestamp) to its receipt by a subscriber. Target p95
   <= 250 ms. (Detection itself waits min_motion_s on purpose; `scripts/bench detection` reports
   onset-to-event.)
2. sealed-to-bucket: for each clip, from the "clip sealed" log line to the subscriber receiving the
   device's `uploaded` message (the manifest is stored by then). Target <= 1 s for a 10 s 720p clip.
3. backlog drain: 1,000 signed messages queued while offline, then sent. Target >= 500 msg/s.
4. peak RSS of the daemon with the uplink active. Target <= 200 MB.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.delivery.outbox import Outbox  # noqa: E402
from agent.delivery.outbox_worker import OutboxWorker  # noqa: E402
from agent.delivery.ports import Ports  # noqa: E402
from agent.delivery.publisher import mqtt_batch_publisher  # noqa: E402
from agent.device.consent import ConsentStore  # noqa: E402
from agent.device.database import DeviceDB  # noqa: E402
from agent.device.identity import DeviceIdentity  # noqa: E402
from scripts.bench_pipeline import machine  # noqa: E402
from tests.servers import Mosquitto  # noqa: E402
from tests.servers_s3 import SeaweedS3  # noqa: E402
from uplink.agekeys import Identity  # noqa: E402
from uplink.keys import b64u_decode  # noqa: E402
from uplink.messages import EventBody, StatusBody, UploadedBody, verify_message  # noqa: E402
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings  # noqa: E402

DOORWARD = str(Path(sys.executable).parent / "doorward")


def provision(data: Path) -> DeviceIdentity:
    ident = DeviceIdentity.load_or_create(data)
    db = DeviceDB(data / "device.sqlite")
    consent = ConsentStore(db)
    owner = Identity.generate()
    consent.add_owner(os.urandom(32), str(owner.recipient), "owner", time.time())
    consent.grant(["events", "clips", "snapshots"], None, "k-bench", time.time())
    db.close()
    return ident


def parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def live_run(tmp: Path, broker: Mosquitto, s3: SeaweedS3, scenes: list[str]) -> dict[str, Any]:
    data = tmp / "device"
    ident = provision(data)
    bucket = s3.create_bucket("bench")
    cfg = tmp / "bench.toml"
    cfg.write_text(f"""[log]\nformat = "json"\n[events]\npost_roll_s = 2.0
[camera]\nwidth = 1280\nheight = 720
[s3]\nbucket = "{bucket}"\nendpoint_url = "{s3.url}"\naddressing_style = "path"\n""")
    inbox: queue.Queue[tuple[float, InboundMessage]] = queue.Queue()
    sub = MqttClient(MqttSettings(url=broker.url, client_id="bench-sub"),
                     on_message=lambda m: inbox.put((time.time(), m)))
    sub.subscribe("doorward/#")
    sub.start()
    assert sub.wait_connected(10)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3.access_key,
           "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    key = b64u_decode(ident.label()["public_key"])
    lat: list[float] = []
    uploads: list[tuple[float, Any, Any]] = []
    peak_rss = 0.0
    for scene in scenes:  # event ids restart with each run: match within a run
        proc = subprocess.Popen([DOORWARD, "run", "--config", str(cfg), "--source", f"sim:{scene}",
                                 "--realtime", "--exit-at-eof", "--data-dir", str(data),
                                 "--broker", broker.url], stderr=subprocess.PIPE, text=True,
                                env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, code, usage = os.wait4(proc.pid, 0)
        proc.returncode = code
        peak_rss = max(peak_rss, usage.ru_maxrss / 1024)
        logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        time.sleep(0.5)  # the subscriber's last messages (the run already drained its outbox)
        received = []
        while not inbox.empty():
            t, m = inbox.get()
            if m.payload != b"offline" and not m.topic.endswith(("/cmd", "/resp")):
                v = verify_message(m.payload, key)
                if not isinstance(v.body, StatusBody):
                    received.append((t, v.body))
        decided = {("motion-started", str(d["event_id"])): parse_ts(d["ts"])
                   for d in logs if d.get("event") == "started"}
        decided |= {("motion-ended", str(d["event_id"])): parse_ts(d["ts"])
                    for d in logs if d.get("event") == "ended"}
        sealed = {d["clip_id"]: (parse_ts(d["ts"]), d.get("clip_duration_s"),
                                 d.get("clip_bytes")) for d in logs
                  if d.get("event") == "ended" and d.get("clip_id")}
        lat += [t - decided[(b.kind, b.event_id)] for t, b in received
                if isinstance(b, EventBody) and (b.kind, b.event_id) in decided]
        uploads += [(t - sealed[b.clip_id][0], sealed[b.clip_id][1], sealed[b.clip_id][2])
                    for t, b in received if isinstance(b, UploadedBody) and b.clip_id in sealed]
        print(f"  ran sim:{scene} (exit {code})", flush=True)
    sub.stop()
    return {"event_latency_ms": sorted(round(x * 1000, 1) for x in lat),
            "uploads": [{"sealed_to_uploaded_s": round(u[0], 3), "clip_s": u[1], "bytes": u[2]}
                        for u in uploads],
            "peak_rss_mb": round(peak_rss, 1)}


def backlog(tmp: Path, broker: Mosquitto, n: int = 1000) -> dict[str, Any]:
    from agent.delivery.queueing import sign_into_chain

    data = tmp / "backlog"
    ident = provision(data)
    outbox = Outbox(data / "outbox.sqlite")
    for i in range(n):
        sign_into_chain(outbox, ident, EventBody(kind="motion-started", event_id=str(i),
                                                 at="2026-11-29T00:00:00Z"),
                        "events", content="clear", recipients=(), now=time.time())
    got: queue.Queue[InboundMessage] = queue.Queue()
    sub = MqttClient(MqttSettings(url=broker.url, client_id="bench-backlog"), on_message=got.put)
    sub.subscribe("doorward/#")
    sub.start()
    assert sub.wait_connected(10)
    client = MqttClient(MqttSettings(url=broker.url, client_id=ident.device_id),
                        on_message=lambda m: None)
    client.start()
    assert client.wait_connected(10)
    worker = OutboxWorker(data / "outbox.sqlite",
                          lambda lane: Ports(allows=lambda s, now: True,
                                             publish=mqtt_batch_publisher(client)),
                          lanes=("messages",))
    start = time.perf_counter()
    worker.start()
    left = worker.drain(60)
    elapsed = time.perf_counter() - start
    worker.stop()
    deadline = time.monotonic() + 10
    while got.qsize() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    client.stop()
    sub.stop()
    outbox.close()
    return {"messages": n, "left": left, "elapsed_s": round(elapsed, 3),
            "rate_per_s": round(n / elapsed), "received": got.qsize()}


def main() -> int:
    scenes = sys.argv[1:] or ["visit", "busy", "parcel", "cat"]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        broker = Mosquitto(tmp / "mq")
        broker.start()
        s3 = SeaweedS3(tmp / "s3")
        s3.start()
        try:
            live = live_run(tmp, broker, s3, scenes)
            drain = backlog(tmp, broker)
        finally:
            broker.stop()
            s3.stop()
    lat = live["event_latency_ms"]
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None
    res = {
        "bench": "uplink", "machine": machine(), "scenes": scenes,
        "event_messages": len(lat), "event_latency_ms_p50": statistics.median(lat) if lat else None,
        "event_latency_ms_p95": p95, "event_latency_ms_max": max(lat) if lat else None,
        "uploads": live["uploads"], "peak_rss_mb": live["peak_rss_mb"], "backlog": drain,
        "targets": {"event_latency_ms_p95": "<= 250", "sealed_to_uploaded_s": "<= 1 (10 s 720p)",
                    "backlog rate_per_s": ">= 500", "peak_rss_mb": "<= 200"},
    }
    ok = (p95 is not None and p95 <= 250 and drain["rate_per_s"] >= 500
          and live["peak_rss_mb"] <= 200 and all(u["sealed_to_uploaded_s"] <= 1.0
                                                for u in live["uploads"]))
    res["pass"] = ok
    print(json.dumps(res, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
