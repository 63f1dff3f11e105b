"""Findings 6 and 7 of issue 12: nothing readable leaves the device without consent.

A stranger on the broker (any client allowed to subscribe to ``#``) must not learn the device's
state from the answers to owner commands: replies carrying state (the ledger, consent, members,
forget results) are sealed to the owners like events, and only the accept/refuse code stays
readable. The results of an erasure go to the owner as a sealed reply, never as a broadcast. The
retained ``status`` message counts nothing: two of them around any number of events look the same
but for their time.

The owner's own commands on ``doorward/<id>/cmd`` are signed, not encrypted (the device has no
key to open them with): they are out of this test's scope and named in the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.device_rig import DeviceRig, Stranger, jws_claims, readable
from tests.helpers import wait_for
from tests.servers import MOSQUITTO_MISSING, Mosquitto, mosquitto_path
from tests.servers_s3 import SeaweedS3
from tests.unit.test_commands_device import T0, Rig, grant_args, new_owner_args
from uplink.agekeys import Identity
from uplink.checkpoint import is_checkpoint_key
from uplink.keys import key_id_for, public_raw

# ---- in process: the reply the device would publish ------------------------------------------


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Rig, Identity]]:
    r = Rig(tmp_path / "device.sqlite")
    ident = Identity.generate()
    with r.db.transaction() as db:  # the owner's recipient is one whose identity we hold
        db.execute("UPDATE owners SET recipient = ? WHERE role = 'owner'", (str(ident.recipient),))
    yield r, ident
    r.db.close()


def secrets_of(r: Rig, ident: Identity) -> list[str]:
    return [key_id_for(public_raw(r.owner_key)), key_id_for(public_raw(r.viewer_key)),
            str(ident.recipient), r.recipient, "consent-grant", "grants", '"clips"', '"events"']


@pytest.mark.parametrize("cmd, args", [("ledger.get", None), ("consent.show", None),
                                       ("consent.grant", grant_args(["clips", "events"])),
                                       ("consent.revoke", {"scopes": None})])
def test_replies_that_carry_state_are_sealed(rig: tuple[Rig, Identity], cmd: str,
                                             args: Any) -> None:
    r, ident = rig
    assert r.proc.handle(r.token("consent.grant", grant_args(["clips", "events"])), r.topic, T0).ok
    resp = r.proc.handle(r.token(cmd, args), r.topic, T0 + 1)
    assert resp.ok, resp.detail
    token = r.proc.respond(resp, T0 + 1)
    text = readable(token.encode())
    leaked = [s for s in secrets_of(r, ident) if s in text]
    assert leaked == [], f"readable in the {cmd} reply: {leaked}"
    claims = jws_claims(token.encode())
    assert claims is not None and claims["ok"] is True and "result" not in claims

    from uplink.replies import verify_reply  # the owner's side: opened with their identity

    opened = verify_reply(token, public_raw(r.device_key), identities=[ident])
    assert opened.ok and opened.jti == resp.jti and opened.result == resp.result


def test_the_reply_to_adding_a_member_hides_who(rig: tuple[Rig, Identity]) -> None:
    r, ident = rig
    key, args = new_owner_args("viewer")
    resp = r.proc.handle(r.token("owner.add", args), r.topic, T0)
    assert resp.ok, resp.detail
    token = r.proc.respond(resp, T0)
    text = readable(token.encode())
    for secret in (key_id_for(public_raw(key)), args["recipient"], args["public_key"], "viewer"):
        assert secret not in text
    from uplink.replies import verify_reply

    opened = verify_reply(token, public_raw(r.device_key), identities=[ident])
    assert opened.result["recipient"] == args["recipient"]


def test_refusals_show_only_the_code(rig: tuple[Rig, Identity]) -> None:
    """A refusal's detail can name keys and counters ("ctr 3 is not above the stored 7"): only the
    reason code is readable, the detail goes to the owners sealed."""
    r, ident = rig
    assert r.proc.handle(r.token("consent.show", ctr=7), r.topic, T0).ok
    resp = r.proc.handle(r.token("consent.show", ctr=3), r.topic, T0)
    assert (resp.ok, resp.reason) == (False, "stale-counter")
    token = r.proc.respond(resp, T0)
    claims = jws_claims(token.encode())
    assert claims is not None and claims["reason"] == "stale-counter"
    assert set(claims) == {"v", "iss", "iat", "jti", "ok", "reason", "sealed"}
    assert "stored" not in readable(token.encode())

    from uplink.replies import verify_reply

    opened = verify_reply(token, public_raw(r.device_key), identities=[ident])
    assert opened.reason == "stale-counter" and "stored 7" in opened.detail


def test_a_forgets_bucket_result_is_sealed_and_split_to_fit(rig: tuple[Rig, Identity]) -> None:
    """What the uploads lane erased goes to the owners as further sealed replies to the forget,
    each within a fleet broker's 128 KB, never as a readable message."""
    from agent.device.owner_commands import bucket_replies
    from uplink.messages import MAX_MESSAGE_BYTES
    from uplink.replies import ForgetResultBody, verify_reply

    r, ident = rig
    keys = tuple(f"doorward/{r.device_id}/2026/12/03/c{i:05d}.mp4.age" for i in range(4000))
    result = ForgetResultBody("jti-forget-0001", clips=("c00001",), objects=keys,
                              failed=(keys[0],))
    tokens = bucket_replies(result, r.consent, r.device_key, T0)
    assert len(tokens) > 1 and all(len(t) <= MAX_MESSAGE_BYTES for t in tokens)
    opened = [verify_reply(t, public_raw(r.device_key), identities=[ident]) for t in tokens]
    assert all(o.jti == "jti-forget-0001" and o.result["stage"] == "bucket" for o in opened)
    assert [o.result["last"] for o in opened] == [False] * (len(tokens) - 1) + [True]
    assert tuple(k for o in opened for k in o.result["objects"]) == keys
    assert [c for o in opened for c in o.result["clips"]] == ["c00001"]
    for t in tokens:
        text = readable(t.encode())
        assert "c00001" not in text and "mp4.age" not in text and "2026/12/03" not in text


# ---- end to end: a stranger on the broker during ledger, consent and forget commands -----------


@pytest.fixture
def device(tmp_path: Path, seaweed: SeaweedS3) -> Iterator[DeviceRig]:
    if mosquitto_path() is None:
        pytest.skip(MOSQUITTO_MISSING)
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    bucket = seaweed.create_bucket("sealed")
    s3 = (f'[s3]\nbucket = "{bucket}"\nendpoint_url = "{seaweed.url}"\n'
          'addressing_style = "path"\n')
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        dev = DeviceRig.provision(tmp_path, broker, s3_config=s3, env=env)
        dev.env["BUCKET"] = bucket
        yield dev
    finally:
        broker.stop()


def bucket_keys(seaweed: SeaweedS3, bucket: str) -> list[str]:
    """The bucket's objects, but for the ledger checkpoints (counts and hashes that a forget keeps
    on purpose: they are the record of what was disclosed, uplink/checkpoint.py)."""
    pages = seaweed.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", [])
                  if not is_checkpoint_key(o["Key"]))


@pytest.mark.slow
def test_a_stranger_on_the_broker_learns_no_state(device: DeviceRig, seaweed: SeaweedS3,
                                                  tmp_path: Path) -> None:
    bucket = device.env["BUCKET"]
    me = json.loads(device.owner("show", "--json").stdout)
    stranger = Stranger(device.broker.url)
    with device.running():
        device.owner("consent", "grant", "--scopes", "events,snapshots,clips", "--until-revoked")
    device.run_to_end("visit")  # events, a sealed clip and snapshot uploaded, disclosed
    keys = bucket_keys(seaweed, bucket)
    clip_ids = [c["id"] for c in device.device_json("clips", "list")["clips"]]
    assert keys and clip_ids
    with device.running():
        shown = json.loads(device.owner("consent", "show", "--json").stdout)
        assert sorted(g["scope"] for g in shown["grants"]) == ["clips", "events", "snapshots"]
        ledger = tmp_path / "ledger.jsonl"
        device.owner("ledger", "fetch", "-o", str(ledger))
        assert "disclosure" in ledger.read_text()
        device.owner("consent", "revoke", "--scopes", "clips,snapshots")
        forgot = device.owner("forget", "--all", "--timeout", "30").stdout
        wait_for(lambda: bucket_keys(seaweed, bucket) == [], timeout=30, what="the erasure")
        stranger.drain(1.0)  # whatever the device says about it, while it still runs
    got = stranger.stop()

    secrets = [me["key_id"], me["recipient"], bucket, *keys, *clip_ids, "consent-grant",
               "consent-revoke", "disclosure", "erasure", '"grants"', '"clips"', '"snapshots"',
               '"events"']
    assert any(m.topic.endswith("/resp") for m in got)
    for m in got:
        if m.topic.endswith("/cmd"):
            continue  # the owner's own signed commands (see the module docstring)
        text = readable(m.payload)
        leaked = [s for s in secrets if s in text]
        assert leaked == [], f"readable on {m.topic}: {leaked}\n{text[:2000]}"
    for key in keys:  # the owner reads what was erased, opened with their identity
        assert key in forgot, forgot

    # Three daemon runs, the visit's events between the first two: the retained status of each
    # run differs only in its time and uptime, so it counts nothing.
    statuses = [jws_claims(m.payload) for m in got
                if m.topic.endswith("/status") and m.payload != b"offline"]
    assert len(statuses) >= 3 and all(s is not None for s in statuses)
    shapes = set()
    for s in statuses:
        assert s is not None
        body = {k: v for k, v in s.get("body", {}).items() if k != "uptime_s"}
        shapes.add(json.dumps({**{k: v for k, v in s.items() if k != "iat"}, "body": body},
                              sort_keys=True))
    assert len(shapes) == 1, shapes
