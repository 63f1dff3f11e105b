"""Fleet simulator (``scripts/fleet N``): N devices in one process, one private broker, one restart.

    scripts/fleet 1000                                   # Mosquitto, 4 min, 1 event/min each
    scripts/fleet 1000 --broker all                      # Mosquitto, RabbitMQ, NATS in turn
    scripts/fleet 20 --minutes 0.5 --events-per-minute 6 --restart-at 12 --outage 3

Each device is built from the daemon's modules (see scripts/fleet_device.py): events are signed
with the device's Ed25519 key into its chain, sealed to its owner's age identity, queued in its
own durable outbox (one SQLite file per device) and sent by its own OutboxWorker lane through its
own MqttClient (paho 2.x, one network thread per client). Devices run in shard processes of 50
(scripts/fleet_shard.py: paho's select() cannot watch descriptors >= 1024, ~90 devices' worth),
coordinated from here. A subscriber in another process
(scripts/fleet_subscriber.py) verifies signature, chain and seal of every message and keeps one
receipt per (device, seq). At ``--restart-at`` seconds the broker process is stopped, kept down
for ``--outage`` seconds and started again on the same port with the same data directory; the
outboxes carry the events decided meanwhile.

Counted: lost = seqs 1..chain head of a device never verified; duplicated = a seq received with
different content (a copy with the same bytes is a redelivery, removed by de-duplication and
reported); out of order = the chain checker's reports. Latency = device decision (the call of
Delivery.event) to verified receipt, wall clock, events only. Exit status 1 if anything was lost,
duplicated, invalid or dropped, or the fleet did not drain in time.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.fleet_brokers import BROKERS, Broker, make_broker  # noqa: E402
from scripts.fleet_shard import ShardArgs, shard_main  # noqa: E402
from scripts.fleet_subscriber import SubscriberArgs, SubscriberResult, run  # noqa: E402

log = logging.getLogger("fleet")


@dataclass(frozen=True)
class Plan:
    devices: int
    broker: str
    minutes: float = 4.0
    events_per_minute: float = 1.0
    restart_at_s: float | None = None  # None: half-way
    outage_s: float = 10.0
    drain_timeout_s: float = 300.0
    progress_s: float = 10.0
    work_dir: Path | None = None
    keep_logs: Path | None = None  # copy the broker's directory (logs, data) here at the end
    shard_size: int = 50  # devices per process (paho's select() stops at descriptor 1023)

    @property
    def duration_s(self) -> float:
        return self.minutes * 60.0

    @property
    def restart_s(self) -> float:
        return self.duration_s / 2 if self.restart_at_s is None else self.restart_at_s


@dataclass
class Outcome:
    broker: str
    devices: int
    minutes: float
    events: int = 0
    events_in_outage: int = 0  # decided while the broker was down: the outboxes carried them
    messages: int = 0  # every message of every chain (events and status)
    verified: int = 0
    lost: int = 0
    duplicated: int = 0
    redelivered: int = 0
    retained_copies: int = 0
    invalid: int = 0
    dropped: int = 0
    issues: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    latency_steady_ms: dict[str, float] = field(default_factory=dict)
    restart: dict[str, float] = field(default_factory=dict)
    setup_s: float = 0.0
    drain_s: float = 0.0
    drained: bool = False
    protocol: str = ""
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.drained and self.lost == 0 and self.duplicated == 0 and self.invalid == 0
                and self.dropped == 0 and self.issues.get("bad-prev", 0) == 0)


def pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    def at(q: float) -> float:
        return round(1000 * s[min(len(s) - 1, int(q * len(s)))], 1)
    return {"p50": at(0.50), "p95": at(0.95), "max": round(1000 * s[-1], 1),
            "mean": round(1000 * statistics.fmean(s), 1), "n": len(s)}


class Fleet:
    """The coordinator of one run: broker, subscriber, the shard processes, the restart."""

    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan, self.work = plan, work
        self.broker: Broker = make_broker(plan.broker, work / "broker")
        self.mp = multiprocessing.get_context("spawn")
        self.shards: list[tuple[BaseProcess, Connection]] = []
        self.status: dict[int, dict[str, Any]] = {}
        self.owners: dict[str, tuple[bytes, str]] = {}
        self.decisions: dict[tuple[str, int], float] = {}
        self.heads: dict[str, int] = {}
        self.events = self.dropped = 0
        self.restart: dict[str, float] = {}
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{self.plan.broker} {time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def total(self, key: str) -> int:
        return sum(int(st.get(key, 0)) for st in self.status.values())

    # ---- set-up ----------------------------------------------------------------------------
    def start_shards(self) -> None:
        n, size = self.plan.devices, self.plan.shard_size
        self.say(f"provisioning {n} devices in {-(-n // size)} shard process(es) under "
                 f"{self.work}")
        for index, first in enumerate(range(0, n, size)):
            parent, child = self.mp.Pipe()
            args = ShardArgs(index, min(size, n - first), self.work / "devices",
                             self.plan.events_per_minute)
            proc = self.mp.Process(target=shard_main, args=(args, child),
                                   name=f"fleet-shard-{index}")
            proc.start()
            self.shards.append((proc, parent))
        for _, conn in self.shards:
            self.owners.update(self.expect(conn, "owners"))
        self.broker.start()
        self.say(f"{self.plan.broker} listening at {self.broker.url}")

    def expect(self, conn: Connection, kind: str, timeout: float = 600.0) -> Any:
        """The next message of ``kind`` from a shard (status reports on the way are kept)."""
        deadline = time.monotonic() + timeout
        while conn.poll(max(0.0, deadline - time.monotonic())):
            got, *rest = conn.recv()
            if got == kind:
                return rest[0]
            if got == "status":
                self.status[id(conn)] = rest[0]
        raise TimeoutError(f"no {kind!r} from a fleet shard within {timeout:.0f} s")

    def connect(self) -> None:
        username = self.plan.broker != "rabbitmq"
        for _, conn in self.shards:
            conn.send(("connect", self.broker.url, username))
        for _, conn in self.shards:
            self.expect(conn, "connected")
        self.say(f"all {self.plan.devices} devices connected")

    # ---- the run ---------------------------------------------------------------------------
    def collect(self) -> None:
        for _, conn in self.shards:
            while conn.poll(0):
                got, *rest = conn.recv()
                if got == "status":
                    self.status[id(conn)] = rest[0]

    def restarter(self) -> None:
        began = time.monotonic()
        self.say(f"stopping {self.plan.broker} (outage {self.plan.outage_s:.0f} s)")
        self.restart["wall_stop"] = time.time()
        self.broker.stop()
        self.restart["stopped_at_s"] = time.monotonic() - self.t0
        self.restart["stop_took_s"] = time.monotonic() - began
        time.sleep(self.plan.outage_s)  # the outage itself: nothing to wait for
        began = time.monotonic()
        self.broker.start()
        self.restart["start_took_s"] = time.monotonic() - began
        self.restart["listening_at_s"] = time.monotonic() - self.t0
        self.restart["wall_listening"] = time.time()
        self.say(f"{self.plan.broker} listening again after "
                 f"{self.restart['start_took_s']:.1f} s of start-up")

    def watch_reconnect(self) -> None:
        if "listening_at_s" in self.restart and "all_reconnected_at_s" not in self.restart \
                and self.total("connected") == self.plan.devices:
            self.restart["all_reconnected_at_s"] = time.monotonic() - self.t0
            self.restart["wall_reconnected"] = time.time()
            self.say("all devices reconnected")

    def run_events(self, counter: Any) -> None:
        start = time.monotonic() + 1.0
        end = start + self.plan.duration_s
        for _, conn in self.shards:
            conn.send(("go", start, end))
        restart = threading.Thread(target=self.restarter, name="restart", daemon=True)
        restart_due, last = start + self.plan.restart_s, start
        while (now := time.monotonic()) < end:
            self.collect()
            if now >= restart_due and not restart.is_alive() and not self.restart:
                restart.start()
            self.watch_reconnect()
            if now - last >= self.plan.progress_s:
                last = now
                self.progress(counter)
            time.sleep(0.2)  # polling the shards' reports and the clock
        restart.join()

    def progress(self, counter: Any, what: str = "") -> None:
        state = "down" if "stopped_at_s" in self.restart and \
            "listening_at_s" not in self.restart else "up"
        self.say(f"{what}events {self.total('events')}, verified {counter.value} of "
                 f"{self.total('heads')} sent, connected {self.total('connected')}/"
                 f"{self.plan.devices}, queued {self.total('queued')}, broker {state}")

    def drain(self, counter: Any) -> tuple[bool, float]:
        began = last = time.monotonic()
        fresh = 0.0
        while time.monotonic() - began < self.plan.drain_timeout_s:
            self.collect()
            self.watch_reconnect()
            if time.monotonic() - began > 1.5 and self.total("queued") == 0 and \
                    counter.value >= self.total("heads"):
                fresh += 1  # two quiet reports in a row: nothing in flight between them
                if fresh >= 2:
                    return True, time.monotonic() - began
            else:
                fresh = 0
            if time.monotonic() - last >= self.plan.progress_s:
                last = time.monotonic()
                self.progress(counter, "draining: ")
            time.sleep(1.0)  # the shards report once a second
        return False, time.monotonic() - began

    def finish(self) -> None:
        for _, conn in self.shards:
            conn.send(("stop",))
        for proc, conn in self.shards:
            result = self.expect(conn, "result")
            self.decisions.update(result["decisions"])
            self.heads.update(result["heads"])
            self.dropped += result["dropped"]
            self.events += result["events"]
            proc.join(30)

    def protocol(self) -> str:
        return next((str(st.get("protocol")) for st in self.status.values()), "")

    def close(self) -> None:
        for proc, _ in self.shards:
            if proc.is_alive():
                proc.terminate()
            proc.join(10)


def tally(fleet: Fleet, result: SubscriberResult, out: Outcome) -> None:
    expected = {(dev, s) for dev, head in fleet.heads.items() for s in range(1, head + 1)}
    got = set(result.receipts)
    out.messages, out.verified = len(expected), len(got & expected)
    out.lost = len(expected - got)
    out.duplicated = result.conflicting + len(got - expected)
    out.redelivered, out.retained_copies = result.redelivered, result.retained_copies
    out.invalid, out.issues = result.invalid, dict(result.issues)
    out.protocol, out.examples = result.protocol, result.examples[:10]
    stop = fleet.restart.get("wall_stop")
    for key in sorted(expected - got)[:10]:
        when = fleet.decisions.get(key)
        rel = f", decided {when - stop:+.1f} s from the broker stop" if when and stop else ""
        out.examples.append(f"lost {key}{rel}")
    lat, steady = [], []
    down = (fleet.restart.get("wall_stop", 0.0), fleet.restart.get("wall_listening", 0.0))
    out.events_in_outage = sum(down[0] <= t <= down[1] for t in fleet.decisions.values())
    lo = fleet.restart.get("wall_stop", float("inf"))
    hi = fleet.restart.get("wall_reconnected", float("inf"))
    for key, decided in fleet.decisions.items():
        if key in result.receipts:
            delay = result.receipts[key] - decided
            lat.append(delay)
            if not lo <= decided <= hi:
                steady.append(delay)
    out.latency_ms, out.latency_steady_ms = pct(lat), pct(steady)
    out.restart = {k: round(v, 1) for k, v in fleet.restart.items() if not k.startswith("wall")}


def run_one(plan: Plan) -> Outcome:
    raise_fd_limit()
    out = Outcome(plan.broker, plan.devices, plan.minutes)
    with tempfile.TemporaryDirectory(prefix=f"fleet-{plan.broker}-", dir=plan.work_dir) as tmp:
        fleet = Fleet(plan, Path(tmp))
        parent, child = fleet.mp.Pipe()
        counter = fleet.mp.Value("q", 0)
        sub = None
        try:
            fleet.start_shards()
            sub = fleet.mp.Process(target=run, name="fleet-subscriber", args=(
                SubscriberArgs(fleet.broker.url, fleet.owners), child, counter))
            sub.start()
            if (hello := parent.recv()) != "subscribed":
                raise RuntimeError(str(hello))
            fleet.connect()
            out.setup_s = round(time.monotonic() - fleet.t0, 1)
            fleet.say(f"running {plan.minutes:g} min, {plan.events_per_minute:g} event(s)/min "
                      f"per device, broker restart at {plan.restart_s:.0f} s")
            fleet.run_events(counter)
            out.drained, drain_s = fleet.drain(counter)
            out.drain_s = round(drain_s, 1)
            fleet.finish()
            out.events, out.dropped = fleet.events, fleet.dropped
            parent.send("finish")
            tally(fleet, parent.recv(), out)
        finally:
            fleet.close()
            if sub is not None and sub.is_alive():
                sub.terminate()
            if sub is not None:
                sub.join(10)
            fleet.broker.close()
            if plan.keep_logs is not None:
                shutil.copytree(fleet.work / "broker", plan.keep_logs / plan.broker,
                                dirs_exist_ok=True, ignore_dangling_symlinks=True)
    return out


def raise_fd_limit() -> None:
    """1,000 devices hold ~10,000 descriptors (SQLite files, sockets): take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def report(out: Outcome) -> str:
    lat, steady = out.latency_ms, out.latency_steady_ms
    lines = [
        f"== {out.broker} (MQTT {out.protocol or '?'}): {out.devices} devices, {out.minutes:g} "
        f"min, {out.events} events, {out.messages} messages (events + status)",
        f"   lost {out.lost}, duplicated {out.duplicated}, invalid {out.invalid}, dropped "
        f"{out.dropped}; redelivered (same bytes, de-duplicated) {out.redelivered}, retained "
        f"copies {out.retained_copies}; chain reports {out.issues or 'none'}",
        f"   latency decision->verified: p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, max "
        f"{lat.get('max')} ms; outside the outage: p50 {steady.get('p50')} ms, p95 "
        f"{steady.get('p95')} ms, max {steady.get('max')} ms",
        f"   restart: {out.restart}, {out.events_in_outage} events decided while the broker "
        f"was down; set-up {out.setup_s} s, drained in {out.drain_s} s",
        f"   {'PASS' if out.ok else 'FAIL'}",
    ]
    lines += [f"   e.g. {e}" for e in out.examples[:10] if not out.ok]
    return "\n".join(lines)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="scripts/fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("devices", type=int)
    p.add_argument("--broker", choices=(*BROKERS, "all"), default="mosquitto")
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--events-per-minute", type=float, default=1.0)
    p.add_argument("--restart-at", type=float, default=None,
                   help="seconds into the run (default: half-way)")
    p.add_argument("--outage", type=float, default=10.0, help="seconds the broker stays down")
    p.add_argument("--drain-timeout", type=float, default=300.0)
    p.add_argument("--json", type=Path, default=None, help="write the outcome(s) here")
    p.add_argument("--work-dir", type=Path, default=None, help="parent of the temp directories")
    p.add_argument("--keep-logs", type=Path, default=None,
                   help="copy each broker's directory (config, logs, data) here")
    return p.parse_args(argv), argv


def main(argv: list[str] | None = None) -> int:
    args, raw = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.broker == "all":  # one process per broker: a clean slate each
        codes = []
        rest = [a for a in raw if a not in ("all", "--broker", "--broker=all")]
        for name in BROKERS:
            cmd = [sys.executable, __file__, *rest, "--broker", name]
            codes.append(subprocess.run(cmd, check=False).returncode)
        return max(codes)
    plan = Plan(args.devices, args.broker, args.minutes, args.events_per_minute, args.restart_at,
                args.outage, args.drain_timeout, work_dir=args.work_dir, keep_logs=args.keep_logs)
    out = run_one(plan)
    print(report(out), flush=True)
    if args.json is not None:  # with --broker all: one file per broker, named after it
        path = args.json.with_name(f"{args.json.stem}-{plan.broker}{args.json.suffix}")
        path.write_text(json.dumps(asdict(out), indent=1) + "\n", encoding="utf-8")
    return 0 if out.ok else 1


if __name__ == "__main__":
    sys.exit(main())
