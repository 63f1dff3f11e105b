"""agent.delivery.jobs: the typed upload jobs, their encoding (golden files), errors that name the
field, and rows an outbox.sqlite written by the previous version holds (a device upgraded with
uploads queued must deliver them)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.jobs import (
    CheckpointJob,
    ForgetJob,
    Job,
    JobError,
    SegmentJob,
    UploadJob,
    WithdrawLiveJob,
    parse_job,
)
from agent.delivery.outbox import Outbox
from tests.unit.sendrig import BUCKET, CLIP_ID, PREFIX, SendRig, send_rig
from uplink.manifest import verify_manifest
from uplink.memory_store import MemoryObjectStore

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
R1 = "age1x0yrfr2f2mplqpw7c7399srn0y8ydj4t95gcs4932ldr4cuvla4svcf3wy"

JOBS: dict[str, Job] = {
    "clip": UploadJob(clip_id="c0ffee0001", clip=Path("/var/lib/doorward/clips/c0ffee0001.age"),
                      snapshot=Path("/var/lib/doorward/clips/c0ffee0001.jpg.age"),
                      started_at="2026-12-03T10:00:00+00:00",
                      ended_at="2026-12-03T10:00:10+00:00", duration_s=10.0, recipients=(R1,)),
    "clip_truncated": UploadJob(clip_id="c0ffee0002", clip=Path("/d/c0ffee0002.age"),
                                snapshot=None, started_at="2026-12-03T10:00:00+00:00",
                                ended_at="2026-12-03T10:00:04+00:00", duration_s=4.0,
                                recipients=(R1,), truncated=True),
    "segment": SegmentJob(clip_id="c0ffee0003", segment=2, offset=4000, length=2000,
                          path=Path("/d/c0ffee0003.age.partial"), recipients=(R1,)),
    "forget": ForgetJob(clips=("c0ffee0001", "c0ffee0002"), everything=False,
                        before=None, request="jti-0001"),
    "forget_before": ForgetJob(clips=(), everything=False, before="2026-12-01",
                               request="jti-0002"),
    "checkpoint": CheckpointJob(count=17),
    "withdraw_live": WithdrawLiveJob(reason="consent revoked"),
}


def encode(job: Job) -> str:
    """As the outbox stores it (Outbox.enqueue_upload)."""
    return json.dumps(job.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize("name", sorted(JOBS))
def test_golden_encodings(name: str) -> None:
    path = GOLDEN / f"job_{name}.json"
    text = encode(JOBS[name]) + "\n"
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{path.name}: the encoding changed; a queued row must " \
        "stay readable (bump JOB_SCHEMA and read the old one)"
    assert parse_job(json.loads(path.read_text())) == JOBS[name]


@pytest.mark.parametrize("name", sorted(JOBS))
def test_round_trip_and_kind(name: str) -> None:
    job = JOBS[name]
    doc = job.to_json()
    assert doc["v"] == 1 and doc["job"] == job.KIND
    assert parse_job(doc) == job
    assert type(job).from_json(doc) == job


# What the previous version wrote (agent/delivery/queueing.py before the jobs were typed): no "v",
# no "job" but for the checkpoint, the markers "live", "forget", "withdraw_live".
LEGACY: dict[str, tuple[dict[str, Any], Job]] = {
    "clip": ({"clip_id": "c0ffee0001", "clip": "/d/c.age", "snapshot": "/d/c.jpg.age",
              "started_at": "2026-12-03T10:00:00+00:00", "ended_at": "2026-12-03T10:00:10+00:00",
              "duration_s": 10.0, "recipients": [R1]},
             UploadJob("c0ffee0001", Path("/d/c.age"), Path("/d/c.jpg.age"),
                       "2026-12-03T10:00:00+00:00", "2026-12-03T10:00:10+00:00", 10.0, (R1,))),
    "truncated": ({"clip_id": "c2", "clip": "/d/c2.age", "snapshot": None, "started_at": "a",
                   "ended_at": "b", "duration_s": 4, "recipients": [R1], "truncated": True},
                  UploadJob("c2", Path("/d/c2.age"), None, "a", "b", 4.0, (R1,), True)),
    "segment": ({"live": True, "clip_id": "c3", "segment": 1, "offset": 0, "length": 10,
                 "path": "/d/p", "recipients": [R1]},
                SegmentJob("c3", 1, 0, 10, Path("/d/p"), (R1,))),
    "forget": ({"forget": ["c1"], "all": False, "before": None, "request": "jti"},
               ForgetJob(("c1",), False, None, "jti")),
    "forget_all": ({"forget": [], "all": True, "before": None, "request": "jti"},
                   ForgetJob((), True, None, "jti")),
    "checkpoint": ({"job": "ledger-checkpoint", "count": 3}, CheckpointJob(3)),
    "withdraw": ({"withdraw_live": True, "reason": "consent revoked by k"},
                 WithdrawLiveJob("consent revoked by k")),
    "withdraw_no_reason": ({"withdraw_live": True}, WithdrawLiveJob("consent revoked")),
}


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_rows_of_the_previous_version_are_read(name: str) -> None:
    spec, job = LEGACY[name]
    assert parse_job(spec) == job


def test_the_encoding_keeps_the_markers_the_previous_version_dispatched_on() -> None:
    """A device rolled back to the previous version reads the rows this one queued."""
    assert JOBS["segment"].to_json()["live"] is True
    assert "forget" in JOBS["forget"].to_json()
    assert JOBS["withdraw_live"].to_json()["withdraw_live"] is True
    assert JOBS["checkpoint"].to_json()["job"] == "ledger-checkpoint"
    clip = JOBS["clip"].to_json()
    assert not ({"forget", "live", "withdraw_live"} & set(clip))
    assert "truncated" not in clip and JOBS["clip_truncated"].to_json()["truncated"] is True


@pytest.mark.parametrize(("spec", "field"), [
    ({**LEGACY["clip"][0], "clip_id": 7}, "'clip_id'"),
    ({k: v for k, v in LEGACY["clip"][0].items() if k != "clip"}, "'clip'"),
    ({**LEGACY["clip"][0], "duration_s": "10"}, "'duration_s'"),
    ({**LEGACY["clip"][0], "duration_s": float("nan")}, "'duration_s'"),
    ({**LEGACY["clip"][0], "recipients": [R1, 3]}, "'recipients'"),
    ({**LEGACY["clip"][0], "truncated": 1}, "'truncated'"),
    ({**LEGACY["segment"][0], "segment": True}, "'segment'"),
    ({**LEGACY["segment"][0], "offset": -1}, "'offset'"),
    ({**LEGACY["forget"][0], "all": "no"}, "'all'"),
    ({k: v for k, v in LEGACY["forget"][0].items() if k != "request"}, "'request'"),
    ({"job": "ledger-checkpoint"}, "'count'"),
    ({"v": 2, "job": "clip"}, "'v'"),
    ({"v": 1, "job": "teleport"}, "'job'"),
])
def test_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(JobError, match=field):
        parse_job(spec)


def test_no_object_is_no_job() -> None:
    with pytest.raises(JobError, match="no JSON object"):
        parse_job(None)


# ---- an outbox.sqlite written by the previous version, delivered after the upgrade --------------


def _legacy_row(path: Path, spec: dict[str, Any], scope: str) -> None:
    """Insert the row as the previous version's Outbox.enqueue_upload wrote it."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    now = time.time()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO items (kind, scope, spec, size, created_at, expires_at) "
                   "VALUES ('upload', ?, ?, ?, ?, ?)", (scope, text, len(text), now, now + 3600))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SendRig]:
    with send_rig(tmp_path, store=MemoryObjectStore()) as r:  # type: ignore[arg-type]
        yield r


def test_an_upgraded_device_delivers_the_uploads_it_had_queued(rig: SendRig,
                                                                tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    clip, snap = rig.files(tmp_path)
    old = {"clip_id": CLIP_ID, "clip": str(clip), "snapshot": str(snap),
           "started_at": "2026-12-03T10:00:00+00:00", "ended_at": "2026-12-03T10:00:10+00:00",
           "duration_s": 10.0, "recipients": [rig.recipient]}
    _legacy_row(rig.data / "outbox.sqlite", old, "clips")
    _legacy_row(rig.data / "outbox.sqlite", {"forget": ["gone"], "all": False, "before": None,
                                             "request": "jti-00000009"}, "device")
    (item, forget) = rig.outbox.items(("queued",))
    assert item.job() == UploadJob(CLIP_ID, clip, snap, old["started_at"], old["ended_at"], 10.0,
                                   (rig.recipient,))
    assert isinstance(forget.job(), ForgetJob)
    rig.step()
    rig.step()
    assert rig.outbox.pending() == {}
    keys = sorted(rig.store.objects)
    assert [k.rsplit("/", 1)[-1] for k in keys] == [
        f"{CLIP_ID}.jpg.age", f"{CLIP_ID}.manifest.jws", f"{CLIP_ID}.mp4.age"]
    manifest_key = next(k for k in keys if k.endswith(".manifest.jws"))
    token = rig.store.objects[manifest_key].decode()
    manifest = verify_manifest(token, rig.identity.key.public_key())
    assert manifest.clip_id == CLIP_ID and manifest.recipients == (rig.recipient,)
    assert [k for k, _ in rig.entries()] == ["disclosure", "erasure"]
    assert rig.entries()[0][1]["bucket"] == BUCKET and keys[0].startswith(PREFIX + "/")
    assert rig.entries()[1][1]["request"] == "jti-00000009"


def test_a_damaged_row_is_dropped_and_recorded_never_retried(rig: SendRig) -> None:
    rig.grant(["clips"])
    _legacy_row(rig.data / "outbox.sqlite", {"clip_id": CLIP_ID, "recipients": [rig.recipient]},
                "clips")
    rig.step()
    (item,) = rig.outbox.items()
    assert item.state == "dropped" and "field 'duration_s' is missing" in str(item.drop_reason)
    assert [k for k, _ in rig.entries()] == ["outbox-drop"]
    assert rig.store.objects == {}


def test_outbox_rows_name_their_job(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.sqlite")
    try:
        for job in JOBS.values():
            ob.enqueue_upload(job.to_json(), "device", now=time.time())
        assert [i.job() for i in ob.items()] == list(JOBS.values())
        msg = ob.enqueue_message("t", b"x", "device", now=time.time())
        with pytest.raises(JobError):
            msg.job()
    finally:
        ob.close()
