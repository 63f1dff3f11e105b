"""uplink.memory_store on its own: the object-store contract (tests/contracts/object_store.py)
and the twin's test knobs. The same contract runs against SeaweedFS in
tests/integration/test_object_store_contract.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contracts.object_store import *  # noqa: F403  (the contract's test functions)
from tests.contracts.object_store import PART, random_file, twin_store
from uplink.memory_store import MemoryObjectStore
from uplink.s3_errors import S3Error, S3Unavailable


@pytest.fixture
def store() -> MemoryObjectStore:
    return twin_store()


def test_fail_next_makes_requests_fail_transiently_then_recovers(tmp_path: Path) -> None:
    store = twin_store()
    src, digest = random_file(tmp_path / "clip.age", 1000)
    store.fail_next(2)
    for _ in range(2):
        with pytest.raises(S3Unavailable):
            store.put_file("k/a", src, sha256_hex=digest, size=1000)
    assert store.put_file("k/a", src, sha256_hex=digest, size=1000).size == 1000
    assert store.requests == ["HEAD k/a", "HEAD k/a", "HEAD k/a", "PUT k/a"]


def test_an_outage_mid_multipart_keeps_the_upload_for_a_resume(tmp_path: Path) -> None:
    store = twin_store()
    size = 2 * PART + 1
    src, digest = random_file(tmp_path / "big.age", size)
    from uplink.s3_multipart import ResumeState
    state = ResumeState()

    def outage_after_first_part(done: int, total: int) -> None:
        store.fail_next(1)

    with pytest.raises(S3Unavailable):
        store.put_file("k/big", src, sha256_hex=digest, size=size, resume_state=state,
                       progress=outage_after_first_part)
    assert state.upload_id in store.uploads
    result = store.put_file("k/big", src, sha256_hex=digest, size=size, resume_state=state)
    assert result.parts_sent == 2 and store.uploads == {}


def test_size_cap(tmp_path: Path) -> None:
    store = MemoryObjectStore(max_object_bytes=100)
    src, digest = random_file(tmp_path / "clip.age", 101)
    with pytest.raises(S3Error, match="EntityTooLarge") as caught:
        store.put_file("k/a", src, sha256_hex=digest, size=101)
    assert caught.value.code == "EntityTooLarge" and store.objects == {}
    with pytest.raises(S3Error, match="EntityTooLarge"):
        store.put_bytes("k/b", b"x" * 101)
