"""agent.owner.keyring: the owner's keys and paired devices, in process.

The e2e tests drive the keyring through the ``doorward owner`` CLI in a subprocess, where
scripts/mutation cannot see it; these tests pin what the promises rest on: the owner directory
is private, existing keys are never replaced, the command counter only grows and is stored
before it is used, and every refusal names the fix.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from agent.errors import DoorwardError
from agent.owner.keyring import (
    DEVICES,
    IDENTITY,
    SIGNING_KEY,
    OwnerKeyring,
    PairedDevice,
    default_owner_dir,
)
from uplink.agekeys import load_identities
from uplink.keys import b64u, key_id_for, load_ed25519, public_raw

DEV = PairedDevice("dw-aaaaaaaaaaaaaaaa", b64u(bytes(32)), "0000-" * 7 + "0000",
                   "mqtts://broker.invalid:8883", 1_800_000_000.0)


def _ring(tmp_path: Path) -> OwnerKeyring:
    ring, created = OwnerKeyring.init(tmp_path / "owner")
    assert created
    return ring


def test_default_owner_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert default_owner_dir() == tmp_path / "cfg" / "doorward-owner"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_owner_dir() == tmp_path / "home" / ".config" / "doorward-owner"


def test_init_creates_private_keys_once(tmp_path: Path) -> None:
    owner_dir = tmp_path / "owner"
    ring, created = OwnerKeyring.init(owner_dir)
    assert created
    assert stat.S_IMODE(owner_dir.stat().st_mode) == 0o700
    for name in (SIGNING_KEY, IDENTITY):
        assert stat.S_IMODE((owner_dir / name).stat().st_mode) == 0o600
    assert public_raw(load_ed25519(owner_dir / SIGNING_KEY)) == ring.public_raw
    assert load_identities(owner_dir / IDENTITY)[0].recipient == ring.identity.recipient
    assert "# Doorward owner identity: opens your clips" in (
        (owner_dir / IDENTITY).read_text().splitlines())
    assert ring.key_id == key_id_for(ring.public_raw)
    assert ring.recipient == str(ring.identity.recipient) and ring.recipient.startswith("age1")
    assert ring.identity_path == owner_dir / IDENTITY and ring.dir == owner_dir
    again, created_again = OwnerKeyring.init(owner_dir)  # never replaces existing keys
    assert created_again is False
    assert again.public_raw == ring.public_raw and again.recipient == ring.recipient


def test_init_creates_missing_parents(tmp_path: Path) -> None:
    owner_dir = tmp_path / "no" / "such" / "owner"
    assert OwnerKeyring.init(owner_dir)[1] is True
    assert stat.S_IMODE(owner_dir.stat().st_mode) == 0o700


def test_init_makes_a_lax_directory_private(tmp_path: Path) -> None:
    owner_dir = tmp_path / "owner"
    owner_dir.mkdir(mode=0o755)
    os.chmod(owner_dir, 0o755)
    OwnerKeyring.init(owner_dir)
    assert stat.S_IMODE(owner_dir.stat().st_mode) == 0o700


@pytest.mark.parametrize("missing", [SIGNING_KEY, IDENTITY])
def test_init_completes_a_half_made_directory(tmp_path: Path, missing: str) -> None:
    ring = _ring(tmp_path)
    kept = IDENTITY if missing == SIGNING_KEY else SIGNING_KEY
    before = (ring.dir / kept).read_bytes()
    (ring.dir / missing).unlink()
    again, created = OwnerKeyring.init(ring.dir)
    assert created and (ring.dir / missing).exists()
    assert (ring.dir / kept).read_bytes() == before
    assert (again.public_raw == ring.public_raw) is (missing == IDENTITY)


def test_init_reports_a_directory_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "owner"
    blocker.mkdir()
    (blocker / IDENTITY).symlink_to("nowhere")  # a dangling link: the identity is never written
    with pytest.raises(DoorwardError) as err:
        OwnerKeyring.init(blocker)
    assert str(err.value).startswith(f"cannot create owner keys in {blocker}: ")


def test_open_without_keys_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DoorwardError) as err:
        OwnerKeyring.open(tmp_path)
    assert str(err.value) == (f"no owner keys in {tmp_path}: run `doorward owner init` first "
                              "(or pass --owner-dir)")


@pytest.mark.parametrize("broken", [SIGNING_KEY, IDENTITY])
def test_open_with_broken_keys_names_the_directory(tmp_path: Path, broken: str) -> None:
    ring = _ring(tmp_path)
    path = ring.dir / broken
    os.chmod(path, 0o600)
    path.write_text("# nothing here\n")
    with pytest.raises(DoorwardError) as err:
        OwnerKeyring.open(ring.dir)
    assert str(err.value).startswith(f"owner keys in {ring.dir} cannot be used: ")


def test_devices_round_trip_and_replace(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    assert ring.devices() == []
    ring.add_device(DEV)
    other = replace(DEV, device_id="dw-bbbbbbbbbbbbbbbb")
    ring.add_device(other)
    moved = replace(DEV, broker="mqtts://elsewhere.invalid:8883")
    ring.add_device(moved)  # same id: replaced, not added
    assert ring.devices() == [other, moved]
    assert (ring.dir / DEVICES).read_text() == json.dumps([asdict(other), asdict(moved)], indent=1)
    assert not [p for p in ring.dir.iterdir() if p.name.endswith(".tmp")]


def test_devices_file_is_replaced_atomically_from_the_owner_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new devices.json is written beside the old one and renamed over it (same file
    system, so the rename is atomic); a crash leaves a hidden, recognisable temporary file."""
    ring = _ring(tmp_path)
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)  # the module calls os.replace at call time
    ring.add_device(DEV)
    ((src, dst),) = renames
    assert dst == ring.dir / DEVICES and src.parent == ring.dir
    assert src.name.startswith(".devices.") and src.name.endswith(".tmp")


def test_device_lookup(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    with pytest.raises(DoorwardError) as err:
        ring.device(None)
    assert str(err.value) == "no paired device: run `doorward owner pair` first"
    ring.add_device(DEV)
    assert ring.device(None) == DEV and ring.device(DEV.device_id) == DEV
    with pytest.raises(DoorwardError) as err:
        ring.device("dw-cccccccccccccccc")
    assert str(err.value) == ("device dw-cccccccccccccccc is not paired with this owner: "
                              "see `doorward owner show`")
    ring.add_device(replace(DEV, device_id="dw-bbbbbbbbbbbbbbbb"))
    with pytest.raises(DoorwardError) as err:
        ring.device(None)
    assert str(err.value) == ("several paired devices (dw-aaaaaaaaaaaaaaaa, dw-bbbbbbbbbbbbbbbb): "
                              "pass --device ID")
    assert ring.device("dw-bbbbbbbbbbbbbbbb").device_id == "dw-bbbbbbbbbbbbbbbb"


def test_unreadable_devices_file_is_reported(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    (ring.dir / DEVICES).write_text("{not json")
    with pytest.raises(DoorwardError) as err:
        ring.devices()
    assert str(err.value).startswith(f"{ring.dir / DEVICES} is unreadable (")
    assert str(err.value).endswith("): restore it from a backup")


def test_counter_only_grows_and_is_stored_before_use(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    ring.add_device(DEV)
    before_ms = int(time.time() * 1000)
    first = ring.next_counter(DEV.device_id)
    assert before_ms <= first <= int(time.time() * 1000)
    assert ring.device(DEV.device_id).counter == first  # stored: a crash cannot reuse it
    second = ring.next_counter(DEV.device_id)
    assert second > first and ring.device(DEV.device_id).counter == second
    # A counter ahead of the clock (restored devices.json, clock set back) still grows by one.
    ahead = int(time.time() * 1000) + 10**9
    ring.add_device(replace(ring.device(DEV.device_id), counter=ahead))
    assert ring.next_counter(DEV.device_id) == ahead + 1
    assert ring.device(DEV.device_id).counter == ahead + 1
    # With several devices, each has its own counter; the others are untouched.
    ring.add_device(replace(DEV, device_id="dw-bbbbbbbbbbbbbbbb"))
    assert ring.device("dw-bbbbbbbbbbbbbbbb").counter == 0
    assert ring.next_counter("dw-bbbbbbbbbbbbbbbb") < ahead
    assert ring.device(DEV.device_id).counter == ahead + 1


def test_sending_holds_off_every_other_sender_until_its_block_ends(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    ring.add_device(DEV)
    other = OwnerKeyring.open(ring.dir)  # another process's keyring on the same owner dir
    taken: list[int] = []
    with ring.sending(DEV.device_id) as ctr:
        waiter = threading.Thread(target=lambda: taken.append(other.next_counter(DEV.device_id)))
        waiter.start()
        waiter.join(0.3)  # long enough to take a counter were it not held off
        assert waiter.is_alive() and taken == [], "a counter was handed out during a send"
    waiter.join(10)
    assert taken and taken[0] > ctr
    assert stat.S_IMODE((ring.dir / ".devices.lock").stat().st_mode) == 0o600


def test_describe(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    ring.add_device(DEV)
    assert ring.describe() == {
        "owner_dir": str(ring.dir), "key_id": ring.key_id, "public_key": b64u(ring.public_raw),
        "recipient": ring.recipient, "identity_file": str(ring.dir / IDENTITY),
        "devices": [asdict(DEV)],
    }
