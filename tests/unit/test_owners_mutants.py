"""agent/recording/sealing.py: who a clip is sealed to, and that a development key never outlives
pairing
(issue 12, finding 5). Unit tests for ``scripts/mutation agent/recording/sealing.py``; the
upload-side
checks (``sealed_to_members``, ``members_only``) are in test_queue_checks_mutants.py."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.paths import DataDir
from agent.recording.sealing import (
    SealingPolicy,
    ensure_dev_owner,
    retire_dev_owner,
)
from uplink.agekeys import Identity, load_identities


def test_the_development_owner_is_created_private_once_and_then_reused(tmp_path: Path) -> None:
    assert DataDir(tmp_path).dev_owner_key == tmp_path / "dev-owner.key"
    first = ensure_dev_owner(tmp_path)
    path = tmp_path / "dev-owner.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "# Doorward development owner: simulated sources only" in path.read_text().splitlines()
    assert load_identities(path)[0].recipient == first.recipient
    assert ensure_dev_owner(tmp_path).recipient == first.recipient


def test_owners_win_over_the_development_owner(tmp_path: Path) -> None:
    owner = str(Identity.generate().recipient)
    members: list[str] = []
    policy = SealingPolicy(tmp_path, dev_owner=True, owner_recipients=lambda: list(members))
    dev = policy.recipients()
    assert [str(r) for r in dev] == [str(ensure_dev_owner(tmp_path).recipient)]
    assert policy.mode == "dev-owner" and "development owner" in policy.reason
    assert str(tmp_path / "dev-owner.key") in policy.reason
    members.append(owner)
    assert [str(r) for r in policy.recipients()] == [owner]
    assert policy.mode == "owners"
    assert policy.reason == "sealing to 1 paired owner/viewer key(s)"


def test_a_real_camera_without_an_owner_seals_to_nobody_and_creates_no_key(tmp_path: Path) -> None:
    policy = SealingPolicy(tmp_path, dev_owner=False, owner_recipients=lambda: [])
    assert policy.recipients() == ()
    assert policy.mode == "not-recording"
    assert policy.reason.startswith("not recording: no paired owner")
    assert not (tmp_path / "dev-owner.key").exists()


def test_the_development_key_is_read_at_every_clip_never_cached(tmp_path: Path) -> None:
    policy = SealingPolicy(tmp_path, dev_owner=True, owner_recipients=lambda: [])
    first = policy.recipients()
    (tmp_path / "dev-owner.key").unlink()  # a factory reset
    assert policy.recipients() != first


@dataclass
class _Clip:
    id: str
    recipients: tuple[str, ...]


@dataclass
class _Store:
    clips: list[_Clip]
    deleted: list[str] = field(default_factory=list)

    def list_clips(self) -> list[_Clip]:
        return [c for c in self.clips if c.id not in self.deleted]

    def delete_clip(self, clip_id: str) -> None:
        self.deleted.append(clip_id)


@pytest.mark.parametrize("key_exists", [True, False])
def test_pairing_deletes_clips_no_member_can_open_and_the_development_key(
        tmp_path: Path, key_exists: bool) -> None:
    if key_exists:
        ensure_dev_owner(tmp_path)
    store = _Store([_Clip("dev", ("age1dev",)), _Clip("own", ("age1own",)),
                    _Clip("both", ("age1dev", "age1own")), _Clip("none", ())])
    gone = retire_dev_owner(tmp_path, store, ["age1own"])  # type: ignore[arg-type]
    assert gone == ["dev", "none"] and store.deleted == ["dev", "none"]
    assert not (tmp_path / "dev-owner.key").exists()
    assert retire_dev_owner(tmp_path, store, ["age1own"]) == []  # type: ignore[arg-type]
