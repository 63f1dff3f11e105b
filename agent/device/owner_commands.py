"""Owner commands on ``doorward/<device_id>/cmd``: verify, record the replay state, act, answer.

Wiring (daemon main loop; the MQTT callback only enqueues ``(payload, topic)``):

    proc = CommandProcessor(db, consent, ledger, device_id, device_key)
    now = time.time()
    resp = proc.handle(payload, topic, now)
    mqtt.publish(reply_topic(device_id), proc.respond(resp, now))   # sealed to the owners
    proc.flush_rejections(time.time())      # now and then: records suppressed-rejection counts

Checks, in this order; the first failure rejects with ``Response.reason`` (one of ``REASONS``)
and changes nothing but a rate-limited ``command-rejected`` ledger entry:
size (8 KiB) / ASCII / well-formed JWS; header ``alg`` EdDSA and only alg/kid/typ; ``iss`` a
known key of role owner (viewers may not command; ``kid``, if present, equals ``iss``);
signature with that key; ``aud`` is this device; ``topic`` is the topic it came on; ``iat``/``exp``
ints, ``exp > now``, ``0 <= exp - iat <= 600``, ``iat <= now + 300``; ``jti`` 8..64 of
``[A-Za-z0-9._~-]`` not seen before; ``ctr`` greater than the owner's stored counter; no
unknown claims; ``cmd`` known; ``args`` exactly its fields with valid values.

Commands that only narrow consent (``consent.revoke``, ``owner.remove``; registered ones that
say so, e.g. ``clips.forget``) skip ``exp > now`` and ``iat <= now +
300`` and nothing else: a clock difference between the owner and the device must never keep a
revocation from taking effect, and the counter and jti still stop replays. Their jti is remembered
for at least ``MAX_LIFETIME_S`` of device time whatever their ``exp`` says.

Replies (:meth:`CommandProcessor.respond`, :func:`uplink.replies.sign_reply`): readable are only
the jti, accepted or refused and the refusal code, plus ``iat``, the device's clock (the owner
tool names the difference when a command is refused as ``expired`` or ``from-future``). The
result and the refusal's detail are sealed to the members with role owner: viewers cannot command,
and the results are consent, members and the ledger.

Replay defence: the Pi may have no RTC and NTP is unauthenticated, so ``now`` can be wrong in
either direction. The per-owner counter, committed durably *before* the command acts, is the
defence that holds regardless of the clock; expiry and the jti cache (kept until each token's
``exp``) are secondary. If acting fails, the counter stays advanced: the owner re-signs with a
new counter instead of the device ever running the same token twice.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.consent import ROLES, ConsentError, ConsentStore, Owner, check_scopes, expiry_for
from agent.device.database import DeviceDB
from agent.device.ledger import Entry, Ledger, RejectionLimiter
from agent.errors import DoorwardError
from uplink import (
    JWS_ALG,
    KEY_ID_RE,
    MAX_MESSAGE_BYTES,
    ForgetResultBody,
    JwsError,
    MessageTooLargeError,
    Recipient,
    Reply,
    UplinkError,
    b64u_decode,
    device_topic,
    ed25519_public_from_raw,
    is_int,
    key_id_for,
    peek_jws,
    sign_reply,
    verify_jws,
)

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 8192
MAX_LIFETIME_S = 600
MAX_SKEW_S = 300
MAX_CTR = 2**53 - 1  # exact in every JSON implementation, fits SQLite's INTEGER
CLAIMS = frozenset({"iss", "aud", "iat", "exp", "jti", "ctr", "cmd", "topic", "args"})
HEADER_FIELDS = frozenset({"alg", "kid", "typ"})
ARGS: dict[str, frozenset[str]] = {
    "consent.grant": frozenset({"scopes", "days", "until_revoked"}),
    "consent.revoke": frozenset({"scopes"}),
    "consent.show": frozenset(),
    "owner.add": frozenset({"public_key", "recipient", "role"}),
    "owner.remove": frozenset({"key_id"}),
    "ledger.get": frozenset(),
}
REASONS = (
    "oversized", "not-ascii", "malformed", "bad-alg", "bad-header", "unknown-owner", "not-owner",
    "bad-signature", "wrong-audience", "wrong-topic", "bad-time", "expired", "bad-lifetime",
    "from-future", "bad-jti", "replayed-jti", "bad-counter", "stale-counter", "unknown-field",
    "missing-field", "unknown-command", "bad-args", "failed",
)  # fmt: skip
_JTI = re.compile(r"[A-Za-z0-9._~-]{8,64}")


def _always(_args: dict[str, Any]) -> bool:
    return True


# Commands that only narrow consent, with the test of their args (see the module docstring).
NARROWING: dict[str, Callable[[dict[str, Any]], bool]] = {
    "consent.revoke": _always, "owner.remove": _always,
}


@dataclass(frozen=True)
class Response:
    """The outcome of one command; ``reason`` is a code from ``REASONS`` when not ``ok``.
    Published only as a reply (:func:`sealed_reply`): result and detail sealed to the owners."""

    jti: str | None
    ok: bool
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    #: a viewer allowed this command (live view, issue 17): the result is sealed to them as well
    also_to: str | None = None


def reply_topic(device_id: str) -> str:
    """Where the device answers owner commands."""
    return device_topic(device_id, "resp")


def owner_recipients(consent: ConsentStore) -> list[Recipient]:
    """The age recipients replies are sealed to: members with role owner."""
    owners = dict.fromkeys(o.recipient for o in consent.owners() if o.role == "owner")
    return [Recipient.parse(r) for r in owners]


def sealed_reply(response: Response, consent: ConsentStore, device_key: Ed25519PrivateKey,
                 now: float, *, max_bytes: int | None = None) -> str:
    """``response`` as the reply JWS: code readable, result and detail sealed to the owners.
    Never raises for what the result holds: without an owner (an unpaired device refusing a
    stranger) the code alone is sent; a result too large for one reply becomes a ``failed``
    refusal that says so (``max_bytes``: the limit, default the reply limit)."""
    if response.jti is None:
        raise ValueError("a command without a valid jti gets no reply")
    recipients = owner_recipients(consent)
    if response.also_to is not None and recipients:  # live view: the viewer who asked
        recipients.append(Recipient.parse(response.also_to))
    result, detail = (response.result, response.detail[:1024]) if recipients else ({}, "")
    reply = Reply(response.jti, response.ok, response.reason, result, detail)
    limit = {} if max_bytes is None else {"max_bytes": max_bytes}
    try:
        return sign_reply(reply, device_key, now=now, recipients=recipients, **limit)
    except MessageTooLargeError as exc:
        if max_bytes is not None:
            raise  # the caller splits
        log.error("the reply to %s is too large to send: %s", response.jti, exc)
        return sign_reply(Reply(response.jti, False, "failed", {}, str(exc)[:1024]),
                          device_key, now=now, recipients=recipients)


def bucket_replies(result: ForgetResultBody, consent: ConsentStore,
                   device_key: Ed25519PrivateKey, now: float) -> list[str]:
    """The further replies to a forget (``result.request`` is its jti): what the uploads lane
    deleted in the bucket, ``stage: "bucket"``, sealed to the owners like every result, split so
    each fits a fleet broker's 128 KB; the last one says ``"last": true``."""
    items = ([("clips", c) for c in result.clips] + [("objects", o) for o in result.objects]
             + [("failed", f) for f in result.failed])

    def part(chunk: list[tuple[str, str]], last: bool) -> list[str]:
        body = ForgetResultBody(result.request, **{
            name: tuple(v for n, v in chunk if n == name)
            for name in ("clips", "objects", "failed")})
        response = Response(result.request, True, None,
                            {"stage": "bucket", **body.to_json(), "last": last})
        try:
            return [sealed_reply(response, consent, device_key, now, max_bytes=MAX_MESSAGE_BYTES)]
        except MessageTooLargeError:
            if len(chunk) <= 1:
                raise
            half = len(chunk) // 2
            return part(chunk[:half], False) + part(chunk[half:], last)

    return part(items, True)


class _Reject(Exception):
    """Internal: one failed check; turned into a rejected Response, never leaves this module."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Command:
    owner: Owner
    jti: str
    ctr: int
    exp: int
    cmd: str
    args: dict[str, Any]


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _alg_of(token: str) -> object:
    """The header's alg if the first part decodes to a JSON object, else None."""
    try:
        obj = json.loads(b64u_decode(token.split(".", 1)[0]))
    except (ValueError, RecursionError):
        return None
    return obj.get("alg") if isinstance(obj, dict) else None


def _parse(token: object) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if not isinstance(token, str | bytes):
        raise _Reject("malformed", f"token is a {type(token).__name__}, not text")
    size = len(token) if isinstance(token, bytes) else len(token.encode("utf-8", "surrogatepass"))
    if size > MAX_TOKEN_BYTES:
        raise _Reject("oversized", f"{size} bytes, the limit is {MAX_TOKEN_BYTES}")
    if not token.isascii():
        raise _Reject("not-ascii", "a JWS compact token is ASCII")
    text = token.decode("ascii") if isinstance(token, bytes) else token
    try:
        header, claims = peek_jws(text, max_bytes=MAX_TOKEN_BYTES)
    except JwsError as e:
        alg = _alg_of(text)
        if alg is not None and alg != JWS_ALG:
            raise _Reject("bad-alg", f"alg {_short(alg)} refused, only EdDSA") from None
        raise _Reject("malformed", str(e)) from None
    return text, header, claims


def _check_header(header: dict[str, Any], claims: dict[str, Any]) -> None:
    if header.get("alg") != JWS_ALG:  # peek_jws already refuses it; pinned here too
        raise _Reject("bad-alg", f"alg {_short(header.get('alg'))} refused, only EdDSA")
    extra = set(header) - HEADER_FIELDS
    if extra:
        raise _Reject("bad-header", f"unknown header fields {sorted(extra)[:5]}")
    if header.get("typ", "JWT") != "JWT" or header.get("kid", claims.get("iss")) != claims.get(
        "iss"
    ):
        raise _Reject("bad-header", "typ must be JWT and kid, if present, must equal iss")


def _check_time(claims: dict[str, Any], now: float, *, narrowing: bool) -> None:
    """The token's time claims; a narrowing command is held to their form and lifetime only."""
    iat, exp = claims.get("iat"), claims.get("exp")
    if not (is_int(iat) and is_int(exp)):
        raise _Reject("bad-time", "iat and exp must be integer unix seconds")
    expired = exp <= now
    if expired and not narrowing:
        raise _Reject("expired", f"exp {exp} is not after the device clock {int(now)}")
    if not 0 <= exp - iat <= MAX_LIFETIME_S:
        raise _Reject("bad-lifetime", f"exp - iat = {exp - iat}, allowed 0..{MAX_LIFETIME_S} s")
    future = iat > now + MAX_SKEW_S
    if future and not narrowing:
        raise _Reject("from-future", f"iat {iat} is ahead of the device clock {int(now)}")
    if expired or future:
        log.info("a command that only narrows consent is accepted outside the clock window: the "
                 "owner's clock is about %d s %s the device's", abs(iat - int(now)),
                 "ahead of" if future else "behind")


def _check_fields(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra, missing = set(obj) - allowed, allowed - set(obj)
    if extra:
        raise _Reject("unknown-field", f"{where}: unknown fields {sorted(extra)[:5]}")
    if missing:
        raise _Reject("missing-field", f"{where}: missing fields {sorted(missing)}")


def _scopes(value: object) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
        raise _Reject("bad-args", "scopes must be a list of strings")
    try:
        return list(check_scopes(value))
    except ConsentError as e:
        raise _Reject("bad-args", str(e)) from None


def _check_args(cmd: str, args: dict[str, Any], consent: ConsentStore) -> None:
    """Validate values (fields are already exact); raises _Reject("bad-args", ...)."""
    if cmd == "consent.grant":
        _scopes(args["scopes"])
        days, until = args["days"], args["until_revoked"]
        if not isinstance(until, bool) or not (days is None or is_int(days)):
            raise _Reject("bad-args", "days must be an integer or null, until_revoked a bool")
        try:
            expiry_for(days, until, 0.0)
        except ConsentError as e:
            raise _Reject("bad-args", str(e)) from None
    elif cmd == "consent.revoke":
        if args["scopes"] is not None:
            _scopes(args["scopes"])
    elif cmd == "owner.add":
        pub, recipient, role = args["public_key"], args["recipient"], args["role"]
        if role not in ROLES or not isinstance(pub, str) or not isinstance(recipient, str):
            raise _Reject("bad-args", f"public_key, recipient: strings; role: one of {ROLES}")
        try:
            raw = b64u_decode(pub)
            ed25519_public_from_raw(raw)
            Recipient.parse(recipient)
        except (ValueError, UplinkError) as e:
            raise _Reject("bad-args", f"public_key or recipient: {e}") from None
        if consent.owner(key_id_for(raw)) is not None:
            raise _Reject("bad-args", f"key {key_id_for(raw)} is already paired")
    elif cmd == "owner.remove":
        key_id = args["key_id"]
        member = consent.owner(key_id) if isinstance(key_id, str) else None
        if member is None:
            raise _Reject("bad-args", f"key_id {_short(key_id)} is not a member of this doorbell")
        owners = [o for o in consent.owners() if o.role == "owner"]
        if member.role == "owner" and len(owners) == 1:
            raise _Reject("bad-args", f"{key_id} is the last owner: add another owner first, "
                          "or hand the doorbell on with a factory reset")


class CommandProcessor:
    """Verifies and runs owner commands against the stores; one thread (the daemon loop)."""

    def __init__(
        self,
        db: DeviceDB,
        consent: ConsentStore,
        ledger: Ledger,
        device_id: str,
        device_key: Ed25519PrivateKey,
        *,
        limiter: RejectionLimiter | None = None,
    ) -> None:
        self._db = db
        self._consent = consent
        self._ledger = ledger
        self.device_id = device_id
        self._device_key = device_key
        self._limiter = limiter or RejectionLimiter()
        self._args: dict[str, frozenset[str]] = dict(ARGS)
        self._extra_checks: dict[str, Callable[[dict[str, Any]], str | None]] = {}
        self._narrowing: dict[str, Callable[[dict[str, Any]], bool]] = dict(NARROWING)
        # live view (issue 17): commands a viewer may send, and whether this viewer may
        self._viewer_may: dict[str, Callable[[str], bool]] = {}
        self._actions: dict[str, Callable[[_Command, float], dict[str, Any]]] = {
            "consent.grant": self._grant,
            "consent.revoke": self._revoke,
            "consent.show": lambda _c, now: self._consent.show(now),
            "owner.add": self._owner_add,
            "owner.remove": self._owner_remove,
            "ledger.get": lambda _c, _now: {"ledger": self._ledger.export_jsonl()},
        }

    def register(self, cmd: str, fields: frozenset[str],
                 check: Callable[[dict[str, Any]], str | None],
                 action: Callable[[str, dict[str, Any], str, float], dict[str, Any]], *,
                 narrows: Callable[[dict[str, Any]], bool] | None = None,
                 viewer_may: Callable[[str], bool] | None = None) -> None:
        """Add a command owned elsewhere (e.g. the uplink's ``clips.forget``).

        ``check(args)`` returns a reason to refuse (``bad-args``) or None; it must not change
        state. ``action(by_key_id, args, jti, now)`` runs after the counter is stored, inside the
        same transaction as the processor's own actions, and returns the result object.
        ``narrows(args)``: True when the command with these args only narrows consent (so no
        clock difference may block it); it sees args before they are validated, so it must
        expect anything. ``viewer_may(key_id)``: True when that viewer may send this command
        (live view's ``live`` right); without it only owners may.
        """
        if cmd in self._args:
            raise ValueError(f"command {cmd!r} is already defined")
        self._args[cmd] = fields
        self._extra_checks[cmd] = check
        if narrows is not None:
            self._narrowing[cmd] = narrows
        if viewer_may is not None:
            self._viewer_may[cmd] = viewer_may
        self._actions[cmd] = lambda c, now: action(c.owner.key_id, dict(c.args), c.jti, now)

    def handle(self, token: str | bytes, topic: str, now: float) -> Response:
        """Check ``token`` (arrived on ``topic``) and, if every check passes, run it."""
        claims: dict[str, Any] = {}
        try:
            text, header, claims = _parse(token)
            command = self._check(text, header, claims, topic, now)
        except _Reject as r:
            return self._rejected(r, claims, now)
        self._commit_replay_state(command, now)
        try:
            with self._db.transaction():  # the change and its ledger entry commit together
                result = self._actions[command.cmd](command, now)
        except DoorwardError as e:
            log.error(
                "command %s (jti %s) failed after its counter was stored: %s",
                command.cmd,
                command.jti,
                e,
            )
            return Response(command.jti, False, "failed", {}, str(e))
        log.info("command %s from %s (jti %s) done", command.cmd, command.owner.key_id, command.jti)
        viewer = command.owner.recipient if command.owner.role != "owner" else None
        return Response(command.jti, True, None, result, also_to=viewer)

    def respond(self, response: Response, now: float) -> str:
        """``response`` as the device-signed reply JWS for :func:`reply_topic`: the code readable,
        result and detail sealed to the owners (``now``: the time the command was handled)."""
        return sealed_reply(response, self._consent, self._device_key, now)

    def flush_rejections(self, now: float, *, everything: bool = False) -> list[Entry]:
        """Record (ledger) and log the counts of rejections suppressed by the rate limit whose
        window ended; ``everything=True`` (at shutdown) records all pending counts."""
        entries = []
        for r, n in self._limiter.flush(now, everything=everything):
            log.warning("%d more command rejections (%s) were suppressed by the rate limit "
                        "(at most one logged per reason every %g s)", n, r, self._limiter.window_s)
            entries.append(self._ledger.append("command-rejected", {"reason": r, "suppressed": n},
                                               now))
        return entries

    def _check(
        self, token: str, header: dict[str, Any], claims: dict[str, Any], topic: str, now: float
    ) -> _Command:
        _check_header(header, claims)
        iss = claims.get("iss")
        owner = self._consent.owner(iss) if isinstance(iss, str) else None
        if owner is None:
            raise _Reject("unknown-owner", f"iss {_short(iss)} is not a paired key")
        if owner.role != "owner" and not self._viewer_allowed(claims.get("cmd"), owner):
            raise _Reject("not-owner", f"{owner.key_id} is a {owner.role}: only owners command")
        try:
            verified = verify_jws(token, ed25519_public_from_raw(owner.public_key),
                                  max_bytes=MAX_TOKEN_BYTES)  # fmt: skip
        except JwsError as e:
            raise _Reject("bad-signature", f"not signed by {owner.key_id}: {e}") from None
        if verified != claims:  # cannot differ; checked so only signed claims are acted on
            raise _Reject("malformed", "claims differ between parse and verification")
        if claims.get("aud") != self.device_id:
            raise _Reject("wrong-audience", f"aud {_short(claims.get('aud'))} is not this device")
        if claims.get("topic") != topic:
            raise _Reject("wrong-topic", f"signed for topic {_short(claims.get('topic'))}")
        _check_time(claims, now, narrowing=self._narrows(claims))
        jti, ctr = self._check_replay(claims, owner)
        _check_fields(claims, CLAIMS, "claims")
        cmd, args = claims["cmd"], claims["args"]
        if not (isinstance(cmd, str) and cmd in self._args):
            raise _Reject("unknown-command", f"cmd {_short(cmd)}; known: {sorted(self._args)}")
        if not isinstance(args, dict):
            raise _Reject("bad-args", "args must be a JSON object")
        _check_fields(args, self._args[cmd], f"{cmd} args")
        _check_args(cmd, args, self._consent)
        if cmd in self._extra_checks and (why := self._extra_checks[cmd](args)) is not None:
            raise _Reject("bad-args", why)
        return _Command(owner, jti, ctr, claims["exp"], cmd, args)

    def _viewer_allowed(self, cmd: object, owner: Owner) -> bool:
        """A viewer's command an owner allowed them (the signature is checked next, and the
        claims acted on are the verified ones, equal to these)."""
        may = self._viewer_may.get(cmd) if isinstance(cmd, str) else None
        return may is not None and may(owner.key_id)

    def _narrows(self, claims: dict[str, Any]) -> bool:
        """Whether the (signed, not yet validated) command only narrows consent."""
        cmd, args = claims.get("cmd"), claims.get("args")
        test = self._narrowing.get(cmd) if isinstance(cmd, str) else None
        return test is not None and isinstance(args, dict) and test(args) is True

    def _check_replay(self, claims: dict[str, Any], owner: Owner) -> tuple[str, int]:
        """The jti (well-formed, unseen) and ctr (above the owner's stored counter)."""
        jti, ctr = claims.get("jti"), claims.get("ctr")
        if not (isinstance(jti, str) and _JTI.fullmatch(jti)):
            raise _Reject("bad-jti", "jti must be 8..64 characters of A-Z a-z 0-9 . _ ~ -")
        if self._db.query("SELECT 1 FROM jti_seen WHERE jti = ?", (jti,)):
            raise _Reject("replayed-jti", f"jti {jti} was already used")
        if not (is_int(ctr) and 1 <= ctr <= MAX_CTR):
            raise _Reject("bad-counter", f"ctr must be an integer 1..{MAX_CTR}")
        stored = self._db.query("SELECT ctr FROM counters WHERE key_id = ?", (owner.key_id,))
        last = int(stored[0][0]) if stored else 0
        if ctr <= last:
            raise _Reject("stale-counter", f"ctr {ctr} is not above the stored {last}")
        return jti, ctr

    def _commit_replay_state(self, c: _Command, now: float) -> None:
        """Durably store the counter and jti BEFORE acting (synchronous=FULL commit)."""
        # A narrowing command may arrive after its exp by the device's clock: its jti is kept for
        # at least a command's lifetime all the same (the counter already refuses a replay).
        keep_until = max(c.exp, now + MAX_LIFETIME_S)
        with self._db.transaction() as db:
            db.execute("DELETE FROM jti_seen WHERE expires_at <= ?", (now,))
            db.execute("INSERT INTO jti_seen (jti, key_id, expires_at) VALUES (?, ?, ?)",
                       (c.jti, c.owner.key_id, keep_until))  # fmt: skip
            db.execute(
                "INSERT INTO counters (key_id, ctr) VALUES (?, ?) "
                "ON CONFLICT(key_id) DO UPDATE SET ctr = excluded.ctr",
                (c.owner.key_id, c.ctr),
            )

    def _rejected(self, r: _Reject, claims: dict[str, Any], now: float) -> Response:
        jti = claims.get("jti")
        jti = jti if isinstance(jti, str) and _JTI.fullmatch(jti) else None
        iss = claims.get("iss")
        iss = iss if isinstance(iss, str) and KEY_ID_RE.fullmatch(iss) else None
        suppressed = self._limiter.offer(r.reason, now)
        if suppressed is None:
            log.debug("command rejected (not recorded, rate limit): %s: %s", r.reason, r.detail)
        else:  # a flood of forged commands must not flood the log: one per reason per window
            log.warning("command rejected: %s: %s%s", r.reason, r.detail,
                        f" ({suppressed} more command rejections ({r.reason}) were suppressed "
                        "before this one)" if suppressed else "")
            self._ledger.append("command-rejected", {
                "reason": r.reason, "detail": r.detail[:200], "iss": iss, "jti": jti,
                "suppressed": suppressed,
            }, now)  # fmt: skip
        return Response(jti, False, r.reason, {}, r.detail)

    # actions: run inside one transaction with their ledger entry

    def _audit(self, c: _Command) -> dict[str, Any]:
        return {"by": c.owner.key_id, "jti": c.jti, "ctr": c.ctr}

    def _grant(self, c: _Command, now: float) -> dict[str, Any]:
        scopes = list(c.args["scopes"])
        expires_at = expiry_for(c.args["days"], c.args["until_revoked"], now)
        self._consent.grant(scopes, expires_at, c.owner.key_id, now)
        self._ledger.append(
            "consent-grant", {**self._audit(c), "scopes": scopes, "expires_at": expires_at}, now
        )
        return self._consent.show(now)

    def _revoke(self, c: _Command, now: float) -> dict[str, Any]:
        scopes = c.args["scopes"]
        revoked = self._consent.revoke(scopes, c.owner.key_id, now)
        self._ledger.append(
            "consent-revoke", {**self._audit(c), "scopes": scopes, "revoked": revoked}, now
        )
        return {"revoked": revoked, **self._consent.show(now)}

    def _owner_add(self, c: _Command, now: float) -> dict[str, Any]:
        raw = b64u_decode(c.args["public_key"])
        added = self._consent.add_owner(raw, c.args["recipient"], c.args["role"], now)
        info = {"key_id": added.key_id, "role": added.role, "recipient": added.recipient}
        self._ledger.append("owner-added", {**self._audit(c), **info}, now)
        return info

    def _owner_remove(self, c: _Command, now: float) -> dict[str, Any]:
        removed = self._consent.remove_owner(c.args["key_id"])
        info = {"key_id": removed.key_id, "role": removed.role}
        self._ledger.append("owner-removed", {**self._audit(c), **info}, now)
        return {"removed": info}
