"""What agent relies on of the object store, as test functions over a ``store`` fixture (an
``ObjectStore`` with 5 MiB multipart threshold and parts): uplink.memory_store against SeaweedFS
with uplink.s3 (tests/integration/test_object_store_contract.py), and on its own
(tests/unit/test_memory_store.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from uplink.memory_store import MemoryObjectStore
from uplink.objectstore import ObjectStore, file_sha256
from uplink.s3_errors import S3Error, S3IntegrityError, S3NotFound
from uplink.s3_multipart import ResumeState

MiB = 1024 * 1024
THRESHOLD = PART = 5 * MiB


def twin_store() -> MemoryObjectStore:
    return MemoryObjectStore(multipart_threshold_bytes=THRESHOLD, part_size_bytes=PART)


def random_file(path: Path, size: int) -> tuple[Path, str]:
    path.write_bytes(os.urandom(size))
    return path, file_sha256(path)


class Stop(Exception):
    """Stands for consent withdrawn (or the process dying) mid-upload."""


def test_put_round_trip_with_progress_and_digest(store: ObjectStore, tmp_path: Path) -> None:
    src, digest = random_file(tmp_path / "clip.age", 200_000)
    seen: list[tuple[int, int]] = []
    result = store.put_file("d/1/clip.mp4.age", src, sha256_hex=digest, size=200_000,
                            progress=lambda done, total: seen.append((done, total)))
    assert (result.size, result.sha256, result.skipped) == (200_000, digest, False)
    assert seen == [(200_000, 200_000)]
    info = store.exists("d/1/clip.mp4.age")
    assert info is not None and (info.size, info.sha256) == (200_000, digest)
    assert store.get_bytes("d/1/clip.mp4.age", 200_000) == src.read_bytes()
    fetched = store.get_file("d/1/clip.mp4.age", tmp_path / "back")
    assert (fetched.size, fetched.sha256) == (200_000, digest)
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_a_stored_object_is_skipped(store: ObjectStore, tmp_path: Path) -> None:
    src, digest = random_file(tmp_path / "clip.age", 1000)
    assert not store.put_file("k/a", src, sha256_hex=digest, size=1000).skipped
    assert store.put_file("k/a", src, sha256_hex=digest, size=1000).skipped


def test_put_bytes_records_the_digest(store: ObjectStore) -> None:
    result = store.put_bytes("k/m.manifest.jws", b"manifest", content_type="application/jose")
    info = store.exists("k/m.manifest.jws")
    assert info is not None and (info.size, info.sha256) == (8, result.sha256)


def test_missing_keys(store: ObjectStore, tmp_path: Path) -> None:
    assert store.exists("k/none") is None
    with pytest.raises(S3NotFound):
        store.get_bytes("k/none", 100)
    with pytest.raises(S3NotFound):
        store.get_file("k/none", tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_get_bytes_refuses_an_object_larger_than_expected(store: ObjectStore) -> None:
    store.put_bytes("k/big", b"x" * 100)
    with pytest.raises(S3Error, match="more than"):
        store.get_bytes("k/big", 99)


def test_list_by_prefix_and_delete(store: ObjectStore) -> None:
    for key in ("d/1/a", "d/1/b", "d/2/c"):
        store.put_bytes(key, key.encode())
    assert list(store.list("d/1/")) == ["d/1/a", "d/1/b"]
    assert sorted(store.delete(["d/1/a", "d/1/gone"])) == ["d/1/a", "d/1/gone"]
    assert list(store.list("d/")) == ["d/1/b", "d/2/c"]


def test_wrong_digest_or_size_stores_nothing(store: ObjectStore, tmp_path: Path) -> None:
    src, digest = random_file(tmp_path / "clip.age", 1000)
    with pytest.raises(S3IntegrityError):
        store.put_file("k/a", src, sha256_hex="0" * 64, size=1000)
    with pytest.raises(S3IntegrityError):
        store.put_file("k/a", src, sha256_hex=digest, size=999)
    assert store.exists("k/a") is None


def test_check_stops_a_single_put_and_nothing_is_stored(store: ObjectStore,
                                                        tmp_path: Path) -> None:
    src, digest = random_file(tmp_path / "clip.age", 1 * MiB)
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 2:  # after 64 KiB of the body
            raise Stop

    with pytest.raises(Stop):
        store.put_file("k/a", src, sha256_hex=digest, size=1 * MiB, check=check)
    assert store.exists("k/a") is None
    assert len(calls) == 3


def test_multipart_stopped_then_resumed(store: ObjectStore, tmp_path: Path) -> None:
    size = 2 * PART + 12345  # three parts
    src, digest = random_file(tmp_path / "big.age", size)
    saved: list[str] = []

    def stop_after_one_part(done: int, total: int) -> None:
        if done >= PART:
            raise Stop

    with pytest.raises(Stop):
        store.put_file("k/big", src, sha256_hex=digest, size=size, progress=stop_after_one_part,
                       resume_state=ResumeState(on_save=lambda s: saved.append(s.to_json())))
    assert len(json.loads(saved[-1])["parts"]) == 1
    assert store.exists("k/big") is None
    state = ResumeState.from_json(saved[-1], on_save=lambda s: saved.append(s.to_json()))
    progress: list[int] = []
    result = store.put_file("k/big", src, sha256_hex=digest, size=size, resume_state=state,
                            progress=lambda done, total: progress.append(done))
    assert result.parts_sent == 2 and progress == [2 * PART, size]
    assert state.upload_id is None
    info = store.exists("k/big")
    assert info is not None and (info.size, info.sha256) == (size, digest)


def test_abort_of_an_upload_that_is_gone_is_no_error(store: ObjectStore, tmp_path: Path) -> None:
    size = PART + 1
    src, digest = random_file(tmp_path / "big.age", size)
    state = ResumeState()
    with pytest.raises(Stop):
        store.put_file("k/big", src, sha256_hex=digest, size=size, resume_state=state,
                       progress=lambda done, total: (_ for _ in ()).throw(Stop()))
    assert state.upload_id is not None
    store.abort_upload("k/big", state.upload_id)
    store.abort_upload("k/big", state.upload_id)
    assert store.exists("k/big") is None
