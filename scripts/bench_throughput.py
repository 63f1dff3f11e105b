"""Throughput floors (``scripts/bench throughput``): the speeds the tests used to assert.

Tests assert correctness only, so a slow or busy CI machine cannot fail them; these figures are
measured here, on loopback servers, and compared with floors that catch an accidentally quadratic
path (a Pi 4 does far better than each floor):

1. age writer: 64 MiB sealed in 4 KiB and in 1 MiB writes.             floor > 20 MiB/s
2. outbox drain, in-memory port: 1,000 queued messages.                floor >= 500 msg/s
3. outbox drain through a real Mosquitto (bench_uplink's backlog).     floor >= 500 msg/s
4. one 10 MiB PUT with its SHA-256 to a real SeaweedFS S3.             floor < 5 s
5. Mosquitto start and restart (the tests' broker fixture).            floor < 2 s each

Prints one JSON document; exits 1 when a floor is missed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.delivery.outbox import Outbox  # noqa: E402
from agent.delivery.outbox_worker import OutboxWorker  # noqa: E402
from agent.delivery.ports import Ports, Send  # noqa: E402
from scripts.bench_pipeline import machine  # noqa: E402
from scripts.bench_uplink import backlog  # noqa: E402
from tests.servers import Mosquitto  # noqa: E402
from tests.servers_s3 import SeaweedS3  # noqa: E402
from uplink.age import AgeWriter  # noqa: E402
from uplink.agekeys import Identity  # noqa: E402

MiB = 1024 * 1024


class _NullSink:
    def write(self, data: bytes) -> int:
        return len(data)


def age_writer(total: int = 64 * MiB) -> dict[str, float]:
    recipient = Identity.generate().recipient
    out = {}
    for piece in (4096, MiB):
        block = memoryview(bytes(piece))
        began = time.perf_counter()
        with AgeWriter(_NullSink(), [recipient]) as writer:
            for _ in range(total // piece):
                writer.write(block)
        out[f"{piece}_byte_writes_mib_s"] = round(total / MiB / (time.perf_counter() - began), 1)
    return out


def outbox_fast_port(tmp: Path, n: int = 1000) -> dict[str, Any]:
    path = tmp / "fast-outbox.sqlite"
    ob = Outbox(path)
    for i in range(n):
        ob.enqueue_message("doorward/dw-bench/events", b"m%04d" % i, "events", now=time.time())
    ob.close()
    published: list[bytes] = []

    def publish(sends: Sequence[Send]) -> int:
        published.extend(s.payload for s in sends)
        return len(sends)

    worker = OutboxWorker(path, lambda lane: Ports(allows=lambda s, now: True, publish=publish),
                          lanes=("messages",))
    began = time.perf_counter()
    worker.start()
    try:
        left = worker.drain(60.0)
    finally:
        worker.stop()
    elapsed = time.perf_counter() - began
    assert left == {} and published == [b"m%04d" % i for i in range(n)], left
    return {"messages": n, "elapsed_s": round(elapsed, 3), "rate_per_s": round(n / elapsed)}


def s3_put(tmp: Path, size: int = 10 * MiB) -> dict[str, Any]:
    from uplink.s3 import S3ObjectStore, S3Settings

    server = SeaweedS3(tmp / "s3")
    server.start()
    try:
        bucket = server.create_bucket("throughput")
        creds = tmp / "s3-credentials"
        creds.write_text(f"[default]\naws_access_key_id = {server.access_key}\n"
                         f"aws_secret_access_key = {server.secret_key}\n")
        creds.chmod(0o600)
        store = S3ObjectStore(S3Settings(bucket=bucket, endpoint_url=server.url,
                                         addressing_style="path", credentials_file=creds,
                                         multipart_threshold_bytes=16 * MiB))
        src = tmp / "ten.age"
        src.write_bytes(os.urandom(size))
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        began = time.perf_counter()
        store.put_file("bench/ten.age", src, sha256_hex=digest, size=size)
        elapsed = time.perf_counter() - began
        return {"bytes": size, "put_s": round(elapsed, 3),
                "seaweedfs_start_s": round(server.start_seconds[0], 2)}
    finally:
        server.stop()


def mosquitto_start(tmp: Path) -> dict[str, Any]:
    broker = Mosquitto(tmp / "mq-start", tls=True)
    try:
        broker.start()
        broker.restart()
    finally:
        broker.stop()
    return {"start_s": [round(s, 3) for s in broker.start_seconds]}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        age = age_writer()
        fast = outbox_fast_port(tmp)
        broker = Mosquitto(tmp / "mq")
        broker.start()
        try:
            through = backlog(tmp, broker)
        finally:
            broker.stop()
        s3 = s3_put(tmp)
        mq = mosquitto_start(tmp)
    checks = {
        "age_writer > 20 MiB/s": min(age.values()) > 20,
        "outbox fast port >= 500 msg/s": fast["rate_per_s"] >= 500,
        "outbox through Mosquitto >= 500 msg/s": (through["rate_per_s"] >= 500
                                                  and through["received"] == through["messages"]),
        "10 MiB PUT < 5 s": s3["put_s"] < 5.0,
        "Mosquitto start < 2 s": max(mq["start_s"]) < 2.0,
    }
    print(json.dumps({"bench": "throughput", "machine": machine(), "age_writer": age,
                      "outbox_fast_port": fast, "outbox_mosquitto": through, "s3_put": s3,
                      "mosquitto": mq, "floors": checks, "pass": all(checks.values())},
                     indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
