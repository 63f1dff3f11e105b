"""Owner commands on the device: every rejection changes nothing; valid commands act durably."""

from __future__ import annotations

import copy
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.device.consent import ConsentError, ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger, verify_jsonl
from agent.device.owner_commands import ARGS, CLAIMS, MAX_TOKEN_BYTES, REASONS, CommandProcessor
from uplink import jws
from uplink.agekeys import Identity
from uplink.keys import b64u, device_id_for, key_id_for, public_raw

T0 = 1_800_000_000.0
DROP = object()  # claim value meaning "leave this claim out"


class Rig:
    """A device with one owner and one viewer, and helpers to sign commands as them."""

    def __init__(self, path: Path) -> None:
        self.db = DeviceDB(path)
        self.device_key = Ed25519PrivateKey.generate()
        self.device_id = device_id_for(public_raw(self.device_key))
        self.topic = f"doorward/{self.device_id}/cmd"
        self.consent = ConsentStore(self.db)
        self.ledger = Ledger(self.db, self.device_key)
        self.proc = CommandProcessor(
            self.db, self.consent, self.ledger, self.device_id, self.device_key
        )
        self.owner_key = Ed25519PrivateKey.generate()
        self.viewer_key = Ed25519PrivateKey.generate()
        self.recipient = str(Identity.generate().recipient)
        self.consent.add_owner(public_raw(self.owner_key), self.recipient, "owner", T0)
        self.consent.add_owner(public_raw(self.viewer_key), self.recipient, "viewer", T0)
        self._ctr = itertools.count(1)
        self._jti = itertools.count(1)

    def next_ctr(self) -> int:
        """A counter above the stored one (a fuzzed command may have raised it)."""
        stored = self.db.query("SELECT MAX(ctr) FROM counters")[0][0] or 0
        return max(next(self._ctr), stored + 1)

    def fresh_jti(self) -> str:
        return f"jti-{next(self._jti):08d}"

    def claims(self, cmd: str = "consent.show", args: Any = None, **over: Any) -> dict[str, Any]:
        key = over.pop("key", self.owner_key)
        claims: dict[str, Any] = {
            "iss": key_id_for(public_raw(key)), "aud": self.device_id, "iat": int(T0),
            "exp": int(T0) + 300, "jti": self.fresh_jti(), "ctr": self.next_ctr(), "cmd": cmd,
            "topic": self.topic, "args": {} if args is None else args,
        }  # fmt: skip
        claims.update(over)
        return {k: v for k, v in claims.items() if v is not DROP}

    def token(
        self, cmd: str = "consent.show", args: Any = None, *, signer: Any = None, **over: Any
    ) -> str:
        key = over.get("key", self.owner_key)
        claims = self.claims(cmd, args, **over)
        return jws.sign(claims, signer or key, kid=claims.get("iss"))

    def state(self) -> str:
        return self.db.dump()

    def rejected_reasons(self) -> list[str]:
        return [e.data["reason"] for e in self.ledger.entries() if e.kind == "command-rejected"]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "device.sqlite")
    yield r
    r.db.close()


def grant_args(scopes: Any = ("clips",), days: Any = 7, until: Any = False) -> dict[str, Any]:
    return {"scopes": list(scopes), "days": days, "until_revoked": until}


def new_owner_args(role: str = "owner") -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    args = {
        "public_key": b64u(public_raw(key)),
        "recipient": str(Identity.generate().recipient),
        "role": role,
    }
    return key, args


# ---- happy paths ----


def test_grant_then_show_then_revoke(rig: Rig) -> None:
    resp = rig.proc.handle(
        rig.token("consent.grant", grant_args(["clips", "events"])), rig.topic, T0
    )
    assert resp.ok, resp
    assert rig.consent.allows("clips", T0 + 6 * 86400) and not rig.consent.allows(
        "clips", T0 + 8 * 86400
    )
    assert [g["scope"] for g in resp.result["grants"]] == ["clips", "events"]

    resp = rig.proc.handle(rig.token("consent.revoke", {"scopes": ["clips"]}), rig.topic, T0 + 1)
    assert resp.ok and resp.result["revoked"] == ["clips"]
    assert not rig.consent.allows("clips", T0 + 2) and rig.consent.allows("events", T0 + 2)

    resp = rig.proc.handle(rig.token("consent.show"), rig.topic, T0 + 2)
    assert resp.ok and [g["scope"] for g in resp.result["grants"]] == ["events"]
    kinds = [e.kind for e in rig.ledger.entries()]
    assert kinds == ["consent-grant", "consent-revoke"]


def test_grant_defaults_to_30_days_and_until_revoked_only_when_asked(rig: Rig) -> None:
    assert rig.proc.handle(rig.token("consent.grant", grant_args(days=None)), rig.topic, T0).ok
    assert rig.consent.in_force(T0)[0].expires_at == T0 + 30 * 86400
    args = grant_args(["events"], days=None, until=True)
    assert rig.proc.handle(rig.token("consent.grant", args), rig.topic, T0).ok
    assert [g.expires_at for g in rig.consent.in_force(T0) if g.scope == "events"] == [None]


def test_response_is_device_signed_and_names_jti(rig: Rig) -> None:
    token = rig.token("consent.show")
    jti = jws.peek(token)[1]["jti"]
    resp = rig.proc.handle(token, rig.topic, T0)
    claims = jws.verify(rig.proc.respond(resp, T0), rig.device_key.public_key())
    assert set(claims) == {"v", "iss", "iat", "jti", "ok", "sealed"}  # the result is sealed
    assert (claims["iss"], claims["iat"], claims["jti"], claims["ok"]) == (
        rig.device_id, int(T0), jti, True)
    bad = rig.proc.handle(rig.token(aud="dw-other"), rig.topic, T0)
    claims = jws.verify(rig.proc.respond(bad, T0), rig.device_key.public_key())
    assert claims["ok"] is False and claims["reason"] == "wrong-audience" and claims["jti"]
    assert "detail" not in claims


def test_owner_add_then_new_owner_commands(rig: Rig) -> None:
    key, args = new_owner_args()
    resp = rig.proc.handle(rig.token("owner.add", args), rig.topic, T0)
    assert resp.ok and resp.result["key_id"] == key_id_for(public_raw(key))
    assert args["recipient"] in rig.consent.recipients()
    # the new owner has its own counter, starting anew
    token = jws.sign(
        rig.claims("consent.show", key=key, ctr=1), key, kid=key_id_for(public_raw(key))
    )
    assert rig.proc.handle(token, rig.topic, T0).ok
    assert rig.ledger.entries()[-1].kind == "owner-added"


def test_ledger_get_exports_a_verifiable_ledger(rig: Rig) -> None:
    rig.proc.handle(rig.token("consent.grant", grant_args()), rig.topic, T0)
    resp = rig.proc.handle(rig.token("ledger.get"), rig.topic, T0)
    report = verify_jsonl(resp.result["ledger"], rig.device_key.public_key())
    assert report.ok and report.count == 1, str(report)


def test_bytes_token_is_accepted(rig: Rig) -> None:
    assert rig.proc.handle(rig.token().encode("ascii"), rig.topic, T0).ok


# ---- every rejection: right reason, nothing changed ----


def _unsigned(rig: Rig) -> str:
    head = b64u(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{b64u(json.dumps(rig.claims()).encode())}."


def _malformed_json(rig: Rig) -> str:
    header = {"alg": "EdDSA", "kid": key_id_for(public_raw(rig.owner_key)), "typ": "JWT"}
    return jws.sign_payload(b'{"iss": "k-', rig.owner_key, header)


def _with_header(token: str, header: dict[str, Any]) -> str:
    return ".".join([b64u(json.dumps(header).encode()), *token.split(".")[1:]])


def _extra_header(rig: Rig) -> str:
    claims = rig.claims()
    return jws.sign_payload(
        jws.canonical_json(claims), rig.owner_key, {"alg": "EdDSA", "typ": "JWT", "x5u": "http://e"}
    )


CASES: dict[str, tuple[str, Any]] = {
    "unsigned": ("bad-alg", _unsigned),
    "hs256": ("bad-alg", lambda r: _with_header(r.token(), {"alg": "HS256", "typ": "JWT"})),
    "not-a-jws": ("malformed", lambda r: json.dumps(r.claims())),
    "malformed-json": ("malformed", _malformed_json),
    "oversized": ("oversized", lambda r: r.token(args={"pad": "x" * MAX_TOKEN_BYTES})),
    "not-ascii": ("not-ascii", lambda r: r.token() + "é"),
    "extra-header": ("bad-header", _extra_header),
    "kid-mismatch": ("bad-header", lambda r: jws.sign(r.claims(), r.owner_key, kid="k-other")),
    "unknown-key": ("unknown-owner", lambda r: r.token(key=Ed25519PrivateKey.generate())),
    "no-iss": ("unknown-owner", lambda r: jws.sign(r.claims(iss=DROP), r.owner_key, kid=None)),
    "viewer-owner-add": ("not-owner", lambda r: r.token("owner.add", new_owner_args()[1],
                                                        key=r.viewer_key)),
    "viewer-show": ("not-owner", lambda r: r.token(key=r.viewer_key)),
    "wrong-key": ("bad-signature", lambda r: r.token(signer=Ed25519PrivateKey.generate())),
    "wrong-audience": ("wrong-audience", lambda r: r.token(aud="dw-aaaaaaaaaaaaaaaa")),
    "no-audience": ("wrong-audience", lambda r: r.token(aud=DROP)),
    "wrong-topic": ("wrong-topic", lambda r: r.token(topic="doorward/dw-x/cmd")),
    "float-exp": ("bad-time", lambda r: r.token(exp=T0 + 300.5)),
    "no-iat": ("bad-time", lambda r: r.token(iat=DROP)),
    "expired": ("expired", lambda r: r.token(iat=int(T0) - 400, exp=int(T0) - 100)),
    "expires-now": ("expired", lambda r: r.token(iat=int(T0) - 100, exp=int(T0))),
    "too-long-lived": ("bad-lifetime", lambda r: r.token(exp=int(T0) + 601)),
    "exp-before-iat": ("bad-lifetime", lambda r: r.token(iat=int(T0) + 200, exp=int(T0) + 100)),
    "from-future": ("from-future", lambda r: r.token(iat=int(T0) + 301, exp=int(T0) + 400)),
    "short-jti": ("bad-jti", lambda r: r.token(jti="abc")),
    "jti-charset": ("bad-jti", lambda r: r.token(jti="abc def ghi")),
    "no-ctr": ("bad-counter", lambda r: r.token(ctr=DROP)),
    "bool-ctr": ("bad-counter", lambda r: r.token(ctr=True)),
    "huge-ctr": ("bad-counter", lambda r: r.token(ctr=2**63)),
    "unknown-claim": ("unknown-field", lambda r: r.token(admin=True)),
    "no-cmd": ("missing-field", lambda r: r.token(cmd=DROP)),
    "unknown-command": ("unknown-command", lambda r: r.token("device.unlock")),
    "args-not-object": ("bad-args", lambda r: r.token(args=["clips"])),
    "unknown-arg": ("unknown-field", lambda r: r.token("consent.show", {"verbose": True})),
    "unknown-grant-arg": ("unknown-field", lambda r: r.token(
        "consent.grant", {**grant_args(), "forever": True})),
    "missing-arg": ("missing-field", lambda r: r.token("consent.grant", {"scopes": ["clips"]})),
    "bad-scope": ("bad-args", lambda r: r.token("consent.grant", grant_args(["audio"]))),
    "days-and-until": ("bad-args", lambda r: r.token("consent.grant",
                                                     grant_args(days=3, until=True))),
    "days-too-many": ("bad-args", lambda r: r.token("consent.grant", grant_args(days=366))),
    "scope-not-str": ("bad-args", lambda r: r.token("consent.revoke", {"scopes": [{"a": 1}]})),
    "bad-role": ("bad-args", lambda r: r.token("owner.add",
                                               {**new_owner_args()[1], "role": "root"})),
    "bad-owner-key": ("bad-args", lambda r: r.token("owner.add", {
        **new_owner_args()[1], "public_key": b64u(b"x" * 31)})),
    "owner-again": ("bad-args", lambda r: r.token("owner.add", {
        "public_key": b64u(public_raw(r.viewer_key)), "recipient": r.recipient, "role": "owner"})),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_rejections_change_nothing(rig: Rig, case: str) -> None:
    reason, make = CASES[case]
    assert reason in REASONS
    token = make(rig)
    before = rig.state()
    resp = rig.proc.handle(token, rig.topic, T0)
    assert (resp.ok, resp.reason) == (False, reason), resp.detail
    assert resp.detail
    assert rig.state() == before
    assert rig.rejected_reasons() == [reason]  # recorded in the ledger
    assert not any(rig.consent.allows(s, T0) for s in ("events", "snapshots", "clips"))


def test_replayed_jti_is_refused_and_changes_nothing(rig: Rig) -> None:
    token = rig.token("consent.grant", grant_args())
    assert rig.proc.handle(token, rig.topic, T0).ok
    rig.proc.handle(rig.token("consent.revoke", {"scopes": None}), rig.topic, T0 + 1)
    before = rig.state()
    resp = rig.proc.handle(token, rig.topic, T0 + 2)
    assert (resp.ok, resp.reason) == (False, "replayed-jti")
    assert rig.state() == before and not rig.consent.allows("clips", T0 + 2)


@pytest.mark.parametrize("delta", [0, -1], ids=["equal", "rolled-back"])
def test_counter_not_increasing_is_refused(rig: Rig, delta: int) -> None:
    assert rig.proc.handle(rig.token(ctr=10), rig.topic, T0).ok
    before = rig.state()
    resp = rig.proc.handle(rig.token("consent.grant", grant_args(), ctr=10 + delta), rig.topic, T0)
    assert (resp.ok, resp.reason) == (False, "stale-counter")
    assert rig.state() == before
    assert rig.proc.handle(rig.token(ctr=11), rig.topic, T0).ok  # strictly greater is fine


def test_counter_defends_when_the_clock_is_wrong(rig: Rig) -> None:
    """A token replayed after its jti was pruned (clock jumped) is still refused by the counter."""
    token = rig.token("consent.grant", grant_args(), ctr=5)
    assert rig.proc.handle(token, rig.topic, T0).ok
    # a later valid command prunes jtis expired by its (wrong, far-ahead) clock...
    later = rig.token(iat=int(T0) + 10_000, exp=int(T0) + 10_100, ctr=6)
    assert rig.proc.handle(later, rig.topic, T0 + 10_000).ok
    # ...then the clock steps back: the old token is in its validity window again
    resp = rig.proc.handle(token, rig.topic, T0 + 1)
    assert (resp.ok, resp.reason) == (False, "stale-counter")


def test_jti_cache_is_pruned_after_exp(rig: Rig) -> None:
    rig.proc.handle(rig.token(), rig.topic, T0)
    rig.proc.handle(rig.token(iat=int(T0) + 1000, exp=int(T0) + 1100), rig.topic, T0 + 1000)
    assert len(rig.db.query("SELECT jti FROM jti_seen")) == 1


# ---- durability: the counter is committed before acting ----


def test_counter_committed_before_action_and_kept_when_action_raises(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_by_other_connection: list[Any] = []

    def exploding_grant(*_a: Any, **_k: Any) -> None:
        other = sqlite3.connect(rig.db.path)  # sees only committed data
        seen_by_other_connection.extend(other.execute("SELECT key_id, ctr FROM counters"))
        other.close()
        raise RuntimeError("power cut in the middle of the action")

    monkeypatch.setattr(rig.consent, "grant", exploding_grant)
    token = rig.token("consent.grant", grant_args(), ctr=7)
    with pytest.raises(RuntimeError, match="power cut"):
        rig.proc.handle(token, rig.topic, T0)
    assert seen_by_other_connection == [(key_id_for(public_raw(rig.owner_key)), 7)]
    monkeypatch.undo()
    assert rig.consent.in_force(T0) == []
    assert rig.proc.handle(token, rig.topic, T0).reason == "replayed-jti"
    same_ctr = rig.token("consent.grant", grant_args(), ctr=7)
    assert rig.proc.handle(same_ctr, rig.topic, T0).reason == "stale-counter"
    assert rig.consent.in_force(T0) == []


def test_known_action_failure_answers_failed(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> None:
        raise ConsentError("disk says no")

    monkeypatch.setattr(rig.consent, "grant", refuse)
    resp = rig.proc.handle(rig.token("consent.grant", grant_args(), ctr=3), rig.topic, T0)
    assert (resp.ok, resp.reason, resp.detail) == (False, "failed", "disk says no")
    assert rig.db.query("SELECT ctr FROM counters")[0][0] == 3
    assert [e.kind for e in rig.ledger.entries()] == []  # the failed action left no entry


# ---- rate-limited rejection records ----


def test_rejections_are_rate_limited_into_the_ledger(rig: Rig) -> None:
    for i in range(10):
        rig.proc.handle("garbage", rig.topic, T0 + i)
    assert rig.rejected_reasons() == ["malformed"]
    rig.proc.handle(rig.token(aud="dw-x"), rig.topic, T0 + 10)
    assert rig.rejected_reasons() == ["malformed", "wrong-audience"]
    rig.proc.handle("garbage", rig.topic, T0 + 61)
    last = rig.ledger.entries()[-1]
    assert last.data["reason"] == "malformed" and last.data["suppressed"] == 9
    for i in range(3):
        rig.proc.handle("garbage", rig.topic, T0 + 62 + i)
    assert rig.proc.flush_rejections(T0 + 100) == []
    flushed = rig.proc.flush_rejections(T0 + 121)
    assert [(e.data["reason"], e.data["suppressed"]) for e in flushed] == [("malformed", 3)]


# ---- property-based fuzzing ----

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)  # fmt: skip
PLAUSIBLE: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, False, 0, 1, 7, 365, -1, int(T0), int(T0) + 300, "", "owner", "viewer",
     "events", ["clips"], ["events", "clips"], [], {}, "consent.grant", "$CTR", "$JTI"]
)  # fmt: skip
VALUE = st.one_of(JUNK, PLAUSIBLE)
SCOPE_LISTS = st.lists(st.sampled_from(["events", "snapshots", "clips"]), min_size=1, unique=True)


@st.composite
def valid_args(draw: st.DrawFn, cmd: str) -> dict[str, Any]:
    if cmd == "consent.grant":
        days = draw(st.none() | st.integers(1, 365))
        until = days is None and draw(st.booleans())
        return {"scopes": draw(SCOPE_LISTS), "days": days, "until_revoked": until}
    if cmd == "consent.revoke":
        return {"scopes": draw(st.none() | SCOPE_LISTS)}
    if cmd == "owner.add":
        role = draw(st.sampled_from(["owner", "viewer"]))
        return {"public_key": "$PUB", "recipient": "$REC", "role": role}
    if cmd == "owner.remove":
        return {"key_id": "$MEMBER"}
    return {}


@st.composite
def claim_cases(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """Valid command claims (with placeholders) and up to 3 random mutations of them."""
    cmd = draw(st.sampled_from(sorted(ARGS)))
    iat = int(T0) - draw(st.integers(-300, 599))
    exp = max(iat, int(T0) + 1) + draw(st.integers(0, 600 - max(0, int(T0) + 1 - iat)))
    claims: dict[str, Any] = {
        "iss": "$ISS", "aud": "$AUD", "iat": iat, "exp": exp, "jti": "$JTI",
        "ctr": "$CTR", "cmd": cmd, "topic": "$TOPIC", "args": draw(valid_args(cmd)),
    }  # fmt: skip
    n = 0 if draw(st.booleans()) else draw(st.integers(1, 3))
    for _ in range(n):
        target = (
            claims["args"]
            if isinstance(claims.get("args"), dict) and draw(st.booleans())
            else claims
        )
        op = draw(st.sampled_from(["drop", "set", "add"]))
        if op == "drop" and target:
            target.pop(draw(st.sampled_from(sorted(target))))
        elif op == "set" and target:
            target[draw(st.sampled_from(sorted(target)))] = copy.deepcopy(draw(VALUE))
        else:
            name = st.sampled_from([*sorted(CLAIMS), "scopes", "days", "role"])
            target[draw(name | st.text(min_size=1, max_size=8))] = copy.deepcopy(draw(VALUE))
    return claims, n


def fill(rig: Rig, value: Any) -> Any:
    """Replace placeholders with fresh valid values (a fresh ctr, jti and owner key each time)."""
    if isinstance(value, dict):
        return {k: fill(rig, v) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(rig, v) for v in value]
    fresh: dict[str, Callable[[], Any]] = {
        "$ISS": lambda: key_id_for(public_raw(rig.owner_key)), "$AUD": lambda: rig.device_id,
        "$TOPIC": lambda: rig.topic, "$JTI": rig.fresh_jti, "$CTR": rig.next_ctr,
        "$PUB": lambda: b64u(public_raw(Ed25519PrivateKey.generate())),
        "$REC": lambda: rig.recipient, "$MEMBER": lambda: new_member(rig),
    }  # fmt: skip
    return fresh[value]() if isinstance(value, str) and value in fresh else value


def new_member(rig: Rig) -> str:
    """A freshly added viewer's key id (one that a remove may take out)."""
    key = Ed25519PrivateKey.generate()
    return rig.consent.add_owner(public_raw(key), rig.recipient, "viewer", T0).key_id


def assert_plausibly_valid(rig: Rig, claims: dict[str, Any]) -> None:
    """Independent oracle for accepted commands (only a narrowing one may be outside the clock
    window, never outside the lifetime bound)."""
    assert set(claims) == CLAIMS
    assert claims["aud"] == rig.device_id and claims["topic"] == rig.topic
    assert claims["iss"] == key_id_for(public_raw(rig.owner_key))
    assert claims["exp"] > T0 or claims["cmd"] in ("consent.revoke", "owner.remove")
    assert 0 <= claims["exp"] - claims["iat"] <= 600 and type(claims["ctr"]) is int
    assert claims["cmd"] in ARGS and set(claims["args"]) == ARGS[claims["cmd"]]


@pytest.fixture(scope="module")
def fuzz_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("fuzz") / "device.sqlite")
    yield r
    r.db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=claim_cases())
def test_fuzz_signed_claims(fuzz_rig: Rig, case: tuple[dict[str, Any], int]) -> None:
    rig = fuzz_rig
    claims = fill(rig, case[0])
    token = jws.sign(claims, rig.owner_key, kid=key_id_for(public_raw(rig.owner_key)))
    before = rig.state()
    resp = rig.proc.handle(token, rig.topic, T0)
    event(resp.reason or "ok")
    if case[1] == 0:
        assert resp.ok, resp  # unmutated commands are valid
    if resp.ok:
        assert_plausibly_valid(rig, claims)
    else:
        assert resp.reason in REASONS and rig.state() == before, resp


def _flip(token: str, pos: int, char: str) -> str:
    pos %= len(token)
    if token[pos] == char:
        char = "A" if char != "A" else "B"
    return token[:pos] + char + token[pos + 1 :]


TOKENS = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.from_regex(r"[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,90}", fullmatch=True),
    st.tuples(st.integers(0, 10_000), st.sampled_from("AQgw_-.=é0z")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=TOKENS)
def test_fuzz_random_tokens(fuzz_rig: Rig, raw: Any) -> None:
    rig = fuzz_rig
    token = _flip(rig.token("consent.grant", grant_args()), *raw) if isinstance(raw, tuple) else raw
    before = rig.state()
    resp = rig.proc.handle(token, rig.topic, T0)
    assert not resp.ok and resp.reason in REASONS
    assert rig.state() == before


def test_owner_remove_takes_a_member_out_but_never_the_last_owner(rig: Rig) -> None:
    viewer, owner = key_id_for(public_raw(rig.viewer_key)), key_id_for(public_raw(rig.owner_key))
    before = rig.state()
    for key_id, why in ((owner, "last owner"), ("k-aaaaaaaaaaaaaaaa", "not a member"),
                        (7, "not a member")):
        resp = rig.proc.handle(rig.token("owner.remove", {"key_id": key_id}), rig.topic, T0)
        assert (resp.ok, resp.reason) == (False, "bad-args") and why in resp.detail
    assert rig.state().count("owner-removed") == before.count("owner-removed")
    resp = rig.proc.handle(rig.token("owner.remove", {"key_id": viewer}), rig.topic, T0)
    assert resp.ok and resp.result == {"removed": {"key_id": viewer, "role": "viewer"}}
    assert rig.consent.owner(viewer) is None and len(rig.consent.recipients()) == 1
    entry = rig.ledger.entries()[-1]
    assert entry.kind == "owner-removed" and entry.data["key_id"] == viewer
    # A second owner can be removed by the first; the counter of a removed key stays, so
    # re-adding the key never lets its old commands be replayed.
    key, args = new_owner_args("owner")
    assert rig.proc.handle(rig.token("owner.add", args), rig.topic, T0).ok
    second = key_id_for(public_raw(key))
    old = rig.token("consent.show", key=key)
    assert rig.proc.handle(old, rig.topic, T0).ok
    assert rig.proc.handle(rig.token("owner.remove", {"key_id": second}), rig.topic, T0).ok
    assert rig.proc.handle(rig.token("consent.show", key=key), rig.topic, T0).reason == \
        "unknown-owner"
    assert rig.proc.handle(rig.token("owner.add", args), rig.topic, T0).ok
    replayed = rig.proc.handle(old, rig.topic, T0)
    assert (replayed.ok, replayed.reason) == (False, "replayed-jti")
