"""A shard of the fleet: up to ~50 simulated devices in one process (``scripts/fleet.py`` starts
one per 50 devices with multiprocessing's spawn context).

Why shards: paho-mqtt 2.x's network loop uses ``select.select``, which cannot watch a descriptor
numbered 1024 or more. A device holds ~11 descriptors (its socket and paho's wake-up socket pair,
SQLite files of device.sqlite and outbox.sqlite on two threads), so one process tops out near
90 devices: the 340th client of a 1,000-device process never connects and reports no error
(measured). Within a shard every device is the daemon's wiring (scripts/fleet_device.py).

Protocol on ``conn`` (coordinator -> shard / shard -> coordinator)::

    <- ("owners", {device_id: (public key, owner age identity)})     after provisioning
    -> ("connect", url, username)      <- ("connected", n)           all clients connected
    -> ("go", start_mono, end_mono)    events on schedule until end (CLOCK_MONOTONIC is shared)
    <- ("status", {...}) every second: connected, queued, chain heads total, events
    -> ("stop",)                       <- ("result", {...}): decisions, heads, dropped
"""

from __future__ import annotations

import heapq
import random
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from scripts.fleet_device import SimDevice, provision


@dataclass(frozen=True)
class ShardArgs:
    index: int
    devices: int
    work: Path
    events_per_minute: float
    seed: int = 7


class Shard:
    def __init__(self, args: ShardArgs, conn: Connection) -> None:
        self.args, self.conn = args, conn
        self.devices: list[SimDevice] = []
        self.decisions: dict[tuple[str, int], float] = {}
        self.events = 0

    def dirs(self) -> list[Path]:
        return [self.args.work / f"dev{self.args.index:03d}-{n:03d}"
                for n in range(self.args.devices)]

    def provision(self) -> None:
        owners: dict[str, tuple[bytes, str]] = {}
        now = time.time()
        for data_dir in self.dirs():
            identity, owner = provision(data_dir, now)
            owners[identity.device_id] = (identity.public_raw, str(owner))
        self.conn.send(("owners", owners))

    def connect(self, url: str, username: bool) -> None:
        for data_dir in self.dirs():
            dev = SimDevice.open(data_dir, url, username=username)
            dev.start()
            self.devices.append(dev)
        while self.connected() < len(self.devices):
            self.poll_all()
            time.sleep(0.2)  # polling the clients' state (each has its own events queue)
        self.poll_all()
        self.conn.send(("connected", len(self.devices)))

    def connected(self) -> int:
        return sum(d.client.is_connected for d in self.devices)

    def poll_all(self) -> None:
        for dev in self.devices:
            dev.poll()

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected(), "events": self.events,
                "queued": sum(sum(d.outbox.pending().values()) for d in self.devices),
                "heads": sum(d.outbox.chain_head()[0] for d in self.devices),
                "protocol": self.devices[0].client.protocol if self.devices else ""}

    def run(self, start: float, end: float) -> None:
        period = 60.0 / self.args.events_per_minute
        rng = random.Random(self.args.seed * 1000 + self.args.index)
        heap = [(start + rng.uniform(0, period), i, 1) for i in range(len(self.devices))]
        heapq.heapify(heap)
        last = 0.0
        while (now := time.monotonic()) < end:
            while heap and heap[0][0] <= now:
                due, i, number = heapq.heappop(heap)
                dev = self.devices[i]
                decided = time.time()
                seq = dev.event(number)
                if seq is not None:
                    self.decisions[(dev.device_id, seq)] = decided
                    self.events += 1
                if due + period < end:
                    heapq.heappush(heap, (due + period, i, number + 1))
            self.poll_all()
            if now - last >= 1.0:
                last = now
                self.conn.send(("status", self.status()))
            wait = min(0.2, (heap[0][0] - time.monotonic()) if heap else 0.2)
            time.sleep(max(0.0, wait))  # until the next event is due or the next poll

    def linger(self) -> None:
        """After the last event: keep handling reconnections until told to stop."""
        while not self.conn.poll(1.0):
            self.poll_all()
            self.conn.send(("status", self.status()))
        self.conn.recv()  # ("stop",)

    def finish(self) -> None:
        for dev in self.devices:
            dev.stop()
        result = {
            "decisions": self.decisions,
            "heads": {d.device_id: d.outbox.chain_head()[0] for d in self.devices},
            "dropped": sum(len(d.outbox.items(("dropped",))) for d in self.devices),
            "events": self.events,
        }
        for dev in self.devices:
            dev.close()
        self.conn.send(("result", result))


def shard_main(args: ShardArgs, conn: Connection) -> None:
    """The shard process body (see the module docstring for the protocol)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    shard = Shard(args, conn)
    shard.provision()
    _, url, username = conn.recv()
    shard.connect(url, username)
    _, start, end = conn.recv()
    shard.run(start, end)
    shard.linger()
    shard.finish()
