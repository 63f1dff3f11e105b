"""End to end: a clip that never reached the upload queue (a crash between sealing and queueing,
or a clip recovered after a crash) is queued at the next start and lands in the bucket once."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.owner.keyring import OwnerKeyring
from tests.e2e.test_uplink_cli import Rig, provision
from tests.helpers import DOORWARD, doorward, doorward_json, ffprobe, wait_for
from tests.servers import Mosquitto
from tests.servers_s3 import SeaweedS3
from uplink.age import decrypt_file
from uplink.keys import b64u_decode
from uplink.manifest import unseal_times, verify_manifest

pytestmark = pytest.mark.slow


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto, seaweed: SeaweedS3) -> Rig:
    return provision(tmp_path, mosquitto, seaweed, seaweed.create_bucket("redeliver"))


def local_clips(rig: Rig) -> list[dict[str, object]]:
    return list(doorward_json("clips", "list", "--data-dir", str(rig.data), "--json")["clips"])


def bucket_manifests(rig: Rig) -> dict[str, dict[str, object]]:
    """clip id -> its sealed times, for every manifest in the bucket (signature checked)."""
    ring = OwnerKeyring.open(rig.owner_dir)
    device = ring.device(rig.label["device_id"])
    out: dict[str, dict[str, object]] = {}
    for key in rig.objects():
        if key.endswith(".manifest.jws"):
            m = verify_manifest(rig.object_bytes(key), b64u_decode(device.public_key))
            assert m.clip_id not in out, f"clip {m.clip_id} uploaded twice"
            out[m.clip_id] = unseal_times(m, [ring.identity])
    return out


def owner_listing(rig: Rig) -> dict[str, Any]:
    return dict(json.loads(rig.owner("clips", "list", "--bucket", rig.bucket, "--endpoint-url",
                                     rig.s3.url, "--addressing-style", "path", "--json").stdout))


def owner_chain(rig: Rig) -> dict[str, Any]:
    return dict(owner_listing(rig)["chain"])


def no_bucket_config(rig: Rig) -> Path:
    path = rig.tmp / "no-bucket.toml"
    path.write_text("[camera]\nwidth = 640\nheight = 360\n")
    return path


def test_clip_sealed_but_never_queued_is_uploaded_at_the_next_start(rig: Rig) -> None:
    rig.grant("--scopes", "clips", "--days", "1")
    # Recorded while the bucket was not configured: the clip is sealed and indexed, and no
    # upload is queued, which is what a crash between the two commits leaves behind.
    no_bucket = no_bucket_config(rig)
    doorward("run", "--config", str(no_bucket), "--source", "sim:visit", "--data-dir",
             str(rig.data), "--broker", rig.broker.url, "--exit-at-eof", env=rig.env)
    stranded = [c["id"] for c in local_clips(rig)]
    assert stranded and not any(k.endswith(".mp4.age") for k in rig.objects())
    rig.run("cat")  # drains the outbox before exiting
    uploaded = bucket_manifests(rig)
    assert set(stranded) <= set(uploaded)
    assert all(c["delivered"] for c in local_clips(rig) if c["id"] in stranded)
    rig.run("cat")  # a further start queues nothing again: a second upload of the same clip
    # would take the next manifest seq and overwrite the first one's key, leaving a gap
    assert uploaded.keys() <= bucket_manifests(rig).keys()
    assert owner_chain(rig)["ok"]


def test_clip_recovered_after_a_crash_is_uploaded_marked_truncated(rig: Rig) -> None:
    rig.grant("--scopes", "clips", "--days", "1")
    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(no_bucket_config(rig)), "--source", "sim:visit",
         "--data-dir", str(rig.data), "--realtime"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clips_dir = rig.data / "clips"

    def partial_bytes() -> int:
        return sum(p.stat().st_size for p in clips_dir.glob("*.partial")) if clips_dir.exists() \
            else 0

    try:
        wait_for(lambda: partial_bytes() > 200_000 or proc.poll() is not None, timeout=120,
                 what="a clip being recorded", interval=0.05)
        assert proc.poll() is None, proc.communicate()[1]
        proc.kill()  # the device is torn off the wall mid-event
        proc.wait(timeout=10)
    finally:
        proc.kill()
    rig.run("cat")  # recovers the clip (truncated), queues it and drains
    recovered = [c for c in local_clips(rig) if c["truncated"]]
    assert len(recovered) == 1
    clip = recovered[0]
    times = bucket_manifests(rig)[str(clip["id"])]
    assert times.get("truncated") is True
    key = next(k for k in rig.objects() if k.endswith(f"{clip['id']}.mp4.age"))
    sealed = rig.tmp / "recovered.mp4.age"
    sealed.write_bytes(rig.object_bytes(key))
    mp4 = rig.tmp / "recovered.mp4"
    decrypt_file(sealed, mp4, [OwnerKeyring.open(rig.owner_dir).identity], allow_truncated=True)
    assert ffprobe(mp4)["frames"] > 0
    listing = owner_listing(rig)
    assert listing["chain"]["ok"]
    assert [r.get("truncated") for r in listing["clips"] if r["clip_id"] == clip["id"]] == [True]


def kill_mid_visit(rig: Rig, segment: str, listed: int = 0) -> None:
    """Record the visit in real time and kill -9 the daemon once ``segment`` is in the bucket
    and, with ``listed``, once the signed progress record names that many segments: the record
    is uploaded after the segment it names, and a kill between the two leaves a segment the
    owner does not count (nor should: nothing signed vouches for it)."""
    proc = rig.start("visit", "--realtime")

    def ready() -> bool:
        if not any(segment in k for k in rig.objects()):
            return False
        return not listed or any(c["segments"] >= listed
                                 for c in owner_listing(rig)["in_progress"])

    try:
        wait_for(lambda: proc.poll() is not None or ready(),
                 timeout=90, what=f"{segment} in the bucket", interval=0.2)
        assert proc.poll() is None, proc.communicate()[1]
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()


def test_a_clip_in_progress_is_in_the_bucket_before_the_device_dies(rig: Rig) -> None:
    rig.grant("--scopes", "clips", "--days", "1")
    kill_mid_visit(rig, ".live-0002.age", listed=2)  # torn off the wall mid-event
    listing = owner_listing(rig)
    assert [c["segments"] >= 2 for c in listing["in_progress"]] == [True]
    clip_id = listing["in_progress"][0]["clip_id"]
    out = rig.tmp / "live.mp4"
    rig.owner("clips", "fetch", clip_id, "-o", str(out), "--bucket", rig.bucket,
              "--endpoint-url", rig.s3.url, "--addressing-style", "path")
    assert ffprobe(out)["frames"] > 0
    # The next start recovers the clip, uploads it whole, and the segments give way to it.
    rig.run("cat")
    keys = rig.objects()
    assert not any(".live-" in k or k.endswith(".progress.jws") for k in keys), keys
    listing = owner_listing(rig)
    assert listing["in_progress"] == [] and listing["chain"]["ok"]
    assert [c.get("truncated") for c in listing["clips"] if c["clip_id"] == clip_id] == [True]


def test_a_tampered_segment_is_refused_by_the_owner(rig: Rig) -> None:
    rig.grant("--scopes", "clips", "--days", "1")
    kill_mid_visit(rig, ".live-0001.age")
    seg = next(k for k in rig.objects() if ".live-0001.age" in k)
    data = bytearray(rig.object_bytes(seg))
    data[-1] ^= 1  # the bucket operator alters one byte
    rig.s3.client().put_object(Bucket=rig.bucket, Key=seg, Body=bytes(data))
    clip_id = owner_listing(rig)["in_progress"][0]["clip_id"]
    res = rig.owner("clips", "fetch", clip_id, "-o", str(rig.tmp / "x.mp4"), "--bucket",
                    rig.bucket, "--endpoint-url", rig.s3.url, "--addressing-style", "path",
                    check=False)
    assert res.returncode != 0 and "altered" in res.stderr
    assert not (rig.tmp / "x.mp4").exists()


def test_a_revoke_mid_event_withdraws_the_segments_already_sent(rig: Rig) -> None:
    rig.grant("--scopes", "clips", "--days", "1")
    proc = rig.start("visit", "--realtime")
    try:
        rig.connected(proc)
        wait_for(lambda: any(".live-0001.age" in k for k in rig.objects()) or proc.poll()
                 is not None, timeout=90, what="a segment in the bucket", interval=0.2)
        sent = [k for k in rig.objects() if ".live-" in k or k.endswith(".progress.jws")]
        rig.owner("consent", "revoke", "--scopes", "clips")
        wait_for(lambda: not any(".live-" in k or k.endswith(".progress.jws")
                                 for k in rig.objects()), timeout=30,
                 what="the segments withdrawn from the bucket", interval=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert sent and not [k for k in rig.objects() if k.endswith((".mp4.age", ".manifest.jws"))]
    text = doorward("ledger", "show", "--json", "--data-dir", str(rig.data)).stdout
    entries = [json.loads(line) for line in text.splitlines()[1:]]
    withdrawn = [k for e in entries if e.get("kind") == "withdrawn" for k in e["data"]["objects"]]
    assert set(sent) <= set(withdrawn), (sent, withdrawn)


def test_a_damaged_outbox_does_not_stop_the_daemon_and_clips_still_go(rig: Rig) -> None:
    rig.grant("--scopes", "clips", "--days", "1")
    outbox = rig.data / "outbox.sqlite"
    raw = outbox.read_bytes()
    outbox.write_bytes(b"garbage garbage!" + raw[16:])
    result = rig.run("cat")  # exits 0: the damaged file is kept aside, a new outbox starts
    assert "kept as outbox.sqlite.corrupt-" in result.stderr
    assert list(rig.data.glob("outbox.sqlite.corrupt-*"))
    assert bucket_manifests(rig)  # the visit's clip still reached the bucket
    text = doorward("ledger", "show", "--json", "--data-dir", str(rig.data)).stdout
    assert "outbox database" in text  # the loss is in the ledger
