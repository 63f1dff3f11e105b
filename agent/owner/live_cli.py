"""``doorward owner live``: watch a device live, sealed end to end (issue 17).

:func:`watch` is the one way the owner's side runs a session (the CLI here; the owner app's
WebSocket in agent/owner/app/live_socket.py): subscribe to ``doorward/<device>/live/#`` first
(the device starts at once from its pre-roll ring, so the init message follows the command
closely), send the signed ``live.start``, then verify, open and reassemble with
uplink.LiveReceiver and hand each segment (init, then fragments) to ``on_segment``. While the
viewer wants more than the device granted, it renews the session (``live.start`` naming it)
before it runs out; when the viewer stops first (``-o`` with ``--seconds`` shorter, Ctrl-C, the
page closed) it sends ``live.stop``. A viewer that vanishes without a word costs at most the
rest of the granted duration (at most a minute: it asks for 60 s at a time).

``doorward owner live --seconds 10 -o door.mp4`` writes the init segment and the fragments as
they come: a fragmented MP4 any player opens (ffprobe, VLC, a browser); ``-o -`` writes it to
stdout (``| ffplay -``). Without ``-o`` it prints what arrives. At the end it prints the session,
bytes, fragments, losses and the latency of each fragment (device encoder entry to decrypted
here) as p50/p95; ``--json`` prints that as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from agent.errors import DoorwardError
from agent.owner.client import BrokerOptions, _Session, command
from agent.owner.keyring import OwnerKeyring, PairedDevice
from uplink import (
    InboundMessage,
    LiveFormatError,
    LiveReceiver,
    LiveSegment,
    b64u_decode,
    device_topic,
    ed25519_public_from_raw,
)

#: what the viewer asks for at a time (the device allows up to 300 s): renewed 20 s before it runs
#: out while watching, so a viewer that vanishes without live.stop costs at most a minute
MAX_GRANT_S = 60
RENEW_BEFORE_S = 20.0


def add_arguments(osub: Any, device_args: Callable[[argparse.ArgumentParser], None]) -> None:
    lp = osub.add_parser("live", help="watch the door live (sealed to you, signed by the device)")
    device_args(lp)
    lp.add_argument("--seconds", type=int, default=60, metavar="N",
                    help="how long to watch (default 60; granted a minute at a time, renewed)")
    lp.add_argument("-o", "--output", metavar="OUT.mp4", help="write the MP4 here (- : stdout)")
    lp.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap = osub.add_parser("live-allow", help="give a viewer the live right, or take it back")
    device_args(ap)
    ap.add_argument("--key-id", required=True, metavar="K", help="the viewer's key id (k-...)")
    ap.add_argument("--deny", action="store_true", help="take the right back (ends their view)")


def watch(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions, seconds: float,
          on_segment: Callable[[LiveSegment], None], *, timeout: float = 15.0,
          keep_going: Callable[[], bool] = lambda: True) -> dict[str, Any]:
    """Run one session for ``seconds`` (or until the device ends it or ``keep_going()`` is
    false); returns the summary. DoorwardError when the device refuses or sends nothing."""
    if seconds <= 0:
        raise DoorwardError("--seconds must be at least 1")
    pub = ed25519_public_from_raw(b64u_decode(device.public_key))
    topic = device_topic(device.device_id, "live", "#")
    latencies: list[float] = []
    stats: dict[str, Any] = {"bytes": 0, "fragments": 0}
    with _Session(broker, [topic], timeout) as s:
        ask = int(min(seconds, MAX_GRANT_S))
        reply = command(ring, device, broker, "live.start", {"seconds": ask, "session": None},
                        timeout)
        result = reply["result"]
        sid, until_local = str(result["session"]), time.monotonic() + ask
        rx = LiveReceiver(pub, [ring.identity], sid)
        end_at = time.monotonic() + seconds
        first_deadline = time.monotonic() + timeout
        reason = "viewer stopped"
        try:
            while keep_going() and not rx.ended:
                now = time.monotonic()
                if now >= end_at + 3.0:  # the device's end message did not come: stop it
                    break
                if end_at > until_local + 1 and until_local - now < RENEW_BEFORE_S:
                    more = int(min(end_at - now + 1, MAX_GRANT_S))
                    command(ring, device, broker, "live.start",
                            {"seconds": more, "session": sid}, timeout)
                    until_local = time.monotonic() + more
                msg = s.next(min(now + 0.5, end_at + 3.0))
                if msg is None:
                    if stats["fragments"] == 0 and time.monotonic() > first_deadline:
                        raise DoorwardError(f"{device.device_id} accepted live view but sent "
                                            f"no video within {timeout:.0f} s")
                    continue
                for seg in _feed(rx, msg):
                    if seg.kind == "end":
                        reason = f"device: {seg.reason}"
                        continue
                    if seg.kind == "chunk":
                        stats["fragments"] += 1
                        if seg.t is not None:
                            latencies.append(time.time() - seg.t)
                    stats["bytes"] += len(seg.data)
                    on_segment(seg)
        finally:  # Ctrl-C, a closed page, an error: the device stops at once, not at the end
            if not rx.ended:
                command(ring, device, broker, "live.stop", {"session": sid}, timeout)
    stats.update(session=sid, ended=reason, lost_messages=rx.lost, rejected=rx.rejected,
                 latency_p50_s=_pct(latencies, 50), latency_p95_s=_pct(latencies, 95),
                 latency_samples=len(latencies))
    return stats


def _feed(rx: LiveReceiver, msg: InboundMessage) -> list[LiveSegment]:
    try:
        return rx.feed(msg.payload)
    except LiveFormatError as e:
        raise DoorwardError(f"cannot open the live session: {e}") from e


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 4)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 4)


def allow(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions,
          args: argparse.Namespace) -> int:
    """``doorward owner live-allow``: the signed ``live.allow``; prints who may watch now."""
    reply = command(ring, device, broker, "live.allow",
                    {"key_id": args.key_id, "allow": not args.deny}, args.timeout)
    viewers = reply.get("result", {}).get("live_viewers", [])
    print(f"viewers allowed to watch live: {', '.join(viewers) or 'none'} (owners always may)")
    return 0


def run(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions,
        args: argparse.Namespace) -> int:
    out: BinaryIO | None = None
    if args.output == "-":
        out = sys.stdout.buffer
    elif args.output:
        out = open(args.output, "wb")  # noqa: SIM115 (closed below, also on errors)

    def write(seg: LiveSegment) -> None:
        if out is not None:
            out.write(seg.data)
            out.flush()

    try:
        stats = watch(ring, device, broker, args.seconds, write, timeout=args.timeout)
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
    text = json.dumps(stats) if args.json else (
        f"live session {stats['session']}: {stats['fragments']} fragments, {stats['bytes']} "
        f"bytes, {stats['lost_messages']} messages lost, latency p50 {stats['latency_p50_s']} s "
        f"p95 {stats['latency_p95_s']} s ({stats['ended']})")
    print(text, file=sys.stderr if args.output == "-" else sys.stdout)
    return 0


__all__ = ["add_arguments", "allow", "run", "watch"]
