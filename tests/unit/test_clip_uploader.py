"""agent.delivery.uploader.ClipUploader on the in-memory object store twin (uplink.memory_store):
the manifest chain, what a forget selects, and snapshot-only uploads. The uploads lane is wired
as the daemon wires it (tests/unit/sendrig.py), driven one step at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.delivery.jobs import ForgetJob
from agent.delivery.links import ClipDelivered
from agent.delivery.uploader import MANIFEST_CHAIN_SETTING
from tests.unit.sendrig import CLIP_ID, PREFIX, SendRig, send_rig
from uplink.manifest import Manifest, token_hash, verify_manifest
from uplink.memory_store import MemoryObjectStore
from uplink.replies import ForgetResultBody


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SendRig]:
    with send_rig(tmp_path, store=MemoryObjectStore()) as r:  # type: ignore[arg-type]
        yield r


def store(rig: SendRig) -> MemoryObjectStore:
    assert isinstance(rig.store, MemoryObjectStore)
    return rig.store


def manifests(rig: SendRig) -> dict[str, tuple[str, Manifest]]:
    pub = rig.identity.key.public_key()
    out = {}
    for key, data in store(rig).objects.items():
        if key.endswith(".manifest.jws"):
            m = verify_manifest(data, pub)
            out[m.clip_id] = (data.decode(), m)
    return out


def base(rig: SendRig) -> str:
    return f"{PREFIX}/{rig.identity.device_id}/"


def upload(rig: SendRig, tmp: Path, clip_id: str, scope: str = "clips",
           snapshot: bool = True) -> None:
    folder = tmp / clip_id
    folder.mkdir()
    clip, snap = rig.files(folder, snap_size=5_000 if snapshot else None)
    rig.queue(rig.spec(clip, snap, clip_id=clip_id), scope)
    rig.step()


def test_each_manifest_links_to_the_one_before(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    for clip_id in ("clip0001", "clip0002", "clip0003"):
        upload(rig, tmp_path, clip_id)
    found = manifests(rig)
    (t1, m1), (t2, m2), (t3, m3) = (found[c] for c in ("clip0001", "clip0002", "clip0003"))
    assert (m1.seq, m2.seq, m3.seq) == (1, 2, 3)
    assert m1.prev_manifest == "0" * 64
    assert m2.prev_manifest == token_hash(t1) and m3.prev_manifest == token_hash(t2)
    assert rig.db.get_setting(MANIFEST_CHAIN_SETTING, "") == f"3:{token_hash(t3)}"
    assert [i for i in rig.inbox() if isinstance(i, ClipDelivered)] == [
        ClipDelivered("clip0001"), ClipDelivered("clip0002"), ClipDelivered("clip0003")]


def test_a_dropped_upload_takes_no_seq(rig: SendRig, tmp_path: Path) -> None:
    """A clip refused before its manifest (sealed to a non-member) leaves no gap in the chain."""
    rig.grant(["clips"])
    upload(rig, tmp_path, "clip0001", snapshot=False)
    clip, _ = rig.files(tmp_path, snap_size=None)
    rig.queue(rig.spec(clip, None, clip_id="stranger", recipients=["age1nobody"]), "clips")
    rig.step()
    upload(rig, tmp_path, "clip0002", snapshot=False)
    found = manifests(rig)
    assert sorted(found) == ["clip0001", "clip0002"]
    assert found["clip0002"][1].prev_manifest == token_hash(found["clip0001"][0])
    assert found["clip0002"][1].seq == 2


def test_a_snapshot_only_upload_sends_the_snapshot_and_never_the_clip(rig: SendRig,
                                                                      tmp_path: Path) -> None:
    rig.grant(["snapshots"])
    upload(rig, tmp_path, CLIP_ID, scope="snapshots")
    names = sorted(k.rsplit("/", 1)[-1] for k in store(rig).objects)
    assert names == [f"{CLIP_ID}.jpg.age", f"{CLIP_ID}.manifest.jws"]
    (_, m) = manifests(rig)[CLIP_ID]
    assert set(m.objects) == {"snapshot"}
    assert not any(r.endswith(".mp4.age") for r in store(rig).requests)
    (disclosure,) = [d for k, d in rig.entries() if k == "disclosure"]
    assert disclosure["scope"] == "snapshots" and len(disclosure["objects"]) == 2


def test_a_snapshot_only_upload_without_a_snapshot_sends_nothing(rig: SendRig,
                                                                 tmp_path: Path) -> None:
    rig.grant(["snapshots"])
    upload(rig, tmp_path, CLIP_ID, scope="snapshots", snapshot=False)
    assert store(rig).objects == {}
    (item,) = rig.outbox.items()
    assert item.state == "dropped" and "nothing left to upload" in str(item.drop_reason)


def put(rig: SendRig, day: str, name: str) -> str:
    key = f"{base(rig)}{day}/{name}"
    store(rig).put_bytes(key, b"x")
    return key


def forget(rig: SendRig, job: ForgetJob) -> ForgetResultBody:
    rig.outbox.enqueue_upload(job.to_json(), "device", now=time.time())
    rig.step()
    (_, data) = [e for e in rig.entries() if e[0] == "erasure"][-1]
    assert data["request"] == job.request
    return ForgetResultBody(request=job.request, clips=tuple(data["clips"]),
                            objects=(), failed=tuple(data["failed"]))


@pytest.fixture
def bucket(rig: SendRig) -> dict[str, str]:
    """Objects of three clips on two upload days, a ledger checkpoint and another device's."""
    keys = {
        "old": put(rig, "2026/11/30", "oldclip01.mp4.age"),
        "old_m": put(rig, "2026/11/30", "oldclip01.manifest.jws"),
        "a": put(rig, "2026/12/02", "clipa0001.mp4.age"),
        "a_snap": put(rig, "2026/12/02", "clipa0001.jpg.age"),
        "b": put(rig, "2026/12/02", "clipb0001.mp4.age"),
        "ledger": f"{base(rig)}ledger/000000000003-0123456789abcdef.checkpoint.jws",
        "other": f"{PREFIX}/dw-someoneelse/2026/11/30/oldclip01.mp4.age",
    }
    for key in (keys["ledger"], keys["other"]):
        store(rig).put_bytes(key, b"x")
    return keys


def left(rig: SendRig, bucket: dict[str, str]) -> set[str]:
    return {name for name, key in bucket.items() if key in store(rig).objects}


def test_forget_by_clip_takes_every_object_of_that_clip_only(rig: SendRig,
                                                             bucket: dict[str, str]) -> None:
    result = forget(rig, ForgetJob(("clipa0001",), False, None, "jti-00000001"))
    assert result.clips == ("clipa0001",)
    assert left(rig, bucket) == {"old", "old_m", "b", "ledger", "other"}


def test_forget_before_a_day_takes_what_was_uploaded_earlier(rig: SendRig,
                                                             bucket: dict[str, str]) -> None:
    result = forget(rig, ForgetJob((), False, "2026-12-01", "jti-00000002"))
    assert result.clips == ("oldclip01",)
    assert left(rig, bucket) == {"a", "a_snap", "b", "ledger", "other"}


def test_forget_all_keeps_the_ledger_checkpoints_and_other_devices(
        rig: SendRig, bucket: dict[str, str]) -> None:
    result = forget(rig, ForgetJob(("ignored",), True, None, "jti-00000003"))
    assert result.clips == ("clipa0001", "clipb0001", "oldclip01")
    assert left(rig, bucket) == {"ledger", "other"}


def test_forget_of_nothing_there_deletes_nothing(rig: SendRig, bucket: dict[str, str]) -> None:
    result = forget(rig, ForgetJob(("absent001",), False, None, "jti-00000004"))
    assert result.clips == () and left(rig, bucket) == set(bucket)
    assert not any(r.startswith("DELETE") for r in store(rig).requests)


def test_the_upload_day_is_the_utc_day_of_the_first_attempt(rig: SendRig,
                                                             tmp_path: Path) -> None:
    rig.grant(["clips"])
    before = datetime.now(UTC).strftime("%Y/%m/%d")
    upload(rig, tmp_path, CLIP_ID, snapshot=False)
    after = datetime.now(UTC).strftime("%Y/%m/%d")  # a run across midnight sees either day
    (key,) = [k for k in store(rig).objects if k.endswith(".mp4.age")]
    assert key in {f"{base(rig)}{day}/{CLIP_ID}.mp4.age" for day in (before, after)}
