"""The send-time checks, driven in process without threads or servers (tests/unit/sendrig.py):
what reaches the bucket, what the ledger records field by field (``disclosure``, ``withdrawn``,
``outbox-drop``) and what the worker does with the item, for every way an upload ends.

Written for mutation testing (``scripts/mutation agent/delivery/queueing.py``,
``agent/delivery/outbox_worker.py``):
each test pins an outcome that a broken consent decision would change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.links import ClipDelivered, LinkState
from tests.unit.sendrig import BUCKET, CLIP_ID, PREFIX, PartStore, SendRig, send_rig
from uplink.manifest import unseal_times, verify_manifest
from uplink.objectstore import file_sha256
from uplink.s3_errors import S3AuthError, S3Error, S3IntegrityError, S3Unavailable


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SendRig]:
    with send_rig(tmp_path) as r:
        yield r


def keys_of(rig: SendRig, clip_id: str = CLIP_ID) -> dict[str, str]:
    day = datetime.now(UTC).date()
    base = f"{PREFIX}/{rig.identity.device_id}/{day:%Y}/{day:%m}/{day:%d}/{clip_id}"
    return {"clip": base + ".mp4.age", "snapshot": base + ".jpg.age",
            "manifest": base + ".manifest.jws"}


def grants_json(rig: SendRig) -> list[dict[str, Any]]:
    return [g.to_json() for g in rig.consent.in_force(time.time())
            if g.scope in ("clips", "snapshots")]


def state_of(rig: SendRig, item_id: int) -> tuple[str, str | None]:
    item = rig.outbox.get(item_id)
    assert item is not None
    return item.state, item.drop_reason


# ---- complete uploads ---------------------------------------------------------------------------


def test_a_clips_upload_stores_clip_snapshot_manifest_and_records_the_disclosure(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots", "events"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips")
    assert rig.step() == 0.0
    k = keys_of(rig)
    assert sorted(rig.store.objects) == sorted(k.values())
    assert rig.store.objects[k["clip"]] == clip.read_bytes()
    assert rig.store.objects[k["snapshot"]] == snap.read_bytes()  # type: ignore[union-attr]
    assert state_of(rig, item.id) == ("sent", None)
    assert rig.entries() == [("disclosure", {
        "clip_id": CLIP_ID, "bucket": BUCKET, "scope": "clips",
        "objects": [k["clip"], k["snapshot"], k["manifest"]], "grants": grants_json(rig)})]
    assert [g["scope"] for g in grants_json(rig)] == ["clips", "snapshots"]  # not events
    manifest = verify_manifest(rig.store.objects[k["manifest"]], rig.identity.key.public_key())
    assert manifest.clip_id == CLIP_ID and manifest.seq == 1 and manifest.prev_manifest == "0" * 64
    assert manifest.recipients == (rig.recipient,)
    assert set(manifest.objects) == {"clip", "snapshot"}
    assert manifest.objects["clip"].key == k["clip"]
    assert manifest.objects["clip"].size == clip.stat().st_size
    assert manifest.objects["clip"].sha256 == file_sha256(clip)
    assert manifest.objects["snapshot"].key == k["snapshot"]
    assert unseal_times(manifest, [rig.owner]) == {
        "started_at": "2026-12-03T10:00:00Z", "ended_at": "2026-12-03T10:00:10Z",
        "duration_s": 10.0}
    assert abs(datetime.fromisoformat(manifest.uploaded_at).timestamp() - time.time()) < 60
    inbox = rig.inbox()
    assert ClipDelivered(CLIP_ID) in inbox
    assert [x.state for x in inbox if isinstance(x, LinkState)] == ["ok"]
    assert all(x.link == "bucket" for x in inbox if isinstance(x, LinkState))
    assert all(abs(x.at - time.time()) < 60 for x in inbox if isinstance(x, LinkState))
    # every 64 KiB of each body was checked, and before the first byte
    assert rig.store.checks >= 3 + 2


def test_the_manifest_chain_goes_on_from_one_upload_to_the_next(rig: SendRig,
                                                                 tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    rig.queue(rig.spec(clip, None, clip_id="c1"), "clips")
    rig.queue(rig.spec(clip, None, clip_id="c2"), "clips")
    rig.step()
    rig.step()
    pub = rig.identity.key.public_key()
    m1 = verify_manifest(rig.store.objects[keys_of(rig, "c1")["manifest"]], pub)
    token2 = rig.store.objects[keys_of(rig, "c2")["manifest"]]
    m2 = verify_manifest(token2, pub)
    from uplink.manifest import token_hash
    assert (m1.seq, m2.seq) == (1, 2)
    assert m2.prev_manifest == token_hash(rig.store.objects[keys_of(rig, "c1")["manifest"]])
    assert rig.db.get_setting("manifest_chain", "") == f"2:{token_hash(token2)}"


def test_clips_consent_alone_sends_no_snapshot(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, snap = rig.files(tmp_path)
    rig.queue(rig.spec(clip, snap), "clips")
    rig.step()
    k = keys_of(rig)
    assert sorted(rig.store.objects) == sorted([k["clip"], k["manifest"]])
    (kind, data), = rig.entries()
    assert kind == "disclosure" and data["objects"] == [k["clip"], k["manifest"]]
    manifest = verify_manifest(rig.store.objects[k["manifest"]], rig.identity.key.public_key())
    assert set(manifest.objects) == {"clip"}


def test_a_snapshots_upload_sends_the_snapshot_and_never_the_clip(rig: SendRig,
                                                                  tmp_path: Path) -> None:
    rig.grant(["snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "snapshots")
    rig.step()
    k = keys_of(rig)
    assert sorted(rig.store.objects) == sorted([k["snapshot"], k["manifest"]])
    assert rig.entries() == [("disclosure", {
        "clip_id": CLIP_ID, "bucket": BUCKET, "scope": "snapshots",
        "objects": [k["snapshot"], k["manifest"]], "grants": grants_json(rig)})]
    assert state_of(rig, item.id) == ("sent", None)


def test_a_snapshots_upload_without_a_snapshot_is_dropped_and_sends_nothing(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["snapshots"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "snapshots")
    rig.step()
    assert rig.store.objects == {}
    state, reason = state_of(rig, item.id)
    assert state == "dropped"
    assert reason == ("upload failed permanently: nothing left to upload under the consent "
                      "in force")
    (kind, data), = rig.entries()
    assert kind == "outbox-drop" and data["reason"] == reason
    assert data["items"][0]["clip_id"] == CLIP_ID and data["items"][0]["scope"] == "snapshots"


# ---- consent gone before anything left ----------------------------------------------------------


@pytest.mark.parametrize("scope", ["clips", "snapshots"])
def test_an_upload_without_consent_is_dropped_unsent_as_an_outbox_drop(
        rig: SendRig, tmp_path: Path, scope: str) -> None:
    rig.grant(["clips", "snapshots"] if scope == "snapshots" else ["snapshots"])
    rig.revoke([scope])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), scope)
    assert rig.step() == 0.0
    assert rig.store.objects == {} and rig.store.requests == []
    assert state_of(rig, item.id) == ("dropped", "no consent")
    assert rig.entries() == [("outbox-drop", {"reason": "no consent", "items": [
        {"id": item.id, "kind": "upload", "scope": scope, "created_at": item.created_at,
         "attempts": 0, "clip_id": CLIP_ID}]})]


def test_consent_expired_by_the_workers_clock_stops_the_upload_before_it_starts(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"], for_s=60)
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    rig.skew_s = 120
    rig.step()
    assert rig.store.requests == []
    assert state_of(rig, item.id) == ("dropped", "no consent")


def test_revoked_before_the_first_byte_nothing_is_stored_and_no_withdrawal(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    rig.store.before_put = lambda key: rig.revoke(["clips"])
    rig.step()
    assert rig.store.objects == {}
    assert state_of(rig, item.id) == ("dropped", "no consent")
    assert rig.kinds() == ["outbox-drop"]
    assert [r for r in rig.store.requests if r.startswith("DELETE")] == []


# ---- consent gone while objects are in the bucket ------------------------------------------------


def test_revoked_during_the_snapshot_the_stored_clip_is_withdrawn_and_recorded(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips")
    k = keys_of(rig)
    grants = grants_json(rig)

    def revoke_at_snapshot(key: str) -> None:
        if key == k["snapshot"]:
            rig.revoke(["clips", "snapshots"])

    rig.store.before_put = revoke_at_snapshot
    assert rig.step() == 0.0
    assert rig.store.objects == {}
    assert f"DELETE {k['clip']}" in rig.store.requests
    state, reason = state_of(rig, item.id)
    assert state == "dropped" and reason is not None
    assert reason.startswith("withdrawn: consent for clips withdrawn; abort the upload; "
                             "withdrew 1 object(s) and 0 partial upload(s)")
    assert rig.entries() == [
        ("disclosure", {"clip_id": CLIP_ID, "bucket": BUCKET, "objects": [k["clip"]],
                        "scope": "clips", "grants": grants, "complete": False}),
        ("withdrawn", {"clip_id": CLIP_ID, "bucket": BUCKET, "objects": [k["clip"]],
                       "aborted": [], "reason": "consent for clips withdrawn; abort the upload"}),
    ]
    assert rig.inbox() == []  # not delivered, and the bucket did not fail


def test_revoked_before_the_manifest_every_object_is_withdrawn(rig: SendRig,
                                                               tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    rig.queue(rig.spec(clip, snap), "clips")
    k = keys_of(rig)
    real = rig.store.put_bytes

    def revoke_then_put(key: str, data: bytes, content_type: str = "") -> Any:
        raise AssertionError("the manifest must not be sent after a revocation")

    orig_put = rig.store.put_file

    def put_file(key: str, path: Path, **kw: Any) -> Any:
        out = orig_put(key, path, **kw)
        if key == k["snapshot"]:
            rig.revoke(["clips"])
        return out

    rig.store.put_file = put_file  # type: ignore[method-assign]
    rig.store.put_bytes = revoke_then_put  # type: ignore[assignment,method-assign]
    rig.step()
    del real
    assert rig.store.objects == {}
    (k1, disclosure), (k2, withdrawn) = rig.entries()
    assert (k1, k2) == ("disclosure", "withdrawn")
    assert disclosure["objects"] == [k["clip"], k["snapshot"]]
    assert withdrawn["objects"] == sorted([k["clip"], k["snapshot"]])


def test_a_snapshots_only_revocation_stops_just_the_snapshot_of_a_clips_upload(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path, snap_size=200_000)
    item = rig.queue(rig.spec(clip, snap), "clips")
    k = keys_of(rig)
    rig.store.before_put = lambda key: rig.revoke(["snapshots"]) if key == k["snapshot"] else None
    rig.step()
    assert sorted(rig.store.objects) == sorted([k["clip"], k["manifest"]])
    assert state_of(rig, item.id) == ("sent", None)
    (kind, data), = rig.entries()
    assert kind == "disclosure" and data["objects"] == [k["clip"], k["manifest"]]
    manifest = verify_manifest(rig.store.objects[k["manifest"]], rig.identity.key.public_key())
    assert set(manifest.objects) == {"clip"}


def test_a_snapshots_revocation_during_a_snapshots_upload_withdraws_nothing_sent(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["snapshots"])
    clip, snap = rig.files(tmp_path, snap_size=200_000)
    item = rig.queue(rig.spec(clip, snap), "snapshots")
    rig.store.before_put = lambda key: rig.revoke(["snapshots"])
    rig.step()
    assert rig.store.objects == {}
    state, reason = state_of(rig, item.id)
    assert state == "dropped" and reason == "no consent"
    assert rig.kinds() == ["outbox-drop"]


def test_a_factory_reset_mid_upload_withdraws_what_reached_the_bucket(
        rig: SendRig, tmp_path: Path) -> None:
    """The reset wipes the outbox under the lane: the item is gone at the next check."""
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips")
    k = keys_of(rig)
    rig.store.before_put = lambda key: rig.outbox.wipe() if key == k["snapshot"] else None
    rig.step()
    assert rig.store.objects == {}
    assert rig.outbox.get(item.id) is None
    assert rig.kinds() == ["disclosure", "withdrawn"]
    withdrawn = rig.entries()[1][1]
    assert withdrawn["reason"] == f"outbox item {item.id} was dropped; abort the upload"
    assert withdrawn["objects"] == [k["clip"]]


# ---- failures: retried, or withdrawn -------------------------------------------------------------


def fail_at(rig: SendRig, suffix: str, exc: Exception) -> None:
    rig.store.fail_puts[suffix] = exc


@pytest.mark.parametrize(("exc", "error"), [
    (S3Unavailable("bucket away"), "TransientSendError: bucket away"),
    (S3IntegrityError("checksum"), "TransientSendError: checksum: will re-read and retry"),
    # refused credentials, or a clock the bucket's signature check finds skewed (a Pi without a
    # real-time clock): footage waits for the fix instead of being dropped (chaos: clock jumps)
    (S3AuthError("403 Forbidden"), "TransientSendError: 403 Forbidden; the upload waits in the "
     "outbox and is tried again"),
])
def test_a_transient_failure_keeps_the_item_and_its_stored_objects_for_a_retry(
        rig: SendRig, tmp_path: Path, exc: Exception, error: str) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips")
    fail_at(rig, ".jpg.age", exc)
    assert rig.step() > 0
    k = keys_of(rig)
    assert list(rig.store.objects) == [k["clip"]]
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.state == "queued" and cur.attempts == 1
    assert cur.last_error == error
    assert cur.progress is not None and cur.progress["stored"] == [k["clip"]]
    assert cur.progress["keys"] == k
    assert cur.progress["grants"] == grants_json(rig)
    assert rig.entries() == []
    inbox = rig.inbox()
    assert [(x.link, x.state) for x in inbox if isinstance(x, LinkState)] == [("bucket", "failed")]
    assert [x.error for x in inbox if isinstance(x, LinkState)] == [str(exc)]
    assert all(abs(x.at - time.time()) < 60 for x in inbox if isinstance(x, LinkState))
    # the retry picks up where it left off: the clip is not sent again
    rig.store.fail_puts.clear()
    rig.worker.step("uploads", rig.outbox, rig.ports)  # backoff not due yet: nothing happens
    rig.skew_s = 3000
    rig.grant(["clips", "snapshots"], for_s=7200)
    assert rig.step() == 0.0
    assert sorted(rig.store.objects) == sorted(k.values())
    assert rig.store.requests.count(f"PUT {k['clip']}") == 1
    assert rig.kinds() == ["disclosure"]


def test_a_stored_object_left_by_a_failed_attempt_is_withdrawn_after_a_revoke(
        rig: SendRig, tmp_path: Path) -> None:
    """The revoke's purge leaves the item (something left the device); the lane withdraws it."""
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips")
    fail_at(rig, ".jpg.age", S3Unavailable("away"))
    rig.step()
    grants = grants_json(rig)
    rig.revoke(["clips", "snapshots"])
    assert rig.delivery.purge(["clips", "snapshots"], "consent revoked") == 0
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.state == "queued"
    rig.skew_s = 3000  # past the backoff
    assert rig.step() == 0.0
    k = keys_of(rig)
    assert rig.store.objects == {}
    assert rig.store.requests[-1] == f"DELETE {k['clip']}"
    state, reason = state_of(rig, item.id)
    assert state == "dropped" and reason is not None and reason.startswith("withdrawn: ")
    assert rig.entries() == [
        ("disclosure", {"clip_id": CLIP_ID, "bucket": BUCKET, "objects": [k["clip"]],
                        "scope": "clips", "grants": grants, "complete": False}),
        ("withdrawn", {"clip_id": CLIP_ID, "bucket": BUCKET, "objects": [k["clip"]],
                       "aborted": [], "reason": "consent for clips withdrawn; abort the upload"}),
    ]


def test_a_permanent_failure_after_storing_withdraws_what_was_stored(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips")
    fail_at(rig, ".jpg.age", S3Error("AccessDenied: fix the bucket policy"))
    assert rig.step() == 0.0
    k = keys_of(rig)
    assert rig.store.objects == {}
    state, reason = state_of(rig, item.id)
    assert state == "dropped"
    assert reason == ("withdrawn: AccessDenied: fix the bucket policy; withdrew 1 object(s) and "
                      "0 partial upload(s)")
    assert rig.kinds() == ["disclosure", "withdrawn"]
    assert rig.entries()[1][1]["reason"] == "AccessDenied: fix the bucket policy"
    assert rig.entries()[1][1]["objects"] == [k["clip"]]


def test_a_permanent_failure_before_anything_left_is_an_outbox_drop(rig: SendRig,
                                                                     tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    fail_at(rig, ".mp4.age", S3Error("EntityTooLarge"))
    rig.step()
    assert state_of(rig, item.id) == ("dropped", "upload failed permanently: EntityTooLarge")
    assert rig.kinds() == ["outbox-drop"]
    assert [r for r in rig.store.requests if r.startswith("DELETE")] == []


def test_a_sealed_file_gone_before_the_first_attempt_is_dropped_as_never_sent(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    clip.unlink()
    rig.step()
    state, reason = state_of(rig, item.id)
    assert state == "dropped" and reason is not None
    assert reason.startswith("upload failed permanently: the sealed file is gone (evicted or "
                             "erased): ")
    assert rig.kinds() == ["outbox-drop"] and rig.store.requests == []


def test_a_bucket_failing_during_the_withdrawal_keeps_the_item_and_discloses_once(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips")
    k = keys_of(rig)
    rig.store.before_put = lambda key: rig.revoke(["clips"]) if key == k["snapshot"] else None
    real_delete = rig.store.delete

    def down(keys: Any) -> list[str]:
        raise S3Unavailable("bucket away")

    rig.store.delete = down  # type: ignore[method-assign]
    assert rig.step() > 0
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.state == "queued" and cur.attempts == 1
    assert cur.last_error is not None and cur.last_error.startswith(
        f"TransientSendError: withdrawing clip {CLIP_ID} from the bucket failed (bucket away)")
    assert cur.progress is not None and cur.progress["disclosed"] is True
    assert rig.kinds() == ["disclosure"]
    assert list(rig.store.objects) == [k["clip"]]
    rig.store.delete = real_delete  # type: ignore[method-assign]
    rig.skew_s = 3000
    rig.step()
    assert rig.store.objects == {}
    assert rig.kinds() == ["disclosure", "withdrawn"]  # disclosed once, not twice
    assert state_of(rig, item.id)[0] == "dropped"


# ---- expiry in the queue -------------------------------------------------------------------------


def test_an_upload_that_expires_after_storing_is_withdrawn_not_forgotten(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips", expires_at=time.time() + 600)
    fail_at(rig, ".jpg.age", S3Unavailable("away"))
    rig.step()
    rig.store.fail_puts.clear()
    rig.skew_s = 601
    assert rig.step() == 0.0
    assert rig.store.objects == {}
    state, reason = state_of(rig, item.id)
    assert state == "dropped" and reason is not None
    expected = f"outbox item {item.id} expired before it could be sent; abort the upload"
    assert reason.startswith(f"withdrawn: {expected}")
    assert rig.kinds() == ["disclosure", "withdrawn"]
    assert rig.entries()[1][1]["reason"] == expected


def test_an_upload_that_expires_before_storing_is_an_expired_outbox_drop(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips", expires_at=time.time() + 600)
    rig.skew_s = 601
    rig.step()
    assert state_of(rig, item.id) == ("dropped", "expired")
    assert rig.kinds() == ["outbox-drop"] and rig.store.requests == []


def test_an_expired_upload_whose_withdrawal_fails_is_withdrawn_when_the_bucket_is_back(
        rig: SendRig, tmp_path: Path) -> None:
    """Never forgotten while its objects may be in the bucket: the withdrawal is retried."""
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "clips", expires_at=time.time() + 600)
    fail_at(rig, ".jpg.age", S3Unavailable("away"))
    rig.step()
    real_delete = rig.store.delete

    def down(keys: Any) -> list[str]:
        raise S3Unavailable("bucket away")

    rig.store.delete = down  # type: ignore[method-assign]
    rig.skew_s = 601
    assert rig.step() > 0
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.state == "queued" and cur.attempts == 2
    rig.step()
    assert rig.outbox.get(item.id).state == "queued"  # type: ignore[union-attr]
    assert rig.kinds() == ["disclosure"]
    rig.store.delete = real_delete  # type: ignore[method-assign]
    rig.step()
    assert rig.store.objects == {}
    assert rig.kinds() == ["disclosure", "withdrawn"]
    assert state_of(rig, item.id)[0] == "dropped"


# ---- multipart uploads ---------------------------------------------------------------------------


def revoke_at(rig: SendRig, request: str, scopes: list[str]) -> None:
    """Revoke ``scopes`` the moment the store sees ``request`` (e.g. ``PART <key> 1``)."""
    real = rig.store.requests

    class Watch(list[str]):
        def append(self, r: str) -> None:
            super().append(r)
            if r == request:
                rig.revoke(scopes)

    rig.store.requests = Watch(real)  # type: ignore[attr-defined]



@pytest.fixture
def prig(tmp_path: Path) -> Iterator[SendRig]:
    with send_rig(tmp_path, store=PartStore()) as r:
        yield r


def test_a_revoke_between_parts_aborts_the_multipart_upload_and_records_it(
        prig: SendRig, tmp_path: Path) -> None:
    rig = prig
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path, clip_size=200_000, snap_size=1000)
    item = rig.queue(rig.spec(clip, snap), "clips")
    k = keys_of(rig)
    revoke_at(rig, f"PART {k['clip']} 1", ["clips", "snapshots"])
    rig.step()
    assert rig.store.objects == {}
    assert rig.store.requests[-1] == f"ABORT {k['clip']}"
    assert f"PART {k['clip']} 2" not in rig.store.requests
    state, reason = state_of(rig, item.id)
    assert state == "dropped"
    assert reason == ("withdrawn: consent for clips withdrawn; abort the upload; withdrew 0 "
                      "object(s) and 1 partial upload(s)")
    assert rig.entries() == [("withdrawn", {
        "clip_id": CLIP_ID, "bucket": BUCKET, "objects": [],
        "aborted": [{"key": k["clip"], "upload_id": f"up-{k['clip']}", "parts": 1}],
        "reason": "consent for clips withdrawn; abort the upload"})]


def test_a_multipart_upload_created_but_without_a_part_is_aborted_and_dropped_unsent(
        prig: SendRig, tmp_path: Path) -> None:
    rig = prig
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, clip_size=200_000, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    k = keys_of(rig)
    rig.store.fail_part = ((k["clip"], 1), S3Unavailable("away"))  # type: ignore[attr-defined]
    rig.step()
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.state == "queued"
    rig.revoke(["clips"])
    assert rig.delivery.purge(["clips"], "consent revoked") == 0  # an upload id: it left
    rig.skew_s = 3000
    rig.step()
    assert rig.store.requests[-1] == f"ABORT {k['clip']}"
    assert state_of(rig, item.id) == ("dropped", "no consent")
    assert rig.kinds() == ["outbox-drop"]


def test_a_multipart_upload_resumes_after_a_transient_failure(prig: SendRig,
                                                              tmp_path: Path) -> None:
    rig = prig
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, clip_size=200_000, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    k = keys_of(rig)
    rig.store.fail_part = ((k["clip"], 3), S3Unavailable("away"))  # type: ignore[attr-defined]
    rig.step()
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.progress is not None
    assert '"upload_id":"up-' in cur.progress["clip_parts"]
    rig.skew_s = 3000
    rig.grant(["clips"], for_s=7200)
    rig.step()
    assert rig.store.requests.count(f"PART {k['clip']} 1") == 1
    assert rig.store.requests.count(f"CREATE {k['clip']}") == 1
    assert state_of(rig, item.id) == ("sent", None)
    assert rig.kinds() == ["disclosure"]


def test_a_snapshots_revocation_aborts_just_the_snapshots_multipart_upload(
        prig: SendRig, tmp_path: Path) -> None:
    rig = prig
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path, clip_size=1000, snap_size=200_000)
    item = rig.queue(rig.spec(clip, snap), "clips")
    k = keys_of(rig)
    revoke_at(rig, f"PART {k['snapshot']} 1", ["snapshots"])
    rig.step()
    assert f"ABORT {k['snapshot']}" in rig.store.requests
    assert sorted(rig.store.objects) == sorted([k["clip"], k["manifest"]])
    assert state_of(rig, item.id) == ("sent", None)
    assert rig.kinds() == ["disclosure"]


def test_a_truncated_clip_says_so_in_its_sealed_times(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    rig.queue({**rig.spec(clip, None), "truncated": True, "duration_s": 4}, "clips")
    rig.step()
    manifest = verify_manifest(rig.store.objects[keys_of(rig)["manifest"]],
                               rig.identity.key.public_key())
    times = unseal_times(manifest, [rig.owner])
    assert times["truncated"] is True and times["duration_s"] == 4.0


# ---- the lane's other jobs -----------------------------------------------------------------------


def test_a_ledger_checkpoint_is_published_without_a_ledger_entry(rig: SendRig) -> None:
    rig.grant(["clips"])
    rig.ledger.append("outbox-drop", {"reason": "x", "items": []}, time.time())
    count = len(rig.ledger.entries())
    item = rig.outbox.enqueue_upload({"job": "ledger-checkpoint", "count": count}, "clips",
                                     now=time.time())
    rig.step()
    (key,) = rig.store.objects
    assert key.startswith(f"{PREFIX}/{rig.identity.device_id}/ledger/")
    assert state_of(rig, item.id) == ("sent", None)
    assert len(rig.ledger.entries()) == count
    assert rig.db.get_setting("ledger_checkpoint_sent", "0") == str(count)


def _segment(rig: SendRig, tmp: Path, n: int = 1, offset: int = 0) -> None:
    path = tmp / "live.age"
    if not path.exists():
        path.write_bytes(b"L" * 4000)
    rig.outbox.enqueue_upload({"live": True, "clip_id": CLIP_ID, "segment": n, "offset": offset,
                               "length": 1000, "path": str(path),
                               "recipients": [rig.recipient]}, "clips", now=time.time())


def test_the_whole_clip_replaces_the_segments_sent_while_it_was_recorded(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    _segment(rig, tmp_path)
    rig.step()
    live = sorted(rig.store.objects)
    assert len(live) == 2
    clip, _ = rig.files(tmp_path, snap_size=None)
    rig.queue(rig.spec(clip, None), "clips")
    rig.step()
    k = keys_of(rig)
    assert sorted(rig.store.objects) == sorted([k["clip"], k["manifest"]])
    kind, data = rig.entries()[-1]
    assert kind == "disclosure" and sorted(data["replaced"]) == live
    assert data["objects"] == [k["clip"], k["manifest"]]


def test_a_segment_of_a_file_gone_is_superseded_and_records_nothing(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    _segment(rig, tmp_path)
    (tmp_path / "live.age").unlink()
    rig.step()
    assert rig.store.objects == {} and rig.kinds() == []
    assert rig.outbox.items(("sent",))


@pytest.mark.parametrize(("exc", "state"), [(S3Unavailable("away"), "queued"),
                                            (S3Error("denied"), "dropped")])
def test_a_segment_failure_is_retried_or_dropped(rig: SendRig, tmp_path: Path,
                                                 exc: Exception, state: str) -> None:
    rig.grant(["clips"])
    _segment(rig, tmp_path)

    def fail(key: str, data: bytes, content_type: str = "") -> Any:
        raise exc

    rig.store.put_bytes = fail  # type: ignore[method-assign]
    rig.step()
    (item,) = rig.outbox.items()
    assert item.state == state
    if state == "dropped":
        assert item.drop_reason == "upload failed permanently: denied"
    else:
        assert item.last_error == "TransientSendError: away"


def test_withdrawing_segments_is_retried_while_the_bucket_is_away(rig: SendRig,
                                                                  tmp_path: Path) -> None:
    rig.grant(["clips"])
    _segment(rig, tmp_path)
    rig.step()
    rig.revoke(["clips"])
    job = rig.outbox.enqueue_upload({"withdraw_live": True}, "device", now=time.time())
    real = rig.store.delete

    def down(keys: Any) -> list[str]:
        raise S3Unavailable("away")

    rig.store.delete = down  # type: ignore[method-assign]
    assert rig.step() > 0
    cur = rig.outbox.get(job.id)
    assert cur is not None and cur.state == "queued"
    assert cur.last_error is not None and "withdrawing segments failed (away); retried" in \
        cur.last_error
    rig.store.delete = real  # type: ignore[method-assign]
    rig.skew_s = 3000
    rig.step()
    assert rig.store.objects == {}
    kind, data = rig.entries()[-1]
    assert kind == "withdrawn" and data["reason"] == "consent revoked"


def test_the_object_keys_are_saved_before_the_first_request_and_kept_by_a_retry(
        rig: SendRig, tmp_path: Path) -> None:
    """A retry after midnight uses the keys of the first attempt (what was stored is found)."""
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    fail_at(rig, ".mp4.age", S3Unavailable("away"))
    rig.step()
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.progress is not None
    assert cur.progress["keys"] == keys_of(rig)
    assert cur.progress["clip_sha256"] == file_sha256(clip)
    today = datetime.now(UTC).date()
    day = today.replace(year=today.year - 1)
    yesterday = {name: key.replace(f"{today:%Y/%m/%d}", f"{day:%Y/%m/%d}")
                 for name, key in cur.progress["keys"].items()}
    assert yesterday != cur.progress["keys"]
    rig.outbox.mark_in_flight(item.id)
    rig.outbox.save_progress(item.id, {**cur.progress, "keys": yesterday})
    rig.outbox.release(item.id)
    rig.store.fail_puts.clear()
    rig.skew_s = 3000
    rig.step()
    assert sorted(rig.store.objects) == sorted([yesterday["clip"], yesterday["manifest"]])


def test_a_retry_after_the_manifest_failed_sends_the_same_manifest(rig: SendRig,
                                                                   tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    real = rig.store.put_bytes
    failed: list[str] = []

    def once(key: str, data: bytes, content_type: str = "") -> Any:
        if not failed:
            failed.append(key)
            raise S3Unavailable("away")
        return real(key, data)

    rig.store.put_bytes = once  # type: ignore[method-assign]
    rig.step()
    cur = rig.outbox.get(item.id)
    assert cur is not None and cur.state == "queued" and "manifest" in (cur.progress or {})
    rig.skew_s = 3000
    rig.step()
    token = rig.store.objects[keys_of(rig)["manifest"]]
    assert token.decode("ascii") == cur.progress["manifest"]  # type: ignore[index]
    assert verify_manifest(token, rig.identity.key.public_key()).seq == 1
    assert rig.db.get_setting("manifest_chain", "").startswith("1:")


def test_a_snapshots_upload_revoked_between_parts_aborts_the_snapshots_upload(
        prig: SendRig, tmp_path: Path) -> None:
    rig = prig
    rig.grant(["snapshots"])
    clip, snap = rig.files(tmp_path, clip_size=1000, snap_size=200_000)
    item = rig.queue(rig.spec(clip, snap), "snapshots")
    k = keys_of(rig)
    revoke_at(rig, f"PART {k['snapshot']} 1", ["snapshots"])
    rig.step()
    assert rig.store.requests[-1] == f"ABORT {k['snapshot']}"
    assert rig.store.objects == {}
    assert state_of(rig, item.id)[0] == "dropped"
    assert rig.entries() == [("withdrawn", {
        "clip_id": CLIP_ID, "bucket": BUCKET, "objects": [],
        "aborted": [{"key": k["snapshot"], "upload_id": f"up-{k['snapshot']}", "parts": 1}],
        "reason": "consent for snapshots withdrawn; abort the upload"})]


def test_the_keys_carry_the_utc_day_of_the_upload(rig: SendRig, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the device's local day (the bucket learns upload days, in UTC)."""
    import agent.delivery.uploader

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            if tz is UTC:
                return datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
            return datetime(2025, 12, 31, 23, 0)

    monkeypatch.setattr(agent.delivery.uploader, "datetime", Clock)
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    rig.queue(rig.spec(clip, None), "clips")
    rig.step()
    assert sorted(rig.store.objects) == [
        f"{PREFIX}/{rig.identity.device_id}/2026/01/02/{CLIP_ID}.manifest.jws",
        f"{PREFIX}/{rig.identity.device_id}/2026/01/02/{CLIP_ID}.mp4.age"]


def test_every_part_sent_after_a_resume_is_saved(prig: SendRig, tmp_path: Path) -> None:
    rig = prig
    rig.grant(["clips"], for_s=86400)
    clip, _ = rig.files(tmp_path, clip_size=320_000, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    k = keys_of(rig)
    rig.store.fail_part = ((k["clip"], 2), S3Unavailable("away"))  # type: ignore[attr-defined]
    rig.step()
    rig.store.fail_part = ((k["clip"], 4), S3Unavailable("away"))  # type: ignore[attr-defined]
    rig.skew_s = 3000
    rig.step()
    rig.skew_s = 6000
    rig.step()
    assert [rig.store.requests.count(f"PART {k['clip']} {n}") for n in range(1, 6)] == [1] * 5
    assert state_of(rig, item.id) == ("sent", None)


def test_an_item_gone_when_an_object_completes_is_withdrawn_with_the_reason(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    real = rig.store.put_file

    def then_wipe(key: str, path: Path, **kw: Any) -> Any:
        out = real(key, path, **kw)
        rig.outbox.wipe()  # a factory reset while the PUT returns: the save that follows fails
        return out

    rig.store.put_file = then_wipe  # type: ignore[method-assign]
    rig.step()
    assert rig.store.objects == {}
    kind, data = rig.entries()[-1]
    assert kind == "withdrawn"
    assert data["reason"] == f"outbox item {item.id} was dropped; abort the upload"


def test_a_segment_that_never_reached_the_bucket_is_withdrawn_cleanly(
        rig: SendRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its day is fixed (UTC) before the first request; a revocation then clears the state."""
    import json

    import agent.delivery.segment_upload

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime(2026, 1, 2, 3, 0, tzinfo=UTC) if tz is UTC else datetime(2025, 1, 1)

    monkeypatch.setattr(agent.delivery.segment_upload, "datetime", Clock)
    rig.grant(["clips"])
    _segment(rig, tmp_path)

    def down(key: str, data: bytes, content_type: str = "") -> Any:
        raise S3Unavailable("away")

    rig.store.put_bytes = down  # type: ignore[method-assign]
    rig.step()
    setting = f"live:{CLIP_ID}"
    state = json.loads(rig.db.get_setting(setting, ""))
    assert state["day"] == "2026-01-02" and state["progress"] is None
    # the segment is named before its PUT, so the withdrawal deletes it if the PUT did land
    assert state["pending"].endswith("/2026/01/02/c0ffee0001.live-0001.age")
    rig.revoke(["clips"])
    rig.delivery.purge(["clips"], "consent revoked")
    rig.skew_s = 3000
    rig.step()
    assert rig.db.get_setting(setting, "") == ""
    assert [i.state for i in rig.outbox.items() if i.scope == "device"] == ["sent"]
