"""uplink.clip_progress: the signed record of a clip uploaded while it is recorded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from uplink import jws
from uplink.agekeys import Identity
from uplink.clip_progress import (
    ClipProgress,
    ClipProgressError,
    extended,
    progress_key,
    segment_key,
    sign_progress,
    verify_progress,
)
from uplink.keys import device_id_for, public_raw

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "clip_progress.jws"
DEVICE = Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32)
OTHER = Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)
DEVICE_ID = device_id_for(public_raw(DEVICE))
OWNER = str(Identity(X25519PrivateKey.from_private_bytes(bytes([3]) * 32)).recipient)
BASE = f"doorward/{DEVICE_ID}/2026/12/03/c0ffee"
AT = "2026-12-03T18:00:00.000+00:00"


def two_segments() -> ClipProgress:
    first = extended(None, device_id=DEVICE_ID, clip_id="c0ffee", key=segment_key(BASE, 1),
                     size=1000, sha256=hashlib.sha256(b"1").hexdigest(), recipients=[OWNER],
                     updated_at=AT)
    return extended(first, device_id=DEVICE_ID, clip_id="c0ffee", key=segment_key(BASE, 2),
                    size=500, sha256=hashlib.sha256(b"2").hexdigest(), recipients=[OWNER],
                    updated_at=AT)


def test_round_trip_and_the_segments_cover_the_file_from_its_start() -> None:
    record = two_segments()
    back = verify_progress(sign_progress(record, DEVICE), public_raw(DEVICE))
    assert back == record and back.size == 1500
    assert [(s.offset, s.size) for s in back.segments] == [(0, 1000), (1000, 500)]
    assert progress_key(BASE).endswith("c0ffee.progress.jws")


def test_golden_progress_record() -> None:
    token = sign_progress(two_segments(), DEVICE)
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(token + "\n")
    assert GOLDEN.read_text().strip() == token  # Ed25519 signatures are deterministic


def test_signed_by_another_key_is_refused() -> None:
    with pytest.raises(ClipProgressError, match="rejected"):
        verify_progress(sign_progress(two_segments(), DEVICE), public_raw(OTHER))


def forged(change: dict[str, Any]) -> str:
    claims = {**two_segments().to_claims(), **change}
    return jws.sign(claims, DEVICE, kid=DEVICE_ID)


@pytest.mark.parametrize(("change", "reason"), [
    ({"kind": "manifest"}, "kind"),
    ({"v": 2}, "version"),
    ({"extra": 1}, "unknown"),
    ({"segments": []}, "segments"),
    ({"recipients": []}, "recipients"),
    ({"clip_id": "../x"}, "clip_id"),
    ({"segments": [{"key": segment_key(BASE, 1), "offset": 5, "size": 1,
                    "sha256": "0" * 64}]}, "offset must be 0"),  # a gap at the start
    ({"segments": [{"key": segment_key(BASE, 2), "offset": 0, "size": 1,
                    "sha256": "0" * 64}]}, "not segment 1"),  # reordered or renumbered
    ({"segments": [{"key": segment_key(f"doorward/{DEVICE_ID}/2026/12/03/other", 1),
                    "offset": 0, "size": 1, "sha256": "0" * 64}]}, "not segment 1"),
])
def test_strict_claims(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ClipProgressError, match=reason):
        verify_progress(forged(change), public_raw(DEVICE))


def test_a_clip_manifest_is_not_a_progress_record() -> None:
    from tests.unit.test_manifest import DEVICE as MANIFEST_DEVICE
    from tests.unit.test_manifest import manifest
    from uplink.manifest import sign_manifest

    token = sign_manifest(manifest(), MANIFEST_DEVICE)
    with pytest.raises(ClipProgressError, match="claims"):
        verify_progress(token, public_raw(MANIFEST_DEVICE))
