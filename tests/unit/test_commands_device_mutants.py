"""Mutation tests for the owner commands (agent/device/owner_commands.py), written for the mutants
that survived tests/unit/test_commands_device.py (scripts/mutation agent/device/owner_commands.py).

They pin what matters to the promises: the ledger entry each command writes, field by field
(the owner's audit trail); what a reply reveals and to whom (sealed to the owners, never the
viewers; the code alone without an owner; a reply too large becomes a ``failed`` refusal); that
revoking and removing a member go through whatever the clock says; the exact edges of the
replay checks; the jti kept long enough after a late narrowing command; and the bucket's part
of a forget, split to fit a fleet broker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device import owner_commands as cd
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import RejectionLimiter
from agent.device.owner_commands import (
    MAX_CTR,
    MAX_LIFETIME_S,
    CommandProcessor,
    Response,
    bucket_replies,
    sealed_reply,
)
from agent.errors import StoreError
from tests.unit.test_commands_device import T0, Rig
from uplink import jws
from uplink.agekeys import Identity
from uplink.keys import b64u, key_id_for, public_raw
from uplink.messages import MAX_MESSAGE_BYTES, MessageError, MessageTooLargeError
from uplink.replies import ForgetResultBody, VerifiedReply, verify_reply

DAY = 86400


class Members(Rig):
    """The test_commands_device rig, with the owner's and the viewer's age identities apart (so
    a test can tell whom a reply is sealed to) and a second owner available."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.owner_id, self.viewer_id = Identity.generate(), Identity.generate()
        with self.db.transaction() as db:
            db.execute("UPDATE owners SET recipient = ? WHERE key_id = ?",
                       (str(self.owner_id.recipient), self.kid(self.owner_key)))
            db.execute("UPDATE owners SET recipient = ? WHERE key_id = ?",
                       (str(self.viewer_id.recipient), self.kid(self.viewer_key)))

    @staticmethod
    def kid(key: Ed25519PrivateKey) -> str:
        return key_id_for(public_raw(key))

    def run(self, cmd: str, args: Any = None, now: float = T0, **over: Any) -> Response:
        return self.proc.handle(self.token(cmd, args, **over), self.topic, now)

    def last(self) -> tuple[str, dict[str, Any]]:
        e = self.ledger.entries()[-1]
        return e.kind, e.data

    def opened(self, token: str, *who: Identity) -> VerifiedReply:
        return verify_reply(token, self.device_key.public_key(), identities=who)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Members]:
    r = Members(tmp_path / "device.sqlite")
    yield r
    r.db.close()


# ---- the ledger entry of each command, field by field --------------------------------------------


def test_grant_is_recorded_with_who_which_command_scopes_and_expiry(rig: Members) -> None:
    resp = rig.run("consent.grant", {"scopes": ["events", "clips"], "days": 7,
                                     "until_revoked": False}, ctr=5)
    assert resp.ok
    assert rig.last() == ("consent-grant", {
        "by": rig.kid(rig.owner_key), "jti": resp.jti, "ctr": 5,
        "scopes": ["events", "clips"], "expires_at": T0 + 7 * DAY})
    assert resp.result == rig.consent.show(T0)


def test_revoke_is_recorded_with_what_was_in_force_and_by_whom(rig: Members) -> None:
    assert rig.run("consent.grant", {"scopes": ["events"], "days": 7,
                                     "until_revoked": False}).ok
    assert rig.run("consent.grant", {"scopes": ["clips"], "days": None,
                                     "until_revoked": True}).ok
    resp = rig.run("consent.revoke", {"scopes": ["clips", "snapshots"]}, ctr=9)
    assert rig.last() == ("consent-revoke", {
        "by": rig.kid(rig.owner_key), "jti": resp.jti, "ctr": 9,
        "scopes": ["clips", "snapshots"], "revoked": ["clips"]})
    revoked = rig.db.query("SELECT scope, revoked_by FROM grants WHERE revoked_at IS NOT NULL")
    assert [tuple(r) for r in revoked] == [("clips", rig.kid(rig.owner_key))]
    # the reply shows consent as it now is: the 7-day events grant is still in force
    assert resp.result == {"revoked": ["clips"], "grants": [
        {**rig.consent.show(T0)["grants"][0], "scope": "events", "expires_at": T0 + 7 * DAY}]}


def test_member_add_and_remove_are_recorded_field_by_field(rig: Members) -> None:
    new_key, new_id = Ed25519PrivateKey.generate(), Identity.generate()
    added = rig.run("owner.add", {"public_key": b64u(public_raw(new_key)),
                                  "recipient": str(new_id.recipient), "role": "viewer"}, ctr=3)
    info = {"key_id": rig.kid(new_key), "role": "viewer", "recipient": str(new_id.recipient)}
    assert added.result == info
    assert rig.last() == ("owner-added", {"by": rig.kid(rig.owner_key), "jti": added.jti,
                                          "ctr": 3, **info})
    removed = rig.run("owner.remove", {"key_id": rig.kid(new_key)}, ctr=4)
    assert removed.result == {"removed": {"key_id": rig.kid(new_key), "role": "viewer"}}
    assert rig.last() == ("owner-removed", {"by": rig.kid(rig.owner_key), "jti": removed.jti,
                                            "ctr": 4, "key_id": rig.kid(new_key),
                                            "role": "viewer"})


# ---- narrowing commands and the clock ------------------------------------------------------------


@pytest.mark.parametrize("iat", [int(T0) - 3600, int(T0) + 3600])
def test_revoke_and_member_removal_go_through_whatever_the_clock(rig: Members, iat: int) -> None:
    assert rig.run("consent.revoke", {"scopes": None}, iat=iat, exp=iat + 300).ok
    assert rig.run("owner.remove", {"key_id": rig.kid(rig.viewer_key)}, iat=iat,
                   exp=iat + 300).ok
    assert rig.consent.owner(rig.kid(rig.viewer_key)) is None


def test_a_late_narrowing_command_keeps_its_jti_for_a_full_lifetime(rig: Members) -> None:
    """Accepted after its exp by the device clock: its jti stays refused for MAX_LIFETIME_S of
    device time, not until its (past) exp."""
    iat = int(T0) - 3600
    resp = rig.run("consent.revoke", {"scopes": None}, iat=iat, exp=iat + 300)
    assert rig.db.query("SELECT expires_at FROM jti_seen WHERE jti = ?", (resp.jti,))[0][0] == (
        T0 + MAX_LIFETIME_S)


def test_a_jti_is_kept_until_its_exp_when_that_is_later(rig: Members) -> None:
    resp = rig.run("consent.show", iat=int(T0) + 300, exp=int(T0) + 900)
    assert resp.ok
    assert rig.db.query("SELECT expires_at FROM jti_seen WHERE jti = ?", (resp.jti,))[0][0] == (
        T0 + 900)


# ---- replay edges and refusal details ------------------------------------------------------------


def test_the_largest_counter_is_accepted_and_one_more_refused(rig: Members) -> None:
    too_big = rig.run("consent.show", ctr=MAX_CTR + 1)
    assert (too_big.reason, too_big.detail) == ("bad-counter",
                                                f"ctr must be an integer 1..{MAX_CTR}")
    assert rig.run("consent.show", ctr=MAX_CTR).ok


def test_a_bad_jti_is_refused_naming_the_form(rig: Members) -> None:
    resp = rig.run("consent.show", jti="short")
    assert (resp.reason, resp.detail) == (
        "bad-jti", "jti must be 8..64 characters of A-Z a-z 0-9 . _ ~ -")


def test_unknown_claims_are_named_at_most_five(rig: Members) -> None:
    extra = {f"x{i}": 1 for i in range(7)}
    resp = rig.run("consent.show", **extra)
    assert (resp.reason, resp.detail) == (
        "unknown-field", "claims: unknown fields ['x0', 'x1', 'x2', 'x3', 'x4']")


@pytest.mark.parametrize(("iss", "shown"), [
    ("k-" + "a" * 36, repr("k-" + "a" * 36)),  # repr is 40 characters: shown whole
    ("k-" + "a" * 37, repr("k-" + "a" * 37)[:37] + "..."),
])
def test_a_value_quoted_in_a_refusal_is_cut_at_40_characters(
        rig: Members, iss: str, shown: str) -> None:
    token = jws.sign(rig.claims("consent.show", iss=iss), rig.owner_key, kid=iss)
    resp = rig.proc.handle(token, rig.topic, T0)
    assert (resp.reason, resp.detail) == ("unknown-owner", f"iss {shown} is not a paired key")


def test_a_header_that_is_not_an_object_is_malformed(rig: Members) -> None:
    token = rig.token("consent.show")
    bad = b64u(b"[1]") + token[token.index("."):]
    assert rig.proc.handle(bad, rig.topic, T0).reason == "malformed"


# ---- argument checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(("cmd", "args", "detail"), [
    ("consent.grant", {"scopes": "events", "days": 7, "until_revoked": False},
     "scopes must be a list of strings"),
    ("consent.grant", {"scopes": ["events", "events"], "days": 7, "until_revoked": False},
     "scopes must be a non-empty list of distinct ('events', 'snapshots', 'clips'), "
     "got ('events', 'events')"),
    ("consent.grant", {"scopes": ["events"], "days": 7, "until_revoked": "no"},
     "days must be an integer or null, until_revoked a bool"),
    ("consent.grant", {"scopes": ["events"], "days": "7", "until_revoked": False},
     "days must be an integer or null, until_revoked a bool"),
    ("consent.grant", {"scopes": ["events"], "days": 7, "until_revoked": True},
     "give either days or until_revoked, not both"),
    ("owner.add", {"public_key": b64u(bytes(32)), "recipient": 1, "role": "viewer"},
     "public_key, recipient: strings; role: one of ('owner', 'viewer')"),
    ("owner.remove", {"key_id": ["k-aaaaaaaaaaaaaaaa"]},
     "key_id ['k-aaaaaaaaaaaaaaaa'] is not a member of this doorbell"),
    ("owner.remove", {"key_id": "k-bbbbbbbbbbbbbbbb"},
     "key_id 'k-bbbbbbbbbbbbbbbb' is not a member of this doorbell"),
])
def test_bad_args_are_refused_with_what_is_wrong(rig: Members, cmd: str, args: dict[str, Any],
                                                 detail: str) -> None:
    before = rig.state()
    resp = rig.run(cmd, args)
    assert (resp.ok, resp.reason, resp.detail) == (False, "bad-args", detail)
    assert rig.state() == before


def test_the_last_owner_cannot_be_removed_but_one_of_two_can(rig: Members) -> None:
    """Viewers do not count as owners: with two owners and a viewer, one owner may go; then the
    remaining owner is the last one."""
    me = rig.kid(rig.owner_key)
    refused = rig.run("owner.remove", {"key_id": me})
    assert (refused.reason, refused.detail) == ("bad-args", (
        f"{me} is the last owner: add another owner first, or hand the doorbell on with a "
        "factory reset"))
    second = Ed25519PrivateKey.generate()
    rig.consent.add_owner(public_raw(second), str(Identity.generate().recipient), "owner", T0)
    assert rig.run("owner.remove", {"key_id": rig.kid(second)}).ok


# ---- the rejection rate limit --------------------------------------------------------------------


def test_flush_at_shutdown_records_what_the_window_still_holds(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Members(tmp_path / "device.sqlite")
    try:
        rig.proc = CommandProcessor(rig.db, rig.consent, rig.ledger, rig.device_id,
                                    rig.device_key, limiter=RejectionLimiter(60.0))
        for _ in range(3):
            rig.proc.handle("garbage", rig.topic, T0)
        assert rig.proc.flush_rejections(T0 + 1) == []  # the window has not ended
        caplog.set_level(logging.WARNING)
        caplog.clear()
        entries = rig.proc.flush_rejections(T0 + 1, everything=True)
        assert [(e.kind, e.data) for e in entries] == [
            ("command-rejected", {"reason": "malformed", "suppressed": 2})]
        assert [r.getMessage() for r in caplog.records] == [
            "2 more command rejections (malformed) were suppressed by the rate limit "
            "(at most one logged per reason every 60 s)"]
    finally:
        rig.db.close()


# ---- replies: what they reveal, and to whom ------------------------------------------------------


def test_a_reply_is_sealed_to_the_owners_only(rig: Members) -> None:
    resp = rig.run("consent.show")
    token = rig.proc.respond(resp, T0 + 0.9)
    opened = rig.opened(token, rig.owner_id)
    assert (opened.ok, opened.result, opened.iat) == (True, {"grants": []}, int(T0))
    with pytest.raises(MessageError):
        rig.opened(token, rig.viewer_id)


def test_a_refusals_detail_is_sealed_and_cut_to_1024_characters(rig: Members) -> None:
    token = sealed_reply(Response("jti-00000001", False, "failed", {}, "x" * 1500),
                         rig.consent, rig.device_key, T0)
    opened = rig.opened(token, rig.owner_id)
    assert (opened.reason, opened.detail) == ("failed", "x" * 1024)


def test_without_an_owner_only_the_code_is_sent(tmp_path: Path) -> None:
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        key = Ed25519PrivateKey.generate()
        consent = ConsentStore(db)
        consent.add_owner(public_raw(Ed25519PrivateKey.generate()),
                          str(Identity.generate().recipient), "viewer", T0)
        token = sealed_reply(Response("jti-00000001", False, "unknown-owner", {"x": 1},
                                      "iss 'k-...' is not a paired key"), consent, key, T0)
        opened = verify_reply(token, key.public_key())
        assert (opened.ok, opened.reason, opened.sealed, opened.detail) == (
            False, "unknown-owner", False, "")
    finally:
        db.close()


def test_a_response_without_a_jti_gets_no_reply(rig: Members) -> None:
    with pytest.raises(ValueError, match=r"^a command without a valid jti gets no reply$"):
        sealed_reply(Response(None, False, "malformed"), rig.consent, rig.device_key, T0)


def test_a_reply_over_the_limit_raises_when_the_caller_splits(rig: Members) -> None:
    resp = Response("jti-00000001", True, None, {"ledger": "x" * 4000})
    with pytest.raises(MessageTooLargeError):
        sealed_reply(resp, rig.consent, rig.device_key, T0, max_bytes=2000)
    assert rig.opened(sealed_reply(resp, rig.consent, rig.device_key, T0, max_bytes=20000),
                      rig.owner_id).result == {"ledger": "x" * 4000}


def test_a_reply_too_large_to_send_becomes_a_sealed_failed_refusal(
        rig: Members, caplog: pytest.LogCaptureFixture) -> None:
    resp = Response("jti-00000001", True, None, {"ledger": "x" * (9 << 20)})
    caplog.set_level(logging.ERROR)
    token = sealed_reply(resp, rig.consent, rig.device_key, T0 + 0.5)
    opened = rig.opened(token, rig.owner_id)
    assert (opened.jti, opened.ok, opened.reason, opened.result, opened.iat) == (
        "jti-00000001", False, "failed", {}, int(T0))
    assert opened.detail.startswith("reply to jti-00000001") and len(opened.detail) <= 1024
    assert [r.getMessage() for r in caplog.records] == [
        f"the reply to jti-00000001 is too large to send: {opened.detail}"]


# ---- the bucket's part of a forget ---------------------------------------------------------------


def test_the_bucket_reply_says_what_was_deleted_there(rig: Members) -> None:
    body = ForgetResultBody("jti-00000001", clips=("c1",), objects=("d/c1.age",),
                            failed=("d/c2.age",))
    [token] = bucket_replies(body, rig.consent, rig.device_key, T0)
    opened = rig.opened(token, rig.owner_id)
    assert (opened.jti, opened.ok, opened.iat) == ("jti-00000001", True, int(T0))
    assert opened.result == {"stage": "bucket", "request": "jti-00000001", "clips": ["c1"],
                             "objects": ["d/c1.age"], "failed": ["d/c2.age"], "last": True}
    with pytest.raises(MessageError):
        rig.opened(token, rig.viewer_id)


def test_a_long_bucket_reply_is_split_to_fit_the_broker_in_order(rig: Members) -> None:
    clips = tuple(f"clip{i:05d}" for i in range(10))
    objects = tuple(f"devices/d/clips/{i:05d}-" + "o" * 90 + ".age" for i in range(2500))
    failed = ("devices/d/clips/stuck.age",)
    tokens = bucket_replies(ForgetResultBody("jti-00000001", clips, objects, failed),
                            rig.consent, rig.device_key, T0)
    assert len(tokens) > 1
    assert all(len(t) <= MAX_MESSAGE_BYTES for t in tokens)
    results = [rig.opened(t, rig.owner_id).result for t in tokens]
    assert [r["last"] for r in results] == [False] * (len(tokens) - 1) + [True]
    assert {r["stage"] for r in results} == {"bucket"}
    assert {r["request"] for r in results} == {"jti-00000001"}
    for name, items in (("clips", clips), ("objects", objects), ("failed", failed)):
        assert tuple(i for r in results for i in r[name]) == items


# ---- what a refusal records and logs -------------------------------------------------------------


def test_a_refusal_is_recorded_and_logged_then_rate_limited(
        rig: Members, caplog: pytest.LogCaptureFixture) -> None:
    """The first refusal per reason and window: a WARNING and a ledger entry naming the reason,
    the detail, the (well-formed) iss and jti; the next ones within the window only a DEBUG
    line; the first after the window says how many were suppressed."""
    caplog.set_level(logging.DEBUG, logger="agent.device.owner_commands")
    why = "jti must be 8..64 characters of A-Z a-z 0-9 . _ ~ -"
    for now in (T0, T0 + 1, T0 + 61):
        rig.run("consent.show", jti="short", now=now)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"command rejected: bad-jti: {why}"),
        ("DEBUG", f"command rejected (not recorded, rate limit): bad-jti: {why}"),
        ("WARNING", f"command rejected: bad-jti: {why} (1 more command rejections (bad-jti) "
                    "were suppressed before this one)")]
    entries = [e.data for e in rig.ledger.entries() if e.kind == "command-rejected"]
    kid = rig.kid(rig.owner_key)
    assert entries == [
        {"reason": "bad-jti", "detail": why, "iss": kid, "jti": None, "suppressed": 0},
        {"reason": "bad-jti", "detail": why, "iss": kid, "jti": None, "suppressed": 1}]


def test_a_refusal_records_a_well_formed_jti_and_no_malformed_iss(rig: Members) -> None:
    iss = "k-" + "A" * 16  # not a key id (upper case): not repeated into the ledger
    token = jws.sign(rig.claims("consent.show", iss=iss, jti="jti-good-0001"), rig.owner_key,
                     kid=iss)
    resp = rig.proc.handle(token, rig.topic, T0)
    assert (resp.jti, resp.reason) == ("jti-good-0001", "unknown-owner")
    entry = rig.ledger.entries()[-1].data
    assert (entry["iss"], entry["jti"]) == (None, "jti-good-0001")


# ---- the clock checks' edges and what a skewed narrowing command logs ---------------------------


def test_the_clock_window_edges(rig: Members) -> None:
    now = int(T0)
    assert rig.run("consent.show", iat=now + 300, exp=now + 900).ok  # 300 s ahead: in
    assert rig.run("consent.show", iat=now - 599, exp=now + 1).ok  # 600 s lifetime: in
    late = rig.run("consent.show", iat=now - 10, exp=now + 591)
    assert (late.reason, late.detail) == ("bad-lifetime", "exp - iat = 601, allowed 0..600 s")
    ahead = rig.run("consent.show", iat=now + 301, exp=now + 901)
    assert (ahead.reason, ahead.detail) == (
        "from-future", f"iat {now + 301} is ahead of the device clock {now}")
    notime = rig.run("consent.show", iat=str(now))
    assert (notime.reason, notime.detail) == ("bad-time",
                                              "iat and exp must be integer unix seconds")


@pytest.mark.parametrize(("skew", "words"), [(-3600, "3600 s behind"), (3600, "3600 s ahead of")])
def test_a_skewed_narrowing_command_logs_the_difference(
        rig: Members, caplog: pytest.LogCaptureFixture, skew: int, words: str) -> None:
    caplog.set_level(logging.INFO, logger="agent.device.owner_commands")
    iat = int(T0) + skew
    assert rig.run("consent.revoke", {"scopes": None}, iat=iat, exp=iat + 300).ok
    assert (f"a command that only narrows consent is accepted outside the clock window: the "
            f"owner's clock is about {words} the device's") in [
        r.getMessage() for r in caplog.records]


def test_a_registered_commands_narrows_sees_the_args_and_must_say_true(rig: Members) -> None:
    """``narrows`` gets the command's args and only ``True`` (not any truthy value) waives the
    clock window."""
    seen: list[Any] = []

    def narrows(args: dict[str, Any]) -> Any:
        seen.append(args)
        return {"sealed": True, "truthy": 1}.get(args.get("mode"), False)

    calls: list[tuple[str, dict[str, Any], str, float]] = []

    def action(by: str, args: dict[str, Any], jti: str, now: float) -> dict[str, Any]:
        calls.append((by, args, jti, now))
        return {"mode is": args["mode"]}

    rig.proc.register("test.mode", frozenset({"mode"}), lambda _a: None, action, narrows=narrows)
    iat = int(T0) - 3600
    done = rig.run("test.mode", {"mode": "sealed"}, iat=iat, exp=iat + 300)
    assert (done.ok, done.result) == (True, {"mode is": "sealed"})
    assert calls == [(rig.kid(rig.owner_key), {"mode": "sealed"}, done.jti, T0)]
    assert rig.run("test.mode", {"mode": "truthy"}, iat=iat, exp=iat + 300).reason == "expired"
    assert seen == [{"mode": "sealed"}, {"mode": "truthy"}]
    with pytest.raises(ValueError, match=r"^command 'test.mode' is already defined$"):
        rig.proc.register("test.mode", frozenset(), lambda _a: None, action)


# ---- the header check on its own (jws.peek refuses most of these first: pinned here too) -------


@pytest.mark.parametrize(("header", "claims", "reason", "detail"), [
    ({"alg": "HS256"}, {}, "bad-alg", "alg 'HS256' refused, only EdDSA"),
    ({}, {}, "bad-alg", "alg None refused, only EdDSA"),
    ({"alg": "EdDSA", "x1": 1, "x2": 1, "x3": 1, "x4": 1, "x5": 1, "x6": 1}, {}, "bad-header",
     "unknown header fields ['x1', 'x2', 'x3', 'x4', 'x5']"),
    ({"alg": "EdDSA", "typ": "jwt"}, {}, "bad-header",
     "typ must be JWT and kid, if present, must equal iss"),
    ({"alg": "EdDSA", "typ": None}, {}, "bad-header",
     "typ must be JWT and kid, if present, must equal iss"),
    ({"alg": "EdDSA", "kid": "k-aaaaaaaaaaaaaaaa"}, {"iss": "k-bbbbbbbbbbbbbbbb"}, "bad-header",
     "typ must be JWT and kid, if present, must equal iss"),
    ({"alg": "EdDSA", "kid": None}, {"iss": "k-bbbbbbbbbbbbbbbb"}, "bad-header",
     "typ must be JWT and kid, if present, must equal iss"),
])
def test_the_header_check_refuses_on_its_own(header: dict[str, Any], claims: dict[str, Any],
                                             reason: str, detail: str) -> None:
    with pytest.raises(cd._Reject) as e:
        cd._check_header(header, claims)
    assert (e.value.reason, e.value.detail) == (reason, detail)


@pytest.mark.parametrize("header", [{"alg": "EdDSA"}, {"alg": "EdDSA", "typ": "JWT"},
                                    {"alg": "EdDSA", "kid": "k-aaaaaaaaaaaaaaaa"}])
def test_the_header_check_accepts_typ_jwt_or_none_and_kid_equal_to_iss(
        header: dict[str, Any]) -> None:
    cd._check_header(header, {"iss": "k-aaaaaaaaaaaaaaaa"})


def test_a_refusals_detail_is_cut_to_200_characters_in_the_ledger(rig: Members) -> None:
    extra = {"y" * 60 + str(i): 1 for i in range(5)}
    resp = rig.run("consent.show", **extra)
    assert resp.reason == "unknown-field" and len(resp.detail) > 200
    assert rig.ledger.entries()[-1].data["detail"] == resp.detail[:200]


# ---- what each refusal says (the owner reads it, sealed, to learn what to fix) -----------------


def test_each_refusal_names_what_was_wrong(rig: Members) -> None:
    def said(token: Any, topic: str | None = None) -> tuple[str | None, str]:
        resp = rig.proc.handle(token, topic or rig.topic, T0)
        return resp.reason, resp.detail

    assert said(123) == ("malformed", "token is a int, not text")
    assert said("é" * 4097) == ("oversized", "8194 bytes, the limit is 8192")
    assert said("é" * 10) == ("not-ascii", "a JWS compact token is ASCII")
    assert said("a" * 8192)[0] == "malformed"  # exactly the limit: not oversized
    assert said("abc") == ("malformed", "a compact JWS has 3 dot-separated parts, this one has 1")
    hs = b64u(b'{"alg":"HS256"}') + ".e30.c2ln"
    assert said(hs) == ("bad-alg", "alg 'HS256' refused, only EdDSA")
    assert said(rig.token(aud="d-elsewhere")) == (
        "wrong-audience", "aud 'd-elsewhere' is not this device")
    assert said(rig.token(), "doorward/other/cmd") == (
        "wrong-topic", f"signed for topic {rig.topic!r}")
    assert said(rig.token("no.such")) == (
        "unknown-command", "cmd 'no.such'; known: ['consent.grant', 'consent.revoke', "
        "'consent.show', 'ledger.get', 'owner.add', 'owner.remove']")
    assert said(rig.token("consent.show", [])) == ("bad-args", "args must be a JSON object")
    assert said(rig.token("consent.revoke", {"scopes": None, "x": 1})) == (
        "unknown-field", "consent.revoke args: unknown fields ['x']")


def test_a_registered_check_sees_the_args_and_refuses_with_its_reason(rig: Members) -> None:
    def check(args: dict[str, Any]) -> str | None:
        return None if args.get("n") == 1 else f"n must be 1, not {args.get('n')!r}"

    rig.proc.register("test.check", frozenset({"n"}), check, lambda *_: {})
    refused = rig.run("test.check", {"n": 2})
    assert (refused.reason, refused.detail) == ("bad-args", "n must be 1, not 2")
    assert rig.run("test.check", {"n": 1}).ok


def test_an_action_that_fails_is_answered_failed_and_logged(
        rig: Members, caplog: pytest.LogCaptureFixture) -> None:
    def action(*_: Any) -> dict[str, Any]:
        raise StoreError("the card is full")

    rig.proc.register("test.fail", frozenset(), lambda _a: None, action)
    caplog.set_level(logging.INFO, logger="agent.device.owner_commands")
    failed = rig.run("test.fail", {})
    assert (failed.jti, failed.ok, failed.reason, failed.result, failed.detail) == (
        failed.jti, False, "failed", {}, "the card is full")
    assert failed.jti is not None
    done = rig.run("consent.show")
    assert [r.getMessage() for r in caplog.records] == [
        f"command test.fail (jti {failed.jti}) failed after its counter was stored: "
        "the card is full",
        f"command consent.show from {rig.kid(rig.owner_key)} (jti {done.jti}) done"]
