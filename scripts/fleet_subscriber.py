"""The fleet's receiving end, in its own process: verifies every device message (signature, chain,
sealed body opened with the device's owner identity) and counts what arrived.

Usage (``scripts/fleet.py`` does this)::

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    counter = ctx.Value("q", 0)
    proc = ctx.Process(target=run, args=(SubscriberArgs(url, devices), child, counter))
    proc.start(); parent.recv()          # "subscribed": the persistent session is in force
    ... counter.value: unique messages verified so far ...
    parent.send("finish"); result = parent.recv()     # SubscriberResult

One MqttClient (the real adapter) with a persistent session on ``doorward/+/events`` and
``doorward/+/status``; its callback only enqueues (with the receipt time), and one thread verifies.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized

from uplink.agekeys import Identity
from uplink.chain_check import ChainChecker
from uplink.messages import MessageError, verify_message
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

TOPICS = ("doorward/+/events", "doorward/+/status")


@dataclass(frozen=True)
class SubscriberArgs:
    url: str
    devices: dict[str, tuple[bytes, str]]  # device id -> (Ed25519 public key, owner identity)
    client_id: str = "fleet-subscriber"


@dataclass
class SubscriberResult:
    """``receipts``: (device, seq) -> wall time the message was verified (first copy only)."""

    receipts: dict[tuple[str, int], float] = field(default_factory=dict)
    typs: dict[tuple[str, int], str] = field(default_factory=dict)
    redelivered: int = 0  # same bytes again under a seq already seen (removed by de-duplication)
    retained_copies: int = 0  # a retained status the broker sent again on (re)subscribe
    conflicting: int = 0  # DIFFERENT bytes under a seq already seen: a real duplicate
    invalid: int = 0  # failed verification (signature, claims, seal), or an unknown device
    not_messages: int = 0  # the will "offline" and other non-JWS payloads
    issues: Counter[str] = field(default_factory=Counter)  # ChainChecker issue kinds
    examples: list[str] = field(default_factory=list)
    protocol: str = ""


class _Verifier:
    def __init__(self, args: SubscriberArgs) -> None:
        self.keys = {dev: key for dev, (key, _) in args.devices.items()}
        self.owners = {dev: Identity.parse(ident) for dev, (_, ident) in args.devices.items()}
        self.checker = ChainChecker()
        self.hashes: dict[tuple[str, int], str] = {}
        self.result = SubscriberResult()

    def note(self, text: str) -> None:
        if len(self.result.examples) < 20:
            self.result.examples.append(text)

    def feed(self, msg: InboundMessage) -> bool:
        """Verify one message; True if it is a new (device, seq)."""
        r = self.result
        parts = msg.topic.split("/")
        dev = parts[1] if len(parts) == 3 else ""
        if msg.payload.count(b".") != 2:
            r.not_messages += 1
            return False
        if dev not in self.keys:
            r.invalid += 1
            self.note(f"unknown device on {msg.topic}")
            return False
        try:
            v = verify_message(msg.payload, self.keys[dev], identities=[self.owners[dev]])
        except MessageError as e:
            r.invalid += 1
            self.note(f"{msg.topic}: {e}")
            return False
        if v.seq is None:  # the retained status: signed, unchained, counts nothing
            r.not_messages += 1
            return False
        key = (v.iss, v.seq)
        seen = self.hashes.get(key)
        if seen is not None:
            if seen != v.hash_hex:
                r.conflicting += 1
                self.note(f"{key}: different content under the same seq")
            elif msg.retain:
                r.retained_copies += 1
            else:
                r.redelivered += 1
            return False
        for issue in self.checker.feed(v, retained=msg.retain):
            r.issues[issue.kind] += 1
            self.note(f"{issue.kind} {issue.device_id} seq {issue.seq} {issue.detail}")
        self.hashes[key] = v.hash_hex
        r.receipts[key] = time.time()
        r.typs[key] = v.typ
        return True


def run(args: SubscriberArgs, conn: Connection, counter: Synchronized[int]) -> None:
    """The process body: subscribe, report "subscribed", verify until told "finish"."""
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    # resume_session: clean start off from the first connection, as a subscriber that must miss
    # nothing across a broker restart needs (Mosquitto 2.0.11 does not keep a session begun with
    # clean start on over its restart: RELIABILITY.md, finding 2)
    client = MqttClient(MqttSettings(url=args.url, client_id=args.client_id, resume_session=True,
                                     reconnect_max_s=2, max_inflight=100), on_message=inbox.put)
    for topic in TOPICS:
        client.subscribe(topic)
    client.start()
    if not client.wait_connected(120):
        conn.send(f"subscriber could not connect to {args.url}: {client.last_error}")
        client.stop()
        return
    conn.send("subscribed")
    verifier = _Verifier(args)
    stop = threading.Event()

    def verify_loop() -> None:
        while not stop.is_set() or not inbox.empty():
            try:
                msg = inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if verifier.feed(msg):
                with counter.get_lock():
                    counter.value += 1

    thread = threading.Thread(target=verify_loop, name="verify", daemon=True)
    thread.start()
    while conn.recv() != "finish":
        pass
    client.stop()
    stop.set()
    thread.join()
    verifier.result.protocol = client.protocol
    conn.send(verifier.result)
