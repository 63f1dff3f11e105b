"""Issue 12, finding 1, in process: the daemon's upload lane against a real SeaweedFS behind the
throttling proxy, with a revocation (through the daemon's own revoke hook) or a grant expiry landing
at a chosen moment of a multipart or single-part upload.

What must hold: the request in flight stops within one 64 KiB read (a part never completes), the
multipart upload is aborted, whatever of the clip reached the bucket is deleted, and the ledger
says so (``disclosure`` then ``withdrawn`` for stored objects, ``outbox-drop`` only when nothing
left).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.lane import UploadRig, upload_rig
from tests.adversarial.proxy import Request, ThrottlingProxy
from tests.helpers import wait_for
from tests.servers_s3 import SeaweedS3
from uplink.objectstore import S3Settings

MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def proxy(seaweed: SeaweedS3) -> Iterator[ThrottlingProxy]:
    with ThrottlingProxy(("127.0.0.1", seaweed.port), bytes_per_s=2 * MiB) as p:
        yield p


@pytest.fixture
def rig(tmp_path: Path, seaweed: SeaweedS3, proxy: ThrottlingProxy) -> Iterator[UploadRig]:
    bucket = seaweed.create_bucket("withdraw")
    creds = tmp_path / "s3-credentials"
    creds.write_text(f"[default]\naws_access_key_id = {seaweed.access_key}\n"
                     f"aws_secret_access_key = {seaweed.secret_key}\n")
    settings = S3Settings(bucket=bucket, endpoint_url=proxy.url, addressing_style="path",
                          credentials_file=creds, multipart_threshold_bytes=PART,
                          part_size_bytes=PART, max_attempts=1)

    def store() -> Any:
        from uplink.s3 import S3ObjectStore

        return S3ObjectStore(settings)

    with upload_rig(tmp_path, store, bucket=bucket) as r:
        r.bucket = bucket  # type: ignore[attr-defined]
        yield r


def sealed(tmp: Path, name: str, size: int) -> Path:
    path = tmp / name
    path.write_bytes(os.urandom(size))
    return path


def bucket_state(seaweed: SeaweedS3, bucket: str) -> tuple[list[str], list[str]]:
    client = seaweed.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return sorted(keys), uploads


def part(n: int) -> Any:
    return lambda r: r.method == "PUT" and f"partNumber={n}" in r.path


def stores(r: Request) -> bool:
    return r.method in ("PUT", "POST") and "uploads" not in r.path.split("?", 1)[-1]


def kinds(rig: UploadRig) -> list[str]:
    return [e["kind"] for e in rig.entries()]


def test_revoke_during_part_two_aborts_the_multipart_upload(
        rig: UploadRig, seaweed: SeaweedS3, proxy: ThrottlingProxy, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    rig.queue_clip(sealed(tmp_path, "clip.age", 2 * PART + 4096),
                   sealed(tmp_path, "snap.age", 20_000), "clips")
    proxy.wait_for_request(part(1), body_bytes=PART, timeout=30)
    proxy.set_rate(256 * 1024)
    proxy.wait_for_request(part(2), body_bytes=64 * 1024, timeout=30)
    rig.revoke(["clips", "snapshots"])  # returns when the reply would be sent
    at_reply = proxy.requests()
    wait_for(rig.settled, timeout=30, what="the upload lane to settle")
    proxy.set_rate(1 << 30)
    two = [r for r in proxy.requests() if part(2)(r)]
    assert two and all(r.completed_at is None for r in two)  # part 2 never reached the server
    assert not [r for r in proxy.requests() if stores(r) and r.started_at > at_reply[-1].started_at
                and "partNumber" in r.path]  # no part started after the reply
    assert bucket_state(seaweed, rig.bucket) == ([], [])  # type: ignore[attr-defined]
    withdrawn = [e["data"] for e in rig.entries() if e["kind"] == "withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0]["aborted"][0]["parts"] == 1
    assert "outbox-drop" not in kinds(rig) and "disclosure" not in kinds(rig)


def test_grant_expiring_mid_upload_stops_it_at_the_next_check(
        rig: UploadRig, seaweed: SeaweedS3, proxy: ThrottlingProxy, tmp_path: Path) -> None:
    """Fails if the consent check before each part / chunk (the worker's progress callback) is
    removed: nothing else notices that the grant ran out while the upload is under way."""
    rig.grant(["clips"], for_s=600)
    rig.queue_clip(sealed(tmp_path, "clip.age", 2 * PART + 4096), None, "clips")
    proxy.wait_for_request(part(1), body_bytes=PART, timeout=30)
    rig.skew_s = 3600.0  # the device's clock passes the grant's end
    wait_for(rig.settled, timeout=60, what="the upload lane to settle")
    assert bucket_state(seaweed, rig.bucket) == ([], [])  # type: ignore[attr-defined]
    assert not [r for r in proxy.requests() if r.method == "POST" and "uploadId=" in r.path]
    assert "withdrawn" in kinds(rig)


def test_objects_stored_before_the_revoke_are_deleted_and_recorded(
        rig: UploadRig, seaweed: SeaweedS3, proxy: ThrottlingProxy, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    proxy.set_rate(512 * 1024)
    rig.queue_clip(sealed(tmp_path, "clip.age", 100_000), sealed(tmp_path, "snap.age", 3 * MiB),
                   "clips")
    proxy.wait_for_request(lambda r: r.method == "PUT" and r.path.endswith(".jpg.age"),
                           body_bytes=128 * 1024, timeout=30)
    clip_key = next(r.path for r in proxy.requests() if r.path.endswith(".mp4.age"))
    rig.revoke(["clips"])
    wait_for(rig.settled, timeout=30, what="the upload lane to settle")
    assert bucket_state(seaweed, rig.bucket) == ([], [])  # type: ignore[attr-defined]
    entries = rig.entries()
    kinds_ = [e["kind"] for e in entries]
    assert "outbox-drop" not in kinds_
    disclosure = next(e["data"] for e in entries if e["kind"] == "disclosure")
    withdrawn = next(e["data"] for e in entries if e["kind"] == "withdrawn")
    assert kinds_.index("disclosure") < kinds_.index("withdrawn")
    assert [k for k in disclosure["objects"]] == [clip_key.split("/", 2)[2]]
    assert withdrawn["objects"] == disclosure["objects"]
    assert disclosure["grants"] and not disclosure["complete"]


def test_the_s3_client_caps_its_kernel_send_buffer() -> None:
    """What a cancelled request can still send is bounded by the socket's send buffer: if a
    botocore upgrade moves the socket options, this fails (the adapter only logs)."""
    import socket

    from uplink.s3 import S3ObjectStore

    store = S3ObjectStore(S3Settings(bucket="b", endpoint_url="http://127.0.0.1:9",
                                     send_buffer_bytes=96 * 1024))
    options = store.client._endpoint.http_session._socket_options
    assert (socket.SOL_SOCKET, socket.SO_SNDBUF, 96 * 1024) in options
