"""The owner app's timeline against a real SeaweedFS: keys listed with their ETags
(uplink/s3_listing.py), so a second listing fetches only manifests that changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.owner.app.service import OwnerService
from agent.owner.app.settings import BucketOptions
from tests.integration.test_s3 import make_store
from tests.owner_app_fixtures import Bucketful
from tests.servers_s3 import SeaweedS3
from uplink.s3_listing import list_with_etags


def test_listing_gives_each_objects_etag(seaweed: SeaweedS3, tmp_path: Path) -> None:
    bucket = seaweed.create_bucket()
    store, requests, _ = make_store(seaweed, bucket, tmp_path)
    for i in range(3):
        store.put_bytes(f"p/k{i}", f"body {i}".encode())
    pairs = list(list_with_etags(store, "p/"))
    assert pairs == [(f"p/k{i}", hashlib.md5(f"body {i}".encode()).hexdigest()) for i in range(3)]
    assert requests.counts["ListObjectsV2"] == 1


def test_a_second_listing_fetches_only_what_changed(seaweed: SeaweedS3, tmp_path: Path) -> None:
    bucket = seaweed.create_bucket()
    store, requests, _ = make_store(seaweed, bucket, tmp_path)
    b = Bucketful.create(tmp_path / "owner", store)
    for i in range(5):
        b.add_clip(f"c{i}", b"video", b"\xff\xd8")

    def listing() -> dict[str, object]:
        s = OwnerService(b.ring, bucket=BucketOptions(bucket), store=store)
        try:
            return s.clips(None, refresh=True)
        finally:
            s.close()

    requests.operations.clear()
    assert listing()["total"] == 5
    assert requests.counts["GetObject"] == 5
    requests.operations.clear()
    assert listing()["total"] == 5
    assert requests.counts["GetObject"] == 0  # every manifest came from the cache, verified
    key = b.keys["c3"]
    token = store.get_bytes(key, 1 << 16)
    store.put_bytes(key, token[:-4] + (b"AAAA" if token[-4:] != b"AAAA" else b"BBBB"))
    requests.operations.clear()
    doc = listing()
    assert requests.counts["GetObject"] == 1
    assert doc["unverified"] == [key] and doc["total"] == 4
