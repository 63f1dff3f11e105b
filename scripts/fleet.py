"""Fleet simulator (``scripts/fleet N``): N devices in one process, one private broker, one restart.

    scripts/fleet 1000                                   # Mosquitto, 4 min, 1 event/min each
    scripts/fleet 1000 --broker all                      # Mosquitto, RabbitMQ, NATS in turn
    scripts/fleet 20 --minutes 0.5 --events-per-minute 6 --restart-at 12 --outage 3

Each device is built from the daemon's modules (see scripts/fleet_device.py): events are signed
with the device's Ed25519 key into its chain, sealed to its owner's age identity, queued in its
own durable outbox (one SQLite file per device) and sent by its own OutboxWorker lane through its
own MqttClient (paho 2.x, one network thread per client). A subscriber in another process
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
import heapq
import json
import logging
import multiprocessing
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.fleet_brokers import BROKERS, Broker, make_broker  # noqa: E402
from scripts.fleet_device import SimDevice, provision  # noqa: E402
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
    """One run: devices, broker, subscriber, the event schedule and the restart."""

    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan, self.work = plan, work
        self.broker: Broker = make_broker(plan.broker, work / "broker")
        self.devices: list[SimDevice] = []
        self.owners: dict[str, tuple[bytes, str]] = {}
        self.decisions: dict[tuple[str, int], float] = {}
        self.events = 0
        self.restart: dict[str, float] = {}
        self.t0 = 0.0
        self.heads: dict[str, int] = {}

    def say(self, text: str) -> None:
        print(f"[{self.plan.broker} {time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    # ---- setup -----------------------------------------------------------------------------
    def setup(self) -> None:
        self.say(f"provisioning {self.plan.devices} devices under {self.work}")
        now = time.time()
        for n in range(self.plan.devices):
            identity, owner = provision(self.work / f"dev{n:05d}", now)
            self.owners[identity.device_id] = (identity.public_raw, str(owner))
            if (n + 1) % 250 == 0:
                self.say(f"provisioned {n + 1}")
        self.broker.start()
        self.say(f"{self.plan.broker} listening at {self.broker.url}")

    def start_devices(self, deadline_s: float = 300.0) -> None:
        for n in range(self.plan.devices):
            dev = SimDevice.open(self.work / f"dev{n:05d}", self.broker.url,
                                 username=self.plan.broker != "rabbitmq")
            dev.start()
            self.devices.append(dev)
        end = time.monotonic() + deadline_s
        last = 0.0
        while (up := self.connected()) < len(self.devices):
            self.poll_all()
            if time.monotonic() > end:
                raise TimeoutError(f"only {up} of {len(self.devices)} devices connected "
                                   f"within {deadline_s:.0f} s")
            if time.monotonic() - last > self.plan.progress_s:
                last = time.monotonic()
                self.say(f"connecting: {up}/{len(self.devices)}")
            time.sleep(0.2)  # polling the clients' state; each has its own events queue
        self.poll_all()
        self.say(f"all {len(self.devices)} devices connected "
                 f"(MQTT {self.devices[0].client.protocol})")

    def connected(self) -> int:
        return sum(d.client.is_connected for d in self.devices)

    def poll_all(self) -> None:
        for dev in self.devices:
            dev.poll()

    def pending(self) -> int:
        return sum(sum(d.outbox.pending().values()) for d in self.devices)

    # ---- the run ---------------------------------------------------------------------------
    def schedule(self, start: float) -> list[tuple[float, int, int]]:
        period = 60.0 / self.plan.events_per_minute
        rng = random.Random(7)
        heap = [(start + rng.uniform(0, period), i, 1) for i in range(len(self.devices))]
        heapq.heapify(heap)
        return heap

    def restarter(self) -> None:
        began = time.monotonic()
        self.say(f"stopping {self.plan.broker} (outage {self.plan.outage_s:.0f} s)")
        self.broker.stop()
        self.restart["stopped_at_s"] = time.monotonic() - self.t0
        self.restart["stop_took_s"] = time.monotonic() - began
        self.restart["wall_stop"] = time.time()
        time.sleep(self.plan.outage_s)  # the outage itself: nothing to wait for
        began = time.monotonic()
        self.broker.start()
        self.restart["start_took_s"] = time.monotonic() - began
        self.restart["listening_at_s"] = time.monotonic() - self.t0
        self.say(f"{self.plan.broker} listening again after "
                 f"{self.restart['start_took_s']:.1f} s of start-up")

    def run_events(self, counter: Any) -> None:
        start = time.monotonic()
        end = start + self.plan.duration_s
        period = 60.0 / self.plan.events_per_minute
        heap = self.schedule(start)
        restart = threading.Thread(target=self.restarter, name="restart", daemon=True)
        restart_due, last, reconnect_seen = start + self.plan.restart_s, start, False
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
            if now >= restart_due and not restart.is_alive() and not self.restart:
                restart.start()
            if "listening_at_s" in self.restart and not reconnect_seen and \
                    self.connected() == len(self.devices):
                reconnect_seen = True
                self.restart["all_reconnected_at_s"] = time.monotonic() - self.t0
                self.restart["wall_reconnected"] = time.time()
                self.say("all devices reconnected")
            if now - last >= self.plan.progress_s:
                last = now
                self.progress(counter)
            wait = min(0.25, (heap[0][0] - time.monotonic()) if heap else 0.25)
            time.sleep(max(0.0, wait))  # until the next event is due or the next poll
        restart.join()

    def progress(self, counter: Any) -> None:
        state = "down" if "stopped_at_s" in self.restart and \
            "listening_at_s" not in self.restart else "up"
        self.say(f"events {self.events}, verified {counter.value}, connected "
                 f"{self.connected()}/{len(self.devices)}, queued {self.pending()}, broker {state}")

    def drain(self, counter: Any) -> tuple[bool, float]:
        began = time.monotonic()
        last = began
        while time.monotonic() - began < self.plan.drain_timeout_s:
            self.poll_all()
            owed = sum(d.outbox.chain_head()[0] for d in self.devices)
            if counter.value >= owed and self.pending() == 0:
                return True, time.monotonic() - began
            if time.monotonic() - last >= self.plan.progress_s:
                last = time.monotonic()
                self.say(f"draining: verified {counter.value} of {owed}")
                if "all_reconnected_at_s" not in self.restart and \
                        self.connected() == len(self.devices):
                    self.restart["all_reconnected_at_s"] = time.monotonic() - self.t0
                    self.restart["wall_reconnected"] = time.time()
            time.sleep(0.5)  # polling counts owned by other threads and the subscriber
        return False, time.monotonic() - began

    def shutdown(self) -> int:
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(lambda d: d.stop(), self.devices))
        dropped = sum(len(d.outbox.items(("dropped",))) for d in self.devices)
        heads = {d.device_id: d.outbox.chain_head()[0] for d in self.devices}
        for dev in self.devices:
            dev.close()
        self.heads = heads
        return dropped


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
        fleet.t0 = time.monotonic()
        mp = multiprocessing.get_context("spawn")
        parent, child = mp.Pipe()
        counter = mp.Value("q", 0)
        sub = None
        try:
            fleet.setup()
            sub = mp.Process(target=run, args=(SubscriberArgs(fleet.broker.url, fleet.owners),
                                               child, counter), name="fleet-subscriber")
            sub.start()
            if (hello := parent.recv()) != "subscribed":
                raise RuntimeError(str(hello))
            fleet.start_devices()
            out.setup_s = round(time.monotonic() - fleet.t0, 1)
            fleet.say(f"running {plan.minutes:g} min, {plan.events_per_minute:g} event(s)/min "
                      f"per device, broker restart at {plan.restart_s:.0f} s")
            fleet.run_events(counter)
            out.events = fleet.events
            out.drained, drain_s = fleet.drain(counter)
            out.drain_s = round(drain_s, 1)
            out.dropped = fleet.shutdown()
            parent.send("finish")
            tally(fleet, parent.recv(), out)
        finally:
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
        f"   restart: {out.restart}; set-up {out.setup_s} s, drained in {out.drain_s} s",
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
        args.json.with_name(f"{args.json.stem}-{plan.broker}{args.json.suffix}").write_text(json.dumps(asdict(out), indent=1) + "\n", encoding="utf-8")
    return 0 if out.ok else 1


if __name__ == "__main__":
    sys.exit(main())
