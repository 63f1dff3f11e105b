"""The owner app's token cache: signed tokens by key and ETag, in the owner dir, 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from agent.owner.app.token_cache import TokenCache


def test_round_trip_by_key_and_etag(tmp_path: Path) -> None:
    c = TokenCache.load(tmp_path, "dw-x")
    assert c.get("k", "e1") is None
    c.put("k", "e1", b"a.b.c")
    c.put("no-etag", "", b"x.y.z")  # without an ETag nothing could tell it changed: not kept
    c.save()
    path = tmp_path / "cache" / "dw-x.tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = TokenCache.load(tmp_path, "dw-x")
    assert again.get("k", "e1") == b"a.b.c"
    assert again.get("k", "e2") is None  # the object changed in the bucket: fetch it again
    assert again.get("no-etag", "") is None
    again.keep(set())
    again.save()
    assert TokenCache.load(tmp_path, "dw-x").entries == {}


def test_a_damaged_cache_is_only_a_miss(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "dw-x.tokens.json").write_text("{not json")
    assert TokenCache.load(tmp_path, "dw-x").entries == {}
    (tmp_path / "cache" / "dw-x.tokens.json").write_text('{"k": 5}')
    assert TokenCache.load(tmp_path, "dw-x").entries == {}
