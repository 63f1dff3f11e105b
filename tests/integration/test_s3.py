"""uplink/s3.py against a real SeaweedFS S3 server (signatures and checksums checked for real)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.servers_s3 import SeaweedS3
from uplink.s3 import (
    ObjectStore,
    ResumeState,
    S3AuthError,
    S3Error,
    S3IntegrityError,
    S3NotFound,
    S3ObjectStore,
    S3Settings,
    S3Unavailable,
    file_sha256,
    object_keys,
)

MiB = 1024 * 1024


@dataclass
class Requests:
    """The HTTP requests a boto3 client sends (retries included), via botocore's event hooks."""

    operations: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def __call__(self, request: Any, event_name: str, **_: Any) -> None:
        self.operations.append(event_name.rsplit(".", 1)[-1])
        self.urls.append(str(request.url))

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.operations)


def credentials_file(directory: Path, access_key: str, secret_key: str) -> Path:
    path = directory / "s3-credentials"
    path.write_text(f"[default]\naws_access_key_id = {access_key}\n"
                    f"aws_secret_access_key = {secret_key}\n", encoding="utf-8")
    return path


def make_store(server: SeaweedS3, bucket: str, tmp_path: Path, *, secret: str | None = None,
               access: str | None = None, **overrides: Any) -> tuple[S3ObjectStore, Requests,
                                                                     list[float]]:
    """A store with path-style addressing and a credentials file; returns it, its request log
    and the delays it slept (nothing really sleeps)."""
    settings = S3Settings(bucket=bucket, endpoint_url=server.url, addressing_style="path",
                          credentials_file=credentials_file(
                              tmp_path, access or server.access_key, secret or server.secret_key),
                          **overrides)
    slept: list[float] = []
    store = S3ObjectStore(settings, sleep=slept.append, rng=lambda: 0.5)
    requests = Requests()
    store.client.meta.events.register("before-send.s3", requests)
    return store, requests, slept


def random_file(path: Path, size: int) -> tuple[Path, str]:
    path.write_bytes(os.urandom(size))
    return path, file_sha256(path)


@pytest.fixture
def bucket(seaweed: SeaweedS3) -> str:
    return seaweed.create_bucket()


def test_put_get_round_trip_with_sha256(seaweed: SeaweedS3, bucket: str, tmp_path: Path) -> None:
    store, requests, _ = make_store(seaweed, bucket, tmp_path)
    port: ObjectStore = store  # S3ObjectStore implements the port (checked by mypy)
    src, digest = random_file(tmp_path / "clip.mp4.age", 3 * MiB + 7)
    keys = object_keys("doorward", "dev-1", "clip-1", date(2026, 11, 29))
    seen: list[tuple[int, int]] = []

    result = store.put_file(keys.clip, src, sha256_hex=digest, size=src.stat().st_size,
                            progress=lambda done, total: seen.append((done, total)))

    assert not result.skipped and seen == [(3 * MiB + 7, 3 * MiB + 7)]
    head = seaweed.client().head_object(Bucket=bucket, Key=keys.clip, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(digest)).decode()
    assert head["Metadata"]["sha256"] == digest
    info = port.exists(keys.clip)
    assert info is not None and (info.size, info.sha256) == (3 * MiB + 7, digest)
    fetched = port.get_file(keys.clip, tmp_path / "back.age")
    assert (fetched.size, fetched.sha256) == (3 * MiB + 7, digest)
    assert (tmp_path / "back.age").read_bytes() == src.read_bytes()
    assert not (tmp_path / "back.age.part").exists()
    assert store.exists(keys.snapshot) is None
    assert requests.counts["PutObject"] == 1


def test_wrong_checksum_is_rejected_and_nothing_stored(seaweed: SeaweedS3, bucket: str,
                                                       tmp_path: Path) -> None:
    store, requests, slept = make_store(seaweed, bucket, tmp_path)
    src, _ = random_file(tmp_path / "clip.age", 200_000)
    wrong = hashlib.sha256(b"what was sealed before the file was damaged").hexdigest()

    with pytest.raises(S3IntegrityError, match="BadDigest"):
        store.put_file("k/clip.age", src, sha256_hex=wrong, size=200_000)

    assert requests.counts["PutObject"] == 1 and slept == []  # not retried
    assert store.exists("k/clip.age") is None


def test_corrupted_part_aborts_the_multipart_upload(seaweed: SeaweedS3, bucket: str,
                                                    tmp_path: Path) -> None:
    store, _, _ = make_store(seaweed, bucket, tmp_path, multipart_threshold_bytes=5 * MiB,
                             part_size_bytes=5 * MiB)
    src, digest = random_file(tmp_path / "big.age", 11 * MiB)

    def corrupt_second_part(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:  # test seam: a wrong checksum on the wire
            params["ChecksumSHA256"] = base64.b64encode(bytes(32)).decode()

    store.client.meta.events.register("before-parameter-build.s3.UploadPart",
                                      corrupt_second_part)
    state = ResumeState()
    with pytest.raises(S3IntegrityError):
        store.put_file("k/big.age", src, sha256_hex=digest, size=11 * MiB, resume_state=state)

    assert state.upload_id is None
    assert seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert store.exists("k/big.age") is None


def test_file_changed_after_sealing_is_refused_before_any_part(seaweed: SeaweedS3, bucket: str,
                                                               tmp_path: Path) -> None:
    store, requests, _ = make_store(seaweed, bucket, tmp_path, multipart_threshold_bytes=5 * MiB)
    src, _ = random_file(tmp_path / "big.age", 6 * MiB)
    with pytest.raises(S3IntegrityError, match="changed after sealing"):
        store.put_file("k/big.age", src, sha256_hex="0" * 64, size=6 * MiB)
    assert "CreateMultipartUpload" not in requests.counts


def test_wrong_secret_is_an_auth_error_without_retries(seaweed: SeaweedS3, bucket: str,
                                                       tmp_path: Path) -> None:
    store, requests, slept = make_store(seaweed, bucket, tmp_path, secret="not-the-secret")
    src, digest = random_file(tmp_path / "clip.age", 1000)

    with pytest.raises(S3AuthError, match="AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"):
        store.put_file("k/clip.age", src, sha256_hex=digest, size=1000)
    with pytest.raises(S3AuthError, match="SignatureDoesNotMatch"):
        list(store.list("k/"))

    assert len(requests.operations) == 2 and slept == []


def test_unknown_key_and_read_only_identity_are_auth_errors(seaweed: SeaweedS3, bucket: str,
                                                            tmp_path: Path) -> None:
    unknown, _, _ = make_store(seaweed, bucket, tmp_path, access="NOSUCHKEY")
    with pytest.raises(S3AuthError, match="InvalidAccessKeyId"):
        list(unknown.list(""))
    readonly, _, slept = make_store(seaweed, bucket, tmp_path,
                                    access=seaweed.readonly_access_key,
                                    secret=seaweed.readonly_secret_key)
    with pytest.raises(S3AuthError, match="AccessDenied") as caught:
        readonly.put_bytes("k/manifest.jws", b"{}")
    assert caught.value.code == "AccessDenied" and slept == []


def test_missing_bucket_names_the_bucket(seaweed: SeaweedS3, tmp_path: Path) -> None:
    store, _, slept = make_store(seaweed, "no-such-bucket-here", tmp_path)
    src, digest = random_file(tmp_path / "clip.age", 1000)
    with pytest.raises(S3NotFound, match="'no-such-bucket-here' does not exist"):
        store.put_file("k/clip.age", src, sha256_hex=digest, size=1000)
    assert slept == []


def test_put_of_a_stored_object_is_skipped(seaweed: SeaweedS3, bucket: str,
                                           tmp_path: Path) -> None:
    store, requests, _ = make_store(seaweed, bucket, tmp_path)
    src, digest = random_file(tmp_path / "clip.age", 100_000)
    first = store.put_file("k/clip.age", src, sha256_hex=digest, size=100_000)
    before = len(requests.operations)

    again = store.put_file("k/clip.age", src, sha256_hex=digest, size=100_000)

    assert not first.skipped and again.skipped
    assert requests.operations[before:] == ["HeadObject"]  # no second PUT


class Interrupted(Exception):
    """Stands for the process dying mid-upload."""


def test_multipart_upload_resumes_from_saved_state(seaweed: SeaweedS3, bucket: str,
                                                   tmp_path: Path) -> None:
    src, digest = random_file(tmp_path / "big.age", 20 * MiB + 12345)  # 5 parts of 5 MiB
    size = src.stat().st_size
    saved: list[str] = []
    overrides: dict[str, Any] = {"multipart_threshold_bytes": 8 * MiB,
                                 "part_size_bytes": 5 * MiB}
    store, requests, _ = make_store(seaweed, bucket, tmp_path, **overrides)

    def crash_after_two_parts(done: int, total: int) -> None:
        if done >= 2 * 5 * MiB:
            raise Interrupted

    with pytest.raises(Interrupted):
        store.put_file("k/big.age", src, sha256_hex=digest, size=size,
                       progress=crash_after_two_parts,
                       resume_state=ResumeState(on_save=lambda s: saved.append(s.to_json())))
    assert requests.counts["UploadPart"] == 2
    assert len(json.loads(saved[-1])["parts"]) == 2
    assert len(seaweed.client().list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1

    # "after a restart": a new store and the state read back from storage
    store2, requests2, _ = make_store(seaweed, bucket, tmp_path, **overrides)
    state = ResumeState.from_json(saved[-1], on_save=lambda s: saved.append(s.to_json()))
    result = store2.put_file("k/big.age", src, sha256_hex=digest, size=size, resume_state=state)

    assert result.parts_sent == 3 and requests2.counts["UploadPart"] == 3
    assert requests2.counts["ListParts"] == 1 and requests2.counts["CreateMultipartUpload"] == 0
    assert state.upload_id is None and json.loads(saved[-1])["upload_id"] is None
    fetched = store2.get_file("k/big.age", tmp_path / "back.age")
    assert (fetched.size, fetched.sha256) == (size, digest)
    info = store2.exists("k/big.age")
    assert info is not None and info.sha256 == digest  # from metadata: the checksum is composite
    assert seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_stale_upload_id_starts_over(seaweed: SeaweedS3, bucket: str, tmp_path: Path) -> None:
    store, requests, _ = make_store(seaweed, bucket, tmp_path, multipart_threshold_bytes=5 * MiB,
                                    part_size_bytes=5 * MiB)
    src, digest = random_file(tmp_path / "big.age", 11 * MiB)
    state = ResumeState(upload_id="gone-upload-id", key="k/big.age", sha256=digest,
                        part_size=5 * MiB,
                        parts=[{"PartNumber": 1, "ETag": '"x"', "ChecksumSHA256": "x"}])

    result = store.put_file("k/big.age", src, sha256_hex=digest, size=11 * MiB,
                            resume_state=state)

    assert result.parts_sent == 3 and requests.counts["CreateMultipartUpload"] == 1
    info = store.exists("k/big.age")
    assert info is not None and (info.size, info.sha256) == (11 * MiB, digest)


def test_state_for_other_content_is_aborted_and_restarted(seaweed: SeaweedS3, bucket: str,
                                                          tmp_path: Path) -> None:
    store, requests, _ = make_store(seaweed, bucket, tmp_path, multipart_threshold_bytes=5 * MiB,
                                    part_size_bytes=5 * MiB)
    src, digest = random_file(tmp_path / "big.age", 11 * MiB)
    old = seaweed.client().create_multipart_upload(Bucket=bucket, Key="k/big.age")["UploadId"]
    state = ResumeState(upload_id=old, key="k/big.age", sha256="f" * 64, part_size=5 * MiB)

    result = store.put_file("k/big.age", src, sha256_hex=digest, size=11 * MiB,
                            resume_state=state)

    assert result.parts_sent == 3 and requests.counts["AbortMultipartUpload"] == 1
    assert seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_endpoint_down_then_back(seaweed_private: SeaweedS3, tmp_path: Path) -> None:
    server = seaweed_private
    bucket = server.create_bucket()
    store, requests, slept = make_store(server, bucket, tmp_path, max_attempts=4,
                                        backoff_base_s=0.5)
    src, digest = random_file(tmp_path / "clip.age", 50_000)
    server.stop()

    expected = f"bucket endpoint {server.url} unreachable; uploads wait in the outbox"
    with pytest.raises(S3Unavailable, match=expected):
        store.put_file("k/clip.age", src, sha256_hex=digest, size=50_000)
    assert slept == [0.25, 0.5, 1.0]  # full jitter with rng = 0.5: half of 0.5 * 2**n
    assert requests.counts["HeadObject"] == 4

    server.restart()
    result = store.put_file("k/clip.age", src, sha256_hex=digest, size=50_000)
    assert not result.skipped and store.exists("k/clip.age") is not None


def test_delete_and_list_with_prefix(seaweed: SeaweedS3, bucket: str, tmp_path: Path) -> None:
    store, _, _ = make_store(seaweed, bucket, tmp_path)
    day = date(2026, 11, 29)
    mine = [object_keys("pfx", "dev-a", f"c{i}", day) for i in range(3)]
    other = object_keys("pfx", "dev-b", "c0", day)
    for keys in [*mine, other]:
        store.put_bytes(keys.manifest, b"{}", content_type="application/jose")
        store.put_bytes(keys.clip, b"sealed")

    listed = list(store.list("pfx/dev-a/"))
    assert listed == sorted(k for keys in mine for k in (keys.clip, keys.manifest))
    assert store.get_bytes(mine[0].manifest, max_bytes=16) == b"{}"
    with pytest.raises(S3Error, match="more than the 3 expected"):
        store.get_bytes(mine[0].clip, max_bytes=3)

    assert sorted(store.delete(listed)) == listed
    assert list(store.list("pfx/dev-a/")) == []
    assert list(store.list("pfx/")) == sorted([other.clip, other.manifest])


def test_requests_use_path_style_addressing(seaweed: SeaweedS3, bucket: str,
                                            tmp_path: Path) -> None:
    store, requests, _ = make_store(seaweed, bucket, tmp_path)
    store.put_bytes("a/b.jws", b"x")
    assert store.exists("a/b.jws") is not None
    assert requests.urls and all(u.startswith(f"{seaweed.url}/{bucket}/") for u in requests.urls)


def test_abort_stale_uploads(seaweed: SeaweedS3, bucket: str, tmp_path: Path) -> None:
    store, _, _ = make_store(seaweed, bucket, tmp_path)
    client = seaweed.client()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="pfx/x.age")["UploadId"]
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/y.age")

    assert store.abort_stale_uploads("pfx/", older_than_s=3600) == []  # too recent
    later = datetime.now(UTC) + timedelta(hours=2)
    assert store.abort_stale_uploads("pfx/", 3600, now=later) == [("pfx/x.age", upload_id)]
    left = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["Key"] for u in left] == ["elsewhere/y.age"]


def test_ten_megabyte_single_put_round_trips(seaweed: SeaweedS3, bucket: str,
                                             tmp_path: Path) -> None:
    """Correctness only; the time it takes is `scripts/bench throughput`'s business."""
    store, requests, _ = make_store(seaweed, bucket, tmp_path,
                                    multipart_threshold_bytes=16 * MiB)
    src, digest = random_file(tmp_path / "clip.age", 10 * MiB)
    result = store.put_file("k/ten.age", src, sha256_hex=digest, size=10 * MiB)
    assert not result.skipped
    assert requests.counts["PutObject"] == 1 and "CreateMultipartUpload" not in requests.counts
    assert store.get_file("k/ten.age", tmp_path / "back.age").sha256 == digest


def test_object_keys_use_the_upload_day_and_refuse_unsafe_ids() -> None:
    keys = object_keys("/doorward/", "dev-1", "20261129T101500-ab", date(2026, 3, 7))
    assert keys.clip == "doorward/dev-1/2026/03/07/20261129T101500-ab.mp4.age"
    assert keys.snapshot.endswith("/20261129T101500-ab.jpg.age")
    assert keys.manifest.endswith("/20261129T101500-ab.manifest.jws")
    assert object_keys("", "d", "c", date(2026, 1, 2)).clip == "d/2026/01/02/c.mp4.age"
    with pytest.raises(ValueError, match="clip_id"):
        object_keys("p", "dev-1", "../escape", date(2026, 1, 1))


def test_settings_refuse_parts_below_five_mib() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        S3Settings(bucket="b", part_size_bytes=MiB)
