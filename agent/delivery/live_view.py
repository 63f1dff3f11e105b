"""Live view on the owner's request (issue 17): sessions, sealing, publishing, the ledger.

A session starts only from a signed ``live.start`` that passed every check of the
CommandProcessor (signature, audience, topic, time, jti, counter); that command is the session's
consent: live view is the requester's own act, so no upload scope is asked. Members with role
``owner`` may start one, and viewers an owner allowed (``live.allow``: the ``live`` right, kept in
the ``live_viewers`` setting, each change in the ledger).

While a session runs, :meth:`LiveViews.on_packets` (a ``Recorder.packet_taps`` entry, loop thread)
muxes the encoder's packets (agent/recording/live_tap.py), seals and signs them for the requester
alone (uplink.LiveSealer) and publishes them with QoS 0 on ``doorward/<device>/live/<session>``:
a lost fragment costs a moment of picture, never a retry that would pile up behind it. Publishing
only queues (the MQTT client's own thread sends), so a slow broker cannot slow the frame loop;
any error ends the session, never the recording.

A session ends by ``live.stop``, by running out (``seconds``, at most ``MAX_SECONDS``; the viewer
renews it with ``live.start`` naming the session while watching, so a viewer that disappears
stops costing anything within one renewal period), or at shutdown. Its end is the ``end`` message
and a ``live-view`` ledger entry: who (key id and jti), from, to, bytes, why it ended.

Wiring (agent/app.py)::

    views = LiveViews(mqtt, device_id, device_key, ledger, consent.owner, recorder, wall=clock.wall)
    recorder.packet_taps.append(views.on_packets)
    register_live_commands(processor, views, db, ledger, consent)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.consent import ConsentStore, Owner
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.device.owner_commands import CommandProcessor
from agent.errors import DoorwardError
from agent.recording.encoder import EncodedPacket, StreamInfo
from agent.recording.live_tap import LiveMuxer
from agent.recording.recorder import PrerollRing
from uplink import KEY_ID_RE, LiveSealer, MqttPort, Recipient, UplinkError, b64u, device_topic

log = logging.getLogger(__name__)

MAX_SECONDS = 300  # one request; renewals extend it while someone watches
MAX_SESSIONS = 3  # each costs a muxer and its bandwidth; a household rarely needs more
LIVE_TOPIC = "live"
LIVE_VIEWERS_SETTING = "live_viewers"


class Source(Protocol):
    """What a session needs of the Recorder: the stream and the ring to start from."""

    @property
    def stream_info(self) -> StreamInfo: ...

    ring: PrerollRing

    def wall_time(self, t: float) -> float: ...


@dataclass
class _Session:
    id: str
    by: str
    jti: str
    started: float
    until: float
    sealer: LiveSealer
    mux: LiveMuxer
    topic: str
    inited: bool = False
    fragments: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class LiveViews:
    """The device's live sessions; one thread (the daemon loop) calls every method."""

    def __init__(self, mqtt: MqttPort, device_id: str, device_key: Ed25519PrivateKey,
                 ledger: Ledger, member: Callable[[str], Owner | None], source: Source, *,
                 wall: Callable[[], float]) -> None:
        self._mqtt, self.device_id, self._key = mqtt, device_id, device_key
        self._ledger, self._member, self._source, self._wall = ledger, member, source, wall
        self.sessions: dict[str, _Session] = {}
        self.started = 0
        self.failed = 0

    def start(self, by: str, jti: str, seconds: int, now: float) -> dict[str, Any]:
        """A new session for member ``by`` (already verified by the processor)."""
        member = self._member(by)
        if member is None:  # removed between the check and now: cannot happen on one thread
            raise LiveViewError(f"{by} is not a member")
        if len(self.sessions) >= MAX_SESSIONS:
            raise LiveViewError(f"{MAX_SESSIONS} live sessions already run: stop one first")
        sid = b64u(os.urandom(12))
        until = now + seconds
        sealer = LiveSealer(self.device_id, sid, jti, Recipient.parse(member.recipient), self._key)
        s = _Session(sid, by, jti, now, until, sealer, LiveMuxer(self._source.stream_info),
                     device_topic(self.device_id, LIVE_TOPIC, sid))
        self.sessions[sid] = s
        self.started += 1
        ring = self._source.ring  # start at once from the ring's last keyframe
        packets = ring.packets_from(ring.last_t) if ring.last_t is not None else []
        self._send(s, packets, [self._source.wall_time(p.t) for p in packets])
        log.info("live session %s for %s started (%d s, %d frames from the ring)", sid, by,
                 seconds, len(packets))
        return {"session": sid, "until": int(until), "topic": s.topic}

    def renew(self, by: str, sid: str, seconds: int, now: float) -> dict[str, Any]:
        s = self.sessions.get(sid)
        if s is None or s.by != by:
            raise LiveViewError(f"no live session {sid} of {by} runs (it may have ended)")
        s.until = now + seconds
        return {"session": sid, "until": int(s.until), "topic": s.topic}

    def stop(self, by: str, sid: str, now: float) -> dict[str, Any]:
        s = self.sessions.get(sid)
        if s is None:
            return {"session": sid, "stopped": False}
        return {"session": sid, "stopped": True, **self._end(s, f"stopped by {by}", now)}

    def on_packets(self, packets: list[EncodedPacket], wall: float) -> None:
        """The Recorder's tap: feed every session, end the ones that ran out."""
        if not self.sessions:
            return
        now = self._wall()
        for s in list(self.sessions.values()):
            if now >= s.until:
                self._end(s, "duration", now)
            elif packets:
                self._send(s, packets, [wall] * len(packets))

    def close(self) -> None:
        """At shutdown: end every session (its end message and ledger entry)."""
        now = self._wall()
        for s in list(self.sessions.values()):
            self._end(s, "shutdown", now)

    def _send(self, s: _Session, packets: list[EncodedPacket], walls: list[float]) -> None:
        try:
            frags = s.mux.feed(packets, walls)
            if not s.inited and s.mux.init_segment is not None:
                self._publish(s, s.sealer.init(s.mux.init_segment, s.mux.codec or "",
                                               int(s.until)))
                s.inited = True
            for f in frags:
                for payload in s.sealer.fragment(f.data, key=f.key, t=f.wall):
                    self._publish(s, payload)
                s.fragments += 1
        except (UplinkError, OSError, ValueError) as e:  # never the recording's problem
            self.failed += 1
            log.error("live session %s failed: %s", s.id, e)
            self._end(s, f"failed: {e}", self._wall())

    def _publish(self, s: _Session, payload: bytes) -> None:
        self._mqtt.publish(s.topic, payload, qos=0)

    def _end(self, s: _Session, reason: str, now: float) -> dict[str, Any]:
        self.sessions.pop(s.id, None)
        s.mux.close()
        try:
            self._publish(s, s.sealer.end(reason))
        except UplinkError as e:
            log.warning("live session %s: end message not sent: %s", s.id, e)
        info = {"by": s.by, "jti": s.jti, "session": s.id, "from": int(s.started),
                "to": int(now), "bytes": s.sealer.bytes, "fragments": s.fragments,
                "reason": reason[:200]}
        self._ledger.append("live-view", info, now)
        log.info("live session %s ended (%s): %d fragments, %d bytes", s.id, reason,
                 s.fragments, s.sealer.bytes)
        return info


class LiveViewError(DoorwardError):
    """A live command that cannot be carried out (the reply names why)."""


def _check_start(args: dict[str, Any]) -> str | None:
    seconds, session = args.get("seconds"), args.get("session")
    if not (type(seconds) is int and 1 <= seconds <= MAX_SECONDS):
        return f"seconds must be an integer 1..{MAX_SECONDS}"
    if session is not None and not (isinstance(session, str) and 0 < len(session) <= 64):
        return "session must be a session id or null"
    return None


def _check_stop(args: dict[str, Any]) -> str | None:
    session = args.get("session")
    return None if isinstance(session, str) and 0 < len(session) <= 64 else \
        "session must be a session id"


def _check_allow(args: dict[str, Any]) -> str | None:
    key_id, allow = args.get("key_id"), args.get("allow")
    if not (isinstance(key_id, str) and KEY_ID_RE.fullmatch(key_id)):
        return "key_id must be a member's key id (k-...)"
    return None if isinstance(allow, bool) else "allow must be true or false"


def live_viewers(db: DeviceDB) -> set[str]:
    """Key ids of the viewers an owner allowed to watch live (the ``live`` right)."""
    return set(json.loads(db.get_setting(LIVE_VIEWERS_SETTING, "[]")))


def register_live_commands(processor: CommandProcessor, views: LiveViews, db: DeviceDB,
                           ledger: Ledger, consent: ConsentStore) -> None:
    """``live.start {seconds, session}`` (session null: a new one; else a renewal),
    ``live.stop {session}`` and, owners only, ``live.allow {key_id, allow}``: the ``live`` right
    of a viewer (owners always have it). ``live.stop`` and a withdrawn right narrow: no clock
    difference may keep them from taking effect; withdrawing ends the viewer's sessions at once.
    A viewer allowed live view gets the result of their live commands sealed to them too."""
    def start(by: str, args: dict[str, Any], jti: str, now: float) -> dict[str, Any]:
        if args["session"] is not None:
            return views.renew(by, args["session"], args["seconds"], now)
        return views.start(by, jti, args["seconds"], now)

    def stop(by: str, args: dict[str, Any], _jti: str, now: float) -> dict[str, Any]:
        return views.stop(by, args["session"], now)

    def allow(by: str, args: dict[str, Any], jti: str, now: float) -> dict[str, Any]:
        member = consent.owner(args["key_id"])
        if member is None or member.role != "viewer":
            raise LiveViewError(f"{args['key_id']} is not a viewer of this device (owners "
                                "always may watch live)")
        allowed = live_viewers(db)
        allowed = allowed | {member.key_id} if args["allow"] else allowed - {member.key_id}
        db.set_setting(LIVE_VIEWERS_SETTING, json.dumps(sorted(allowed)))
        ledger.append("setting", {"by": by, "jti": jti, LIVE_VIEWERS_SETTING: sorted(allowed)},
                      now)
        if not args["allow"]:
            for s in [s for s in views.sessions.values() if s.by == member.key_id]:
                views.stop(by, s.id, now)
        return {LIVE_VIEWERS_SETTING: sorted(allowed)}

    def may(key_id: str) -> bool:
        return key_id in live_viewers(db)

    processor.register("live.start", frozenset({"seconds", "session"}), _check_start, start,
                       viewer_may=may)
    processor.register("live.stop", frozenset({"session"}), _check_stop, stop,
                       narrows=lambda _args: True, viewer_may=may)
    processor.register("live.allow", frozenset({"key_id", "allow"}), _check_allow, allow,
                       narrows=lambda args: args.get("allow") is False)


__all__ = ["MAX_SECONDS", "LiveViewError", "LiveViews", "register_live_commands"]
