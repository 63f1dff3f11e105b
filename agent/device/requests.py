"""Footage requests on the device: receive, rate-limit, record, forward sealed; record decisions.

A third party publishes a signed request (:class:`uplink.FootageRequest`) on
``doorward/<device>/request``. The device accepts requests from anyone (any requester key), but:

- each is checked (signature by the key it names, addressed to this device, well formed);
- at most ``per_key`` requests per requester key id and ``total`` in all per ``window_s``; the rest,
  and the invalid ones, are *counted*: the counts go into the ledger as ``request-received``
  entries with ``{"rate_limited": n}`` / ``{"invalid": n}`` (at most one per window) and into the
  owner's list, so a flood is seen without flooding the ledger;
- an accepted request gets a ``request-received`` ledger entry (requester key id and name, the
  window, the SHA-256 of the reason, the request id) and is stored **sealed to the owners**
  (the reason and case never sit in the clear on the device's disk), in the ``settings`` table
  (so a factory reset wipes it with the previous owner's other settings);
- it is forwarded to the owners at once as a device-signed notice whose content is sealed to them
  (:func:`notice`) on ``doorward/<device>/requests``, and listed by the signed owner command
  ``requests.list`` (result sealed to the owners, as every command result).

The owner decides with the signed owner command ``requests.decide``; the device records
``request-approved`` (with the clip ids) or ``request-denied`` and returns the device-signed
ledger entries that prove the story (the owner's pairing, the request's receipt, the decision),
which the owner hands to the requester inside the grant. Nothing here can disclose footage: the
device holds no file key and no owner key, and no command makes it send a clip to a requester.

Wiring (composition root)::

    desk = RequestDesk(db, ledger, consent_recipients, device_id, device_key)
    register_request_commands(processor, desk)
    controller.route(request_topic(device_id), desk.on_message)     # publishes the notice
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.control_plane import DeviceController, DeviceState
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.device.owner_commands import CommandProcessor, owner_recipients
from uplink import (
    Recipient,
    UplinkError,
    device_topic,
    encrypt,
    sign_jws,
    std_b64,
    verify_request,
)

log = logging.getLogger(__name__)

PREFIX = "footage_request/"
COUNTS = "footage_requests_counted"
NOTICE_TYP = "doorward-request-notice"
MAX_PENDING = 200  # stored requests; beyond it new ones are counted, not stored
MAX_LISTED = 20  # per requests.list reply (pending first, then newest): a reply must fit a
# fleet broker's message limit


def request_topic(device_id: str) -> str:
    """Where requesters publish requests."""
    return device_topic(device_id, "request")


def notice_topic(device_id: str) -> str:
    """Where the device forwards each accepted request, sealed to the owners."""
    return device_topic(device_id, "requests")


@dataclass
class Limits:
    per_key: int = 3
    total: int = 30
    window_s: float = 3600.0


class RequestDesk:
    """Receives requests and records decisions; the daemon loop's thread only."""

    def __init__(self, db: DeviceDB, ledger: Ledger, recipients: Callable[[], list[Recipient]],
                 device_id: str, device_key: Ed25519PrivateKey, *,
                 limits: Limits | None = None) -> None:
        self._db, self._ledger, self._recipients = db, ledger, recipients
        self.device_id, self._key = device_id, device_key
        self.limits = limits or Limits()
        self._seen: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._counted: dict[str, int] = {}  # "rate_limited"/"invalid" since the last flush
        self._last_flush = 0.0

    # -- receiving -----------------------------------------------------------------------------
    def receive(self, payload: bytes, now: float) -> str | None:
        """Handle one request; the sealed notice to publish, or None (invalid, limited, dup)."""
        try:
            req = verify_request(payload)
        except (UplinkError, UnicodeError) as exc:
            log.info("footage request refused: %s", exc)
            return self._count("invalid", now)
        if req.device_id != self.device_id:
            log.info("footage request %s is for %s, not this device", req.id, req.device_id)
            return self._count("invalid", now)
        if self._db.get_setting(PREFIX + req.id, "") or not self._admit(req.requester, now):
            return self._count("rate_limited", now)
        recipients = self._recipients()
        sealed = std_b64(encrypt(payload, recipients)) if recipients else None
        entry = {"request": req.id, "requester": req.requester, "name": req.name,
                 "from": req.start, "to": req.end, "reason_sha256": req.reason_hash}
        record: dict[str, Any] = {"sealed": sealed, "requester": req.requester, "state": "pending",
                  "received_at": int(now), "clips": []}
        with self._db.transaction():
            self._db.set_setting(PREFIX + req.id, json.dumps(record, sort_keys=True))
            self._ledger.append("request-received", entry, now)
        log.info("footage request %s from %s (%s) recorded and forwarded to the owners",
                 req.id, req.requester, req.name)
        if sealed is None:
            return None  # no owner yet: it waits in the list for the first one
        return sign_jws({"typ": NOTICE_TYP, "iss": self.device_id, "iat": int(now),
                         "request": req.id, "sealed": sealed}, self._key, kid=self.device_id)

    def _admit(self, requester: str, now: float) -> bool:
        horizon = now - self.limits.window_s
        mine = self._seen.setdefault(requester, deque())
        for q in (mine, self._all):
            while q and (q[0] <= horizon or q[0] > now):
                q.popleft()
        stored = len(self._db.query("SELECT 1 FROM settings WHERE key LIKE ?",
                                    (PREFIX + "%",)))
        if len(mine) >= self.limits.per_key or len(self._all) >= self.limits.total \
                or stored >= MAX_PENDING:
            return False
        mine.append(now)
        self._all.append(now)
        return True

    def _count(self, what: str, now: float) -> str | None:
        self._counted[what] = self._counted.get(what, 0) + 1
        with self._db.transaction():
            totals = self.counts()
            totals[what] = totals.get(what, 0) + 1
            self._db.set_setting(COUNTS, json.dumps(totals, sort_keys=True))
        self.flush(now)
        return None

    def flush(self, now: float, *, everything: bool = False) -> None:
        """Record counted requests in the ledger, at most once per window (or now)."""
        if not self._counted or (not everything and now < self._last_flush + 60.0
                                 and now >= self._last_flush):
            return
        self._last_flush = now
        counted, self._counted = self._counted, {}
        self._ledger.append("request-received", dict(sorted(counted.items())), now)

    def counts(self) -> dict[str, int]:
        value: dict[str, int] = json.loads(self._db.get_setting(COUNTS, "{}"))
        return value

    # -- the owner's commands --------------------------------------------------------------------
    def listing(self, now: float) -> dict[str, Any]:
        """Stored requests (newest first, sealed as stored) and the counts of the others."""
        self.flush(now, everything=True)
        rows = self._db.query("SELECT key, value FROM settings WHERE key LIKE ?", (PREFIX + "%",))
        items = [{"id": r[0][len(PREFIX):], **json.loads(r[1])} for r in rows]
        items.sort(key=lambda x: (x["state"] != "pending", -x["received_at"], x["id"]))
        return {"requests": items[:MAX_LISTED], "total": len(items), "counted": self.counts()}

    def record(self, key: str) -> dict[str, Any] | None:
        text = self._db.get_setting(PREFIX + key, "")
        value: dict[str, Any] | None = json.loads(text) if text else None
        return value

    def decide(self, by: str, args: dict[str, Any], jti: str, now: float) -> dict[str, Any]:
        rid, approve = args["request"], args["decision"] == "approve"
        record: dict[str, Any] | None = self.record(rid)
        if record is None:  # checked before; kept as a guard for the transaction
            raise ValueError(f"no request {rid}")
        clips = list(args["clips"]) if approve else []
        kind = "request-approved" if approve else "request-denied"
        entry = self._ledger.append(kind, {"by": by, "jti": jti, "request": rid,
                                           "requester": record["requester"], "clips": clips},
                                    now)
        record.update(state="approved" if approve else "denied", clips=clips)
        self._db.set_setting(PREFIX + rid, json.dumps(record, sort_keys=True))
        return {"request": rid, "state": record["state"], "ledger": self.proof(rid, by, entry.seq)}

    def proof(self, rid: str, owner: str, upto: int) -> list[dict[str, Any]]:
        """The device-signed entries a requester's bundle needs: the owner's pairing (or
        addition), the request's receipt and its decisions, up to ``upto``."""
        out = []
        for e in self._ledger.entries():
            d = e.data
            if e.seq > upto:
                break
            if (e.kind == "pairing" and d.get("owner") == owner) or \
                    (e.kind == "owner-added" and d.get("key_id") == owner) or \
                    (e.kind.startswith("request-") and d.get("request") == rid):
                out.append(e.to_json())
        return out


def _check_decide(desk: RequestDesk) -> Callable[[dict[str, Any]], str | None]:
    def check(args: dict[str, Any]) -> str | None:
        rid, decision, clips = args.get("request"), args.get("decision"), args.get("clips")
        if not isinstance(rid, str) or desk.record(rid) is None:
            return f"no request {str(rid)[:40]!r} on this device"
        if decision not in ("approve", "deny"):
            return 'decision must be "approve" or "deny"'
        if decision == "approve" and not (isinstance(clips, list) and 0 < len(clips) <= 200 and
                                          all(isinstance(c, str) and 0 < len(c) <= 64
                                              for c in clips)):
            return "approve needs clips: a list of 1-200 clip ids"
        if decision == "deny" and clips not in (None, []):
            return "deny takes no clips"
        return None
    return check


def register_request_commands(processor: CommandProcessor, desk: RequestDesk) -> None:
    """``requests.list`` and ``requests.decide`` (both owner-signed; results sealed to owners).
    A denial narrows what may leave, so no clock difference may block it."""
    processor.register("requests.list", frozenset(), lambda _a: None,
                       lambda _by, _args, _jti, now: desk.listing(now))
    processor.register("requests.decide", frozenset({"request", "decision", "clips"}),
                       _check_decide(desk), desk.decide,
                       narrows=lambda args: args.get("decision") == "deny")


def wire_requests(state: DeviceState, controller: DeviceController,
                  wall: Callable[[], float]) -> RequestDesk:
    """The desk on the device's state, its commands registered, its topic routed (app.py)."""
    desk = RequestDesk(state.db, state.ledger, lambda: owner_recipients(state.consent),
                       state.identity.device_id, state.identity.key)
    register_request_commands(state.processor, desk)
    device_id = state.identity.device_id

    def on_message(payload: bytes) -> bytes | None:
        notice = desk.receive(payload, wall())
        return notice.encode("ascii") if notice is not None else None

    controller.route(request_topic(device_id), on_message, notice_topic(device_id))
    return desk
