"""Issue 12, finding 1: a revocation stops an upload in flight, and the ledger tells the truth.

The real daemon (`doorward run` on a rendered passer-by scene, in real time) uploads to a real
SeaweedFS through a throttling proxy (tests/adversarial/proxy.py, 48 KiB/s towards the server),
so the clip's PUT is still in flight when the owner's signed `consent revoke` (the real owner CLI,
over a real Mosquitto) lands. The proxy sees every request the device sends and when each request
body was forwarded completely: the moment the bucket can act on it.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.proxy import Request, ThrottlingProxy
from tests.e2e.test_uplink_cli import Rig, provision
from tests.helpers import doorward, wait_for
from tests.servers import Mosquitto
from tests.servers_s3 import SeaweedS3
from uplink.checkpoint import is_checkpoint_key

pytestmark = pytest.mark.slow

UPLOAD_SUFFIXES = (".mp4.age", ".jpg.age", ".manifest.jws")


@dataclass
class ProxiedRig(Rig):
    """The e2e rig with the device's S3 endpoint behind the throttling proxy."""

    endpoint: str = ""

    def config(self, extra: str = "") -> Path:
        path = self.tmp / "device.toml"
        path.write_text(f"""
[camera]
width = 640
height = 360
[s3]
bucket = "{self.bucket}"
endpoint_url = "{self.endpoint}"
addressing_style = "path"
[uplink]
# the whole clip's PUT is what this tests; segments of a clip in progress are withdrawn on a
# revoke too: tests/e2e/test_redelivery_cli.py::test_a_revoke_mid_event_withdraws_the_segments_...
live_segment_s = 0
{extra}
""")
        return path

    def ledger(self) -> list[dict[str, Any]]:
        text = doorward("ledger", "show", "--json", "--data-dir", str(self.data)).stdout
        return [json.loads(line) for line in text.splitlines()[1:]]

    def open_uploads(self) -> list[Any]:
        return list(self.s3.client().list_multipart_uploads(Bucket=self.bucket)
                    .get("Uploads", []))


def uploads_open(rig: Rig) -> bool:
    return any(k.startswith("upload:") and n for k, n in rig.status().get("outbox", {}).items())


def is_upload(r: Request) -> bool:
    """A request that stores something: an object PUT, a part, or completing an upload."""
    path = r.path.split("?", 1)[0]
    return (r.method == "PUT" and path.endswith(UPLOAD_SUFFIXES)) or (
        r.method == "POST" and "uploadId=" in r.path)


def test_revoke_stops_the_clip_put_in_flight_and_the_ledger_tells_the_truth(
        tmp_path: Path, mosquitto: Mosquitto, seaweed: SeaweedS3,
        slow_s3: ThrottlingProxy) -> None:
    base = provision(tmp_path, mosquitto, seaweed, seaweed.create_bucket("revoke"))
    rig = ProxiedRig(**vars(base), endpoint=slow_s3.url)
    proc = rig.start("passerby", "--realtime")
    try:
        rig.connected(proc)
        rig.owner("consent", "grant", "--scopes", "clips,snapshots", "--days", "1")
        clip_put = slow_s3.wait_for_request(
            lambda r: r.method == "PUT" and r.path.endswith(".mp4.age"), body_bytes=96 * 1024,
            timeout=90)
        revoked_at = time.time()
        answer = rig.owner("consent", "revoke", "--scopes", "clips,snapshots")
        replied_at = time.time()
        at_reply = {(r.conn, r.started_at): r for r in slow_s3.requests()}
        wait_for(lambda: not uploads_open(rig), timeout=60, what="the upload lane to settle")
        slow_s3.set_rate(1 << 30)  # whatever still sits in buffers may now reach the server
        wait_for(lambda: all(not r.open or not is_upload(r) or r.forwarded == 0
                             for r in slow_s3.requests() if r.started_at > replied_at),
                 timeout=30, what="requests started after the reply to finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "grants" in answer.stdout or answer.returncode == 0

    seen = slow_s3.requests()
    # 1. nothing that stores data completed after the revocation was sent
    late = [(r.method, r.path) for r in seen
            if is_upload(r) and r.completed_at is not None and r.completed_at >= revoked_at]
    assert late == [], f"uploads completed after the revoke: {late}\n{err[-3000:]}"
    # 2. no upload started after the reply
    started_late = [(r.method, r.path) for r in seen if is_upload(r) and r.started_at > replied_at]
    assert started_late == []
    # 3. the clip's PUT had stopped by the reply (the device resets the connection: what the
    #    proxy had already taken in may still trickle on, a few KiB)
    later = next(r for r in seen if (r.conn, r.started_at) == (clip_put.conn,
                                                                 clip_put.started_at))
    before = at_reply[(clip_put.conn, clip_put.started_at)]
    assert later.completed_at is None
    assert later.forwarded - before.forwarded <= 128 * 1024, (before.forwarded, later.forwarded)
    # 4. the bucket holds nothing of the clip, and no open multipart upload
    # nothing of the clip; the ledger's signed checkpoints stay (they hold counts and hashes)
    assert [k for k in rig.objects() if not is_checkpoint_key(k)] == []
    assert rig.open_uploads() == []
    # 5. the ledger: the clip never reached the bucket, so an outbox-drop, and no disclosure
    entries = rig.ledger()
    kinds = [e["kind"] for e in entries]
    assert "disclosure" not in kinds and "withdrawn" not in kinds, entries
    drops = [e for e in entries if e["kind"] == "outbox-drop"
             and any(i.get("kind") == "upload" for i in e["data"]["items"])]
    assert drops, entries
