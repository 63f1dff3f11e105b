"""The clip store: durable commits, crash recovery, reconciliation, eviction and retention."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sqlite3
from pathlib import Path

import pytest

from agent.errors import StoreError
from agent.store import ClipEnd, ClipStart, ClipStore, EventRecord, iso_utc
from uplink.age import CHUNK_SIZE, NONCE_SIZE, SEALED_CHUNK_SIZE, AgeReader, AgeWriter, parse_header
from uplink.agekeys import Identity

NOW = 1_800_000_000.0  # 2027-01-15
DAY = 86400.0


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def owner() -> Identity:
    return Identity.generate()


def make_store(path: Path, clock: Clock | None = None, **kw: float) -> ClipStore:
    args: dict[str, float] = {"max_bytes": 1 << 30, "retention_days": 30, "min_free_bytes": 0}
    args.update(kw)
    return ClipStore(
        path,
        max_bytes=int(args["max_bytes"]),
        retention_days=args["retention_days"],
        min_free_bytes=int(args["min_free_bytes"]),
        clock_wall=clock or Clock(),
    )


def payload(n: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(n)


def start(t: float = NOW, owner: Identity | None = None) -> ClipStart:
    recipients = (str(owner.recipient),) if owner else ("age1example",)
    return ClipStart(t, 10.0, recipients, event_id="7", reason="motion")


def add_clip(store: ClipStore, owner: Identity, t: float, size: int = 1000, seed: int = 0) -> str:
    clip_id = store.new_clip_id()
    sink = store.open_clip(clip_id, start(t, owner))
    with AgeWriter(sink, [owner.recipient]) as w:
        w.write(payload(size, seed))
    sink.commit(ClipEnd(ended_at_s=t + 8.0, source_end_s=18.0))
    return clip_id


def test_commit_renames_indexes_and_describes_the_clip(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path / "data")
    clip_id = store.new_clip_id()
    sink = store.open_clip(clip_id, start(NOW, owner))
    assert sink.partial.exists() and store.list_clips() == []  # in progress: not a clip yet
    with AgeWriter(sink, [owner.recipient]) as w:
        w.write(payload(200_000))
    record = sink.commit(ClipEnd(ended_at_s=NOW + 8.0, source_end_s=18.0))
    assert not sink.partial.exists()
    assert record.path == store.clip_path(clip_id) and record.path.is_absolute()
    assert record.bytes == record.path.stat().st_size
    assert record.started_at == "2027-01-15T08:00:00.000+00:00"
    assert record.ended_at == "2027-01-15T08:00:08.000+00:00"
    assert (record.source_start_s, record.source_end_s, record.duration_s) == (10.0, 18.0, 8.0)
    assert not record.truncated and not record.delivered and record.event_id == "7"
    assert record.recipients == (str(owner.recipient),)
    assert store.list_clips() == [record] and store.get_clip(clip_id) == record
    with open(record.path, "rb") as f:
        assert AgeReader(f, [owner]).read() == payload(200_000)


def test_index_is_wal_and_survives_reopening(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    clip_id = add_clip(store, owner, NOW)
    store.close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    again = make_store(tmp_path)
    assert [c.id for c in again.list_clips()] == [clip_id]
    assert again.recover().changed is False


def test_abort_removes_the_partial_and_its_row(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    sink = store.open_clip(store.new_clip_id(), start(NOW, owner))
    sink.write(b"x" * 1000)
    sink.abort()
    sink.abort()  # idempotent
    assert os.listdir(store.clips_dir) == []
    assert store.recover().changed is False


def test_snapshot_is_written_durably_and_linked(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    clip_id = store.new_clip_id()
    sink = store.open_clip(clip_id, start(NOW, owner))
    path = store.put_snapshot(clip_id, b"sealed-jpeg")
    with AgeWriter(sink, [owner.recipient]) as w:
        w.write(b"video")
    record = sink.commit(ClipEnd(NOW + 1, 11.0))
    assert record.snapshot_path == path and path.read_bytes() == b"sealed-jpeg"
    assert sorted(os.listdir(store.clips_dir)) == [f"{clip_id}.jpg.age", f"{clip_id}.mp4.age"]
    assert store.usage().bytes_used == record.bytes + len(b"sealed-jpeg")


def test_clip_ids_are_opaque_and_unique(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    ids = [store.new_clip_id() for _ in range(20)]
    assert len(set(ids)) == 20
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def sealed_file(owner: Identity, n: int) -> tuple[bytes, int]:
    """An age file of ``n`` plaintext bytes, and where its payload starts (header + nonce)."""
    out = io.BytesIO()
    with AgeWriter(out, [owner.recipient]) as w:
        w.write(payload(n))
    data = out.getvalue()
    header = parse_header(data)
    assert header is not None
    return data, header.length + NONCE_SIZE


def crash_with_partial(path: Path, owner: Identity, data: bytes) -> str:
    """Leave a clip as a kill -9 would: its row partial, its file holding ``data``."""
    store = make_store(path)
    clip_id = store.new_clip_id()
    sink = store.open_clip(clip_id, start(NOW, owner))
    sink.write(data)
    sink.flush()
    store.close()
    return clip_id


# Where the crash cut the file, from the payload start (header + nonce) in sealed chunks and bytes;
# None means "at the end of the file minus one byte".
CUTS = {
    "inside the header": (None, 0, 10, None),
    "inside the nonce": (0, 0, -1, None),
    "header and nonce only": (0, 0, 0, None),
    "no whole chunk": (0, 1, -1, None),
    "one chunk": (0, 1, 0, 1),
    "one chunk and a bit": (0, 1, 5000, 1),
    "three chunks and a byte": (0, 3, 1, 3),
    "only the short final chunk cut": (None, None, -1, 3),
}


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_recover_trims_a_crashed_clip_to_whole_sealed_chunks(
    tmp_path: Path, owner: Identity, cut: tuple[int | None, int | None, int, int | None]
) -> None:
    data, start_ = sealed_file(owner, 3 * CHUNK_SIZE + 1000)
    base, chunks, extra, whole_chunks = cut
    if chunks is None:
        n = len(data) + extra
    else:
        n = (start_ if base is not None else 0) + chunks * SEALED_CHUNK_SIZE + extra
    clip_id = crash_with_partial(tmp_path, owner, data[:n])
    store = make_store(tmp_path, clock=Clock(NOW + 60))
    report = store.recover()
    assert os.listdir(store.clips_dir) == ([f"{clip_id}.mp4.age"] if whole_chunks else [])
    if whole_chunks is None:
        assert report.removed_partials == (clip_id,) and store.list_clips() == []
        return
    assert report.recovered_truncated == (clip_id,)
    [record] = store.list_clips()
    assert record.truncated and record.bytes == start_ + whole_chunks * SEALED_CHUNK_SIZE
    assert record.recipients == (str(owner.recipient),) and record.event_id == "7"
    assert record.source_start_s == 10.0 and record.duration_s >= 0.0
    with open(record.path, "rb") as f:
        reader = AgeReader(f, [owner], allow_truncated=True)
        assert reader.read() == payload(3 * CHUNK_SIZE + 1000)[: whole_chunks * CHUNK_SIZE]
        assert reader.truncated


def test_recover_reconciles_rows_and_files(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    kept = add_clip(store, owner, NOW)
    lost = add_clip(store, owner, NOW + 10)  # its file will vanish
    orphan = add_clip(store, owner, NOW + 20)  # its row will vanish
    renamed = store.new_clip_id()  # crash between rename and index update
    sink = store.open_clip(renamed, start(NOW + 30, owner))
    with AgeWriter(sink, [owner.recipient]) as w:
        w.write(b"complete clip")
    sink.flush()
    os.replace(sink.partial, sink.final)
    store.clip_path(lost).unlink()
    store.close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    with db:
        db.execute("DELETE FROM clips WHERE id = ?", (orphan,))
    db.close()
    clips = tmp_path / "clips"
    (clips / "00000000deadbeef.jpg.age").write_bytes(b"snapshot of nothing")
    (clips / f"{kept}.jpg.age.partial").write_bytes(b"half a snapshot")
    (clips / "notes.txt").write_text("not ours")

    store = make_store(tmp_path)
    report = store.recover()
    assert report.dropped_rows == (lost,)
    assert report.indexed_orphans == (orphan,)
    assert report.completed == (renamed,)
    assert set(report.removed_files) == {"00000000deadbeef.jpg.age", f"{kept}.jpg.age.partial"}
    assert report.ignored_files == ("notes.txt",)
    by_id = {c.id: c for c in store.list_clips()}
    assert sorted(by_id) == sorted([kept, orphan, renamed])
    assert not by_id[renamed].truncated and by_id[renamed].recipients == (str(owner.recipient),)
    assert by_id[orphan].started_at_s == pytest.approx(store.clip_path(orphan).stat().st_mtime)
    with open(by_id[renamed].path, "rb") as f:
        assert AgeReader(f, [owner]).read() == b"complete clip"
    assert store.recover().changed is False  # idempotent


def test_only_one_store_may_recover_a_data_dir(tmp_path: Path) -> None:
    first = make_store(tmp_path)
    first.recover()
    with pytest.raises(StoreError, match="another doorward daemon"):
        make_store(tmp_path).recover()
    first.close()
    make_store(tmp_path).recover()


def test_eviction_takes_delivered_clips_first_then_the_oldest(
    tmp_path: Path, owner: Identity
) -> None:
    store = make_store(tmp_path)
    ids = [add_clip(store, owner, NOW + i * 60, size=10_000, seed=i) for i in range(5)]
    store.mark_delivered(ids[3])
    store.mark_delivered(ids[1])
    each = store.get_clip(ids[0]).bytes  # type: ignore[union-attr]
    store.max_bytes = 2 * each + 10
    assert store.enforce_limits() == [ids[1], ids[3], ids[0]]
    assert [c.id for c in store.list_clips()] == [ids[2], ids[4]]
    assert sorted(os.listdir(store.clips_dir)) == sorted(f"{i}.mp4.age" for i in ids[2::2])
    assert store.enforce_limits() == []


def test_retention_evicts_old_clips_and_events(tmp_path: Path, owner: Identity) -> None:
    clock = Clock(NOW)
    store = make_store(tmp_path, clock=clock, retention_days=7)
    old = add_clip(store, owner, NOW - 8 * DAY)
    new = add_clip(store, owner, NOW - 6 * DAY)
    for eid, t in (("old", NOW - 8 * DAY), ("new", NOW - DAY)):
        store.record_event(
            event_id=eid, reason="motion", onset_s=1.0, last_motion_s=4.0, peak_area=0.2,
            started_at_s=t, ended_at_s=t + 5,
        )  # fmt: skip
    assert store.enforce_limits() == [old]
    assert [e.id for e in store.list_events()] == ["new"]
    clock.t += 2 * DAY
    assert store.enforce_limits() == [new]
    assert os.listdir(store.clips_dir) == []


def test_low_disk_space_evicts_until_the_reserve_is_free(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    ids = [add_clip(store, owner, NOW + i) for i in range(3)]
    store.min_free_bytes = 1 << 62  # more than any disk: everything goes, oldest first
    assert store.enforce_limits() == ids


def test_events_are_upserted_by_id(tmp_path: Path) -> None:
    clock = Clock(NOW)
    store = make_store(tmp_path, clock=clock)
    opened = store.record_event(
        event_id=3, reason="motion", onset_s=1.0, last_motion_s=None, peak_area=0.1
    )
    assert opened.ended_at is None and opened.started_at == iso_utc(NOW)
    clock.t += 9
    store.record_event(
        event_id=3, reason="motion", onset_s=1.0, last_motion_s=4.0, peak_area=0.3, clip_id="c",
        started_at_s=NOW,
    )  # fmt: skip
    assert store.list_events() == [
        EventRecord("3", "motion", iso_utc(NOW), iso_utc(NOW + 9), 1.0, 4.0, 0.3, "c")
    ]
    # without wall times: the end is now, the start now minus the motion span
    e = store.record_event(event_id=4, reason="ring", onset_s=2.0, last_motion_s=5.0, peak_area=0)
    assert (e.started_at, e.ended_at) == (iso_utc(NOW + 6), iso_utc(NOW + 9))


def test_delivery_and_deletion(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    clip_id = add_clip(store, owner, NOW)
    store.mark_delivered(clip_id)
    assert store.get_clip(clip_id).delivered  # type: ignore[union-attr]
    with pytest.raises(StoreError, match="no complete clip"):
        store.mark_delivered("0000000000000000")
    assert store.delete_clip(clip_id)
    assert store.list_clips() == [] and os.listdir(store.clips_dir) == []
    usage = store.usage()
    assert (usage.bytes_used, usage.clips) == (0, 0) and usage.disk_free > 0


def test_bad_limits_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="max_bytes"):
        ClipStore(tmp_path, max_bytes=0, retention_days=1)
    with pytest.raises(StoreError, match="retention_days"):
        ClipStore(tmp_path, max_bytes=1, retention_days=0)


def test_the_floor_evicting_a_just_sealed_clip_is_a_warning(
        tmp_path: Path, owner: Identity, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 (5): below min_free_bytes every new clip went the moment it was sealed, and only
    INFO lines said so."""
    store = make_store(tmp_path)
    store.min_free_bytes = 1 << 62
    with caplog.at_level(logging.INFO, logger="agent.store.clipstore"):
        clip_id = add_clip(store, owner, NOW)
        assert store.enforce_limits() == [clip_id]
    evictions = [r for r in caplog.records if "evicting" in r.getMessage()]
    assert [r.levelno for r in evictions] == [logging.WARNING]
    assert "just sealed" in evictions[0].getMessage()
    assert "min_free_bytes" in evictions[0].getMessage()


def test_retention_eviction_of_old_clips_stays_at_info(
        tmp_path: Path, owner: Identity, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(NOW)
    store = make_store(tmp_path, clock=clock)
    old = add_clip(store, owner, NOW - 40 * DAY)
    add_clip(store, owner, NOW)
    with caplog.at_level(logging.INFO, logger="agent.store.clipstore"):
        store.enforce_limits()
    (eviction,) = [r for r in caplog.records if "evicting" in r.getMessage()]
    assert eviction.levelno == logging.INFO and old in eviction.getMessage()


def _damage_every_page_after_the_schema(path: Path) -> None:
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        for n in range(1, size // 4096):
            f.seek(n * 4096)
            f.write(b"\xa5" * 4096)


@pytest.mark.parametrize("damage", ["header", "pages", "truncate"])
def test_a_damaged_index_is_refused_with_the_fix_then_rebuilt_by_the_daemon(
        tmp_path: Path, owner: Identity, damage: str) -> None:
    data = tmp_path / "data"
    store = make_store(data)
    ids = {add_clip(store, owner, NOW + i, seed=i) for i in range(3)}
    for i in range(40):  # enough rows for several pages
        store.record_event(event_id=f"e{i}", reason="motion", onset_s=1.0, last_motion_s=2.0,
                           peak_area=0.1, started_at_s=NOW + i, ended_at_s=NOW + i + 1)
    store.close()  # the last connection checkpoints the WAL into the file
    index = data / "index.sqlite"
    if damage == "header":
        with index.open("r+b") as f:
            f.write(b"\x00garbage" * 8)
    elif damage == "pages":
        _damage_every_page_after_the_schema(index)
    else:
        os.truncate(index, index.stat().st_size // 2)
    damaged = index.read_bytes()
    with pytest.raises(StoreError, match=r"damaged .*doorward run"):
        make_store(data).list_clips()
    assert index.read_bytes() == damaged  # a reader changes nothing
    repaired = ClipStore(data, max_bytes=1 << 30, retention_days=30, min_free_bytes=0,
                         clock_wall=Clock(), repair_index=True)
    report = repaired.recover()
    (kept,) = [p for p in data.glob("index.sqlite.corrupt-*") if not p.name.endswith("-shm")
               and not p.name.endswith("-wal")]  # an empty WAL a reader made is kept beside it
    assert kept.name == "index.sqlite.corrupt-20270115T080000Z" and kept.read_bytes() == damaged
    assert {c.id for c in repaired.list_clips()} == ids
    assert all(c.bytes == c.path.stat().st_size for c in repaired.list_clips())
    (note,) = report.notes
    assert "rebuilt" in note and "lost" in note and kept.name in note
    repaired.close()


def test_a_second_daemon_never_moves_a_running_daemons_index_aside(tmp_path: Path) -> None:
    running = make_store(tmp_path)
    running.recover()
    with pytest.raises(StoreError, match="another doorward daemon"):
        ClipStore(tmp_path, max_bytes=1 << 30, retention_days=30, repair_index=True)
    running.close()


def test_a_sealed_clip_cut_short_later_is_marked_damaged_with_its_playable_length(
        tmp_path: Path, owner: Identity) -> None:
    """Issue 13 (6): a halved .age file kept truncated=false and its old size."""
    store = make_store(tmp_path)
    store.recover()
    clip_id = store.new_clip_id()
    sink = store.open_clip(clip_id, start(NOW, owner))  # source 10.0 s ..
    with AgeWriter(sink, [owner.recipient]) as w:
        for i in range(8):  # eight "fragments" of 64 KiB of plaintext, one a second
            w.write(payload(CHUNK_SIZE, i))
            store.record_progress(clip_id, (i + 1) * CHUNK_SIZE, 10.0 + i + 1)
    sealed = sink.commit(ClipEnd(ended_at_s=NOW + 8.0, source_end_s=18.0))
    assert store.recover().damaged == ()  # untouched: nothing to say
    os.truncate(sealed.path, sealed.bytes // 2)
    store.close()
    store = make_store(tmp_path)
    report = store.recover()
    assert report.damaged == (clip_id,)
    rec = store.get_clip(clip_id)
    assert rec is not None and rec.truncated and rec.bytes == sealed.bytes // 2
    assert rec.damage is not None and "cut short" in rec.damage
    header = parse_header(sealed.path.read_bytes())
    assert header is not None
    whole = (sealed.bytes // 2 - header.length - NONCE_SIZE) // SEALED_CHUNK_SIZE
    assert rec.duration_s == pytest.approx(whole)  # fragment i ends with chunk i: i + 1 s
    with open(rec.path, "rb") as f:
        reader = AgeReader(f, [owner], allow_truncated=True)
        assert len(reader.read()) == whole * CHUNK_SIZE and reader.truncated
    (note,) = report.notes
    assert clip_id in note and f"{rec.duration_s:.1f} s playable" in note
    assert store.recover().damaged == ()  # said once; the index now agrees with the file


def test_event_ids_are_opaque_unique_and_fit_the_wire_format() -> None:
    """Issue 13 (4): the tracker numbers events from 1 in every run; the ids the daemon gives
    them are random like clip ids, and EventBody (uplink.messages) takes them unchanged."""
    from agent.store import new_event_id
    from uplink.messages import EventBody

    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    body = EventBody(kind="ring", event_id=next(iter(ids)), at="2027-01-15T08:00:00Z")
    assert EventBody.from_json(body.to_json()) == body


def test_events_a_crash_left_open_end_with_their_clip(tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    store.recover()
    clip_id = add_clip(store, owner, NOW)  # event "7", ends at NOW + 8 s
    store.record_event(event_id="7", reason="motion", onset_s=1.0, last_motion_s=None,
                       peak_area=0.1, clip_id=clip_id, started_at_s=NOW)
    store.record_event(event_id="8", reason="ring", onset_s=9.0, last_motion_s=None,
                       peak_area=0.0, started_at_s=NOW + 20)
    store.close()
    store = make_store(tmp_path)
    assert sorted(store.recover().closed_events) == ["7", "8"]
    ends = {e.id: e.ended_at for e in store.list_events()}
    assert ends == {"7": iso_utc(NOW + 8.0), "8": iso_utc(NOW + 20)}
    assert store.recover().closed_events == ()


def test_the_upload_scopes_at_a_clips_start_survive_commit_crash_and_reopening(
        tmp_path: Path, owner: Identity) -> None:
    store = make_store(tmp_path)
    sealed = store.new_clip_id()
    sink = store.open_clip(sealed, ClipStart(NOW, 10.0, (str(owner.recipient),),
                                             upload_scopes=("clips",)))
    with AgeWriter(sink, [owner.recipient]) as w:
        w.write(payload(1000))
    assert sink.commit(ClipEnd(ended_at_s=NOW + 8.0, source_end_s=18.0)).upload_scopes == (
        "clips",)
    cut = store.new_clip_id()  # a crash mid-clip: recovered at the next start
    sink = store.open_clip(cut, ClipStart(NOW + 60, 10.0, (str(owner.recipient),),
                                          upload_scopes=()))
    writer = AgeWriter(sink, [owner.recipient])
    writer.write(payload(300_000))
    sink.flush()
    store.close()
    again = make_store(tmp_path)
    again.recover()
    got = {c.id: c.upload_scopes for c in again.list_clips()}
    assert got == {sealed: ("clips",), cut: ()}
