"""uplink.age_rewrap: a new header for the requester, same payload; checked with the age CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from uplink.age import HeaderMacError, NoIdentityMatch, encrypt
from uplink.age_rewrap import (
    decrypt_with_file_key,
    file_key_of,
    header_length,
    join_header,
    payload_of,
    rewrap_header,
)
from uplink.agekeys import Identity

CLIP = os.urandom(200_000)  # three chunks: the last one short


def test_joined_file_opens_with_the_age_cli_for_the_requester_only(tmp_path: Path) -> None:
    age = shutil.which("age")
    if age is None:
        pytest.fail("the age CLI is not installed (Debian package `age`)")
    owner, requester = Identity.generate(), Identity.generate()
    sealed = encrypt(CLIP, [owner.recipient])
    header = rewrap_header(sealed, [owner], [requester.recipient])
    joined = join_header(header, sealed)
    assert payload_of(joined) == payload_of(sealed)  # not re-encrypted: same bytes
    assert joined[header_length(joined):] == sealed[header_length(sealed):]
    (tmp_path / "clip.age").write_bytes(joined)
    for who, ident in (("requester", requester), ("owner", owner)):
        (tmp_path / f"{who}.txt").write_text(str(ident) + "\n")
    out = subprocess.run([age, "-d", "-i", str(tmp_path / "requester.txt"),
                          str(tmp_path / "clip.age")], capture_output=True, check=True)
    assert out.stdout == CLIP
    refused = subprocess.run([age, "-d", "-i", str(tmp_path / "owner.txt"),
                              str(tmp_path / "clip.age")], capture_output=True)
    assert refused.returncode != 0 and refused.stdout == b""
    (tmp_path / "orig.age").write_bytes(sealed)
    still = subprocess.run([age, "-d", "-i", str(tmp_path / "owner.txt"),
                            str(tmp_path / "orig.age")], capture_output=True, check=True)
    assert still.stdout == CLIP


def test_an_altered_header_is_not_reissued() -> None:
    owner, requester = Identity.generate(), Identity.generate()
    sealed = bytearray(encrypt(CLIP, [owner.recipient]))
    mac_at = bytes(sealed).index(b"--- ") + 5
    # another base64 letter (a flipped bit may leave the alphabet: a parse error, not the MAC)
    sealed[mac_at] = ord("B") if sealed[mac_at] == ord("A") else ord("A")
    with pytest.raises((HeaderMacError, ValueError)):
        rewrap_header(bytes(sealed), [owner], [requester.recipient])


def test_only_an_identity_of_the_file_can_rewrap() -> None:
    owner, device_like = Identity.generate(), Identity.generate()
    sealed = encrypt(CLIP, [owner.recipient])
    with pytest.raises(NoIdentityMatch):
        rewrap_header(sealed, [device_like], [device_like.recipient])


def test_file_key_opens_the_original_and_a_wrong_key_does_not() -> None:
    owner = Identity.generate()
    sealed = encrypt(CLIP, [owner.recipient])
    key = file_key_of(sealed, [owner])
    assert decrypt_with_file_key(sealed, key) == CLIP
    with pytest.raises(HeaderMacError):
        decrypt_with_file_key(sealed, bytes(16))
