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


def test_before_put_runs_as_the_body_is_about_to_be_sent(tmp_path: Path) -> None:
    store = twin_store()
    src, digest = random_file(tmp_path / "clip.age", 1000)
    withdrawn, seen = [], []

    def withdraw(key: str) -> None:
        seen.append((key, list(store.requests)))
        withdrawn.append(key)

    def consent() -> None:
        if withdrawn:
            raise PermissionError("consent withdrawn")

    store.before_put = withdraw
    with pytest.raises(PermissionError):  # the body's first check sees what before_put did
        store.put_file("k/a", src, sha256_hex=digest, size=1000, check=consent)
    assert seen == [("k/a", ["HEAD k/a"])]  # after the skip check, before the PUT
    assert store.requests == ["HEAD k/a", "PUT k/a"] and store.objects == {}
    assert store.checks == 1
    store.before_put, withdrawn[:] = None, []
    store.put_file("k/a", src, sha256_hex=digest, size=1000, check=consent)
    store.before_put = withdraw
    assert store.put_file("k/a", src, sha256_hex=digest, size=1000).skipped
    assert len(seen) == 1  # an object stored alike is not sent again: no before_put


def test_fail_puts_fails_every_send_of_a_key_so_ending_until_removed(tmp_path: Path) -> None:
    store = twin_store()
    src, digest = random_file(tmp_path / "clip.age", 1000)
    store.fail_puts[".jpg.age"] = S3Unavailable("away")
    for _ in range(2):
        with pytest.raises(S3Unavailable, match="away"):
            store.put_file("k/a.jpg.age", src, sha256_hex=digest, size=1000)
    assert store.put_file("k/a.mp4.age", src, sha256_hex=digest, size=1000).size == 1000
    assert store.put_bytes("k/b.jpg.age", b"x").size == 1  # put_file's knob only
    assert store.requests.count("PUT k/a.jpg.age") == 2 and store.checks == 1
    assert store.sorted_keys() == ["k/a.mp4.age", "k/b.jpg.age"]
    store.fail_puts.clear()
    store.put_file("k/a.jpg.age", src, sha256_hex=digest, size=1000)
    assert "k/a.jpg.age" in store.objects


def test_fail_puts_fails_a_multipart_upload_at_its_start_and_its_parts(tmp_path: Path) -> None:
    from uplink.s3_multipart import ResumeState
    store = twin_store()
    size = 2 * PART + 1
    src, digest = random_file(tmp_path / "big.age", size)
    store.fail_puts["big"] = S3Error("AccessDenied", code="AccessDenied")
    with pytest.raises(S3Error, match="AccessDenied"):
        store.put_file("k/big", src, sha256_hex=digest, size=size)
    assert store.requests == ["HEAD k/big", "CREATE k/big"] and store.uploads == {}
    state = ResumeState()
    store.fail_puts.clear()

    def fail_parts_after_the_first(done: int, total: int) -> None:
        store.fail_puts["big"] = S3Unavailable("away")

    with pytest.raises(S3Unavailable):
        store.put_file("k/big", src, sha256_hex=digest, size=size, resume_state=state,
                       progress=fail_parts_after_the_first)
    assert store.requests[-2:] == ["PART k/big 1", "PART k/big 2"]
    with pytest.raises(S3Unavailable):  # the resume's parts fail too, while the entry stays
        store.put_file("k/big", src, sha256_hex=digest, size=size, resume_state=state)
    store.fail_puts.clear()
    assert store.put_file("k/big", src, sha256_hex=digest, size=size,
                          resume_state=state).parts_sent == 2


def test_checks_counts_every_check_a_body_made(tmp_path: Path) -> None:
    store = twin_store()
    src, digest = random_file(tmp_path / "clip.age", 300 * 1024)
    calls: list[None] = []
    store.put_file("k/a", src, sha256_hex=digest, size=300 * 1024,
                   check=lambda: calls.append(None))
    assert store.checks == len(calls) >= 1 + 4  # before the first byte, then every 64 KiB
    store.put_file("k/b", src, sha256_hex=digest, size=300 * 1024)  # counted without a check
    assert store.checks == 2 * len(calls)
