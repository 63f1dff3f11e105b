"""End to end: footage requests with the real daemon, Mosquitto and SeaweedFS, through the CLI.

One rig for the module (kept lean for CI): the device records a visit and uploads it, then runs
while requesters ask and the owner decides. Each "must hold" of issue 16 is its own test on that
shared scenario; the refusals that need forged or tampered input are also unit-tested with the
in-memory twins (tests/unit/test_requests_flow.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.owner.keyring import OwnerKeyring
from tests.conftest import _broker
from tests.e2e.test_uplink_cli import Rig, provision
from tests.helpers import doorward
from tests.servers import Mosquitto
from tests.servers_s3 import SeaweedS3
from uplink import Grant, Identity, b64u, key_id_for, peek_jws, sign_grant

pytestmark = pytest.mark.slow


@dataclass
class Scenario:
    rig: Rig
    proc: subprocess.Popen[str]
    requester: Path
    approved: str = ""
    outside: str = ""
    denied: str = ""
    clips: list[str] = field(default_factory=list)
    listing: dict[str, object] = field(default_factory=dict)
    out: Path = Path()

    def requester_cli(self, *args: str, check: bool = True, who: Path | None = None
                      ) -> subprocess.CompletedProcess[str]:
        return doorward("requester", "--requester-dir", str(who or self.requester), *args,
                        check=check, env=self.rig.env)

    def ask(self, start: str, end: str, reason: str, who: Path | None = None) -> str:
        return self.requester_cli("request", "--device", self.rig.label["device_id"],
                                  "--broker", self.rig.broker.url, "--from", start, "--to", end,
                                  "--reason", reason, "--case", "C-1", who=who).stdout.strip()

    def bucket(self) -> list[str]:
        return ["--bucket", self.rig.bucket, "--endpoint-url", self.rig.s3.url,
                "--addressing-style", "path"]


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("requests")
    broker_cm = _broker(tmp / "mosquitto", tls=False)
    broker: Mosquitto = next(broker_cm)
    rig = provision(tmp, broker, seaweed, seaweed.create_bucket("requests"))
    _record_pairing(rig)
    began = time.time()
    rig.grant("--scopes", "events,snapshots,clips", "--until-revoked")
    rig.run("visit")
    proc = rig.start("porch", "--realtime")
    try:
        rig.connected(proc)
        s = Scenario(rig, proc, tmp / "requester")
        s.requester_cli("init", "--name", "Insurer Ltd")
        s.approved = s.ask(_iso(began - 3600), _iso(time.time() + 3600), "claim 42")
        s.outside = s.ask("2020-01-01T00:00:00Z", "2020-01-01T01:00:00Z", "wrong day")
        yield s
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        next(broker_cm, None)


def _record_pairing(rig: Rig) -> None:
    """provision() adds the owner straight into the database; pairing would also have recorded
    it in the ledger, which is what proves to a requester that the owner is this device's."""
    ring = OwnerKeyring.open(rig.owner_dir)
    identity = DeviceIdentity.load_or_create(rig.data)
    db = DeviceDB(rig.data / "device.sqlite")
    try:
        Ledger(db, identity.key).append("pairing", {"owner": ring.key_id,
                                                    "recipient": ring.recipient}, time.time())
    finally:
        db.close()


def _listing(s: Scenario) -> dict[str, object]:
    out = s.rig.owner("requests", "list", "--json", *s.bucket()).stdout
    doc: dict[str, object] = json.loads(out)
    return doc


@pytest.fixture(scope="module")
def decided(scenario: Scenario) -> Scenario:
    s = scenario
    doc = _listing(s)
    items = {r["id"]: r for r in doc["requests"]}  # type: ignore[attr-defined]
    s.clips = list(items[s.approved]["clips"])
    assert s.clips, f"the visit's clips should be in the window: {doc}"
    s.listing = doc
    s.rig.owner("requests", "approve", s.approved, "--clips", s.clips[0], "--days", "1")
    s.rig.owner("requests", "deny", s.outside, "--reason", "nothing on that day")
    s.out = s.rig.tmp / "bundle"
    s.requester_cli("fetch", s.approved, "-o", str(s.out))
    return s


def test_every_request_is_listed_with_its_window_and_recorded(decided: Scenario) -> None:
    s = decided
    items = {r["id"]: r for r in s.listing["requests"]}  # type: ignore[attr-defined]
    assert set(items) >= {s.approved, s.outside}
    a = items[s.approved]
    assert set(a) >= {"id", "requester", "from", "to", "reason", "state", "clips"}
    assert a["reason"] == "claim 42" and a["state"] == "pending"
    assert a["requester"]["name"] == "Insurer Ltd"
    assert items[s.outside]["clips"] == []  # a request outside the window shows no clips
    ledger = doorward("ledger", "show", "--data-dir", str(s.rig.data), "--json").stdout
    kinds = [json.loads(line)["kind"] for line in ledger.splitlines()[1:] if line.strip()]
    assert kinds.count("request-received") >= 2
    assert "request-approved" in kinds and "request-denied" in kinds


def test_the_joined_file_opens_for_the_requester_only(decided: Scenario) -> None:
    s = decided
    clip = s.clips[0]
    age = shutil.which("age")
    assert age, "the age CLI is missing (Debian package age)"
    sealed = s.out / "evidence" / f"{clip}.mp4.age"
    hdr = next(k for k in s.rig.objects() if k.endswith(f"{clip}.hdr"))
    joined = s.rig.tmp / "joined.age"
    header = s.rig.object_bytes(hdr)
    original = sealed.read_bytes()
    joined.write_bytes(header + original[original.index(b"\n---") + 1:].split(b"\n", 1)[1])
    opened = subprocess.run([age, "-d", "-i", str(s.requester / "identity.txt"), str(joined)],
                            capture_output=True, check=True)
    assert opened.stdout == (s.out / f"{clip}.mp4").read_bytes()
    assert opened.stdout[4:8] == b"ftyp"
    owner_id = s.rig.owner_dir / "identity.txt"
    refused = subprocess.run([age, "-d", "-i", str(owner_id), str(joined)], capture_output=True)
    assert refused.returncode != 0 and not refused.stdout
    stranger = s.rig.tmp / "stranger.txt"
    stranger.write_text(str(Identity.generate()) + "\n")
    assert subprocess.run([age, "-d", "-i", str(stranger), str(joined)],
                          capture_output=True).returncode != 0
    still = subprocess.run([age, "-d", "-i", str(owner_id), str(sealed)], capture_output=True,
                           check=True)
    assert still.stdout == opened.stdout  # the original clip still opens for the owner


def test_only_approved_clips_and_a_denied_request_yields_nothing(decided: Scenario) -> None:
    s = decided
    assert sorted(p.name for p in s.out.glob("*.mp4")) == [f"{s.clips[0]}.mp4"]
    denied = s.requester_cli("fetch", s.outside, "-o", str(s.rig.tmp / "nothing"), check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr
    assert not (s.rig.tmp / "nothing").exists()


def test_verify_bundle_passes_and_a_changed_byte_fails(decided: Scenario) -> None:
    s = decided
    ok = doorward("verify-bundle", str(s.out))
    assert "bundle OK" in ok.stdout
    for name in (f"{s.clips[0]}.mp4", f"evidence/{s.clips[0]}.manifest.jws",
                 "evidence/bundle.json"):
        copy = s.rig.tmp / f"tampered-{name.replace('/', '-')}"
        shutil.copytree(s.out, copy)
        path = copy / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        bad = doorward("verify-bundle", str(copy), check=False)
        assert bad.returncode == 1 and "NOT valid" in bad.stdout, (name, bad.stdout)


def test_a_grant_not_from_a_paired_owner_is_refused(decided: Scenario) -> None:
    """The platform (or the device's operator) forges an answer with a key of its own."""
    s = decided
    vendor, _ = OwnerKeyring.init(s.rig.tmp / "vendor")
    assert key_id_for(vendor.public_raw) != OwnerKeyring.open(s.rig.owner_dir).key_id
    # the vendor cannot run requests.decide (not an owner): the device refuses its commands
    forged = doorward("owner", "--owner-dir", str(s.rig.tmp / "vendor"), "requests", "list",
                      "--device", s.rig.label["device_id"], "--broker", s.rig.broker.url,
                      check=False, env=s.rig.env)
    assert forged.returncode != 0
    bundle = s.rig.tmp / "forged-bundle"
    shutil.copytree(s.out, bundle)
    doc = json.loads((bundle / "evidence" / "bundle.json").read_text())
    claims = peek_jws(doc["grant"])[1]
    doc["grant"] = sign_grant(Grant.from_claims({**claims, "iss": vendor.key_id,
                                                 "pub": b64u(vendor.public_raw)}), vendor.key)
    (bundle / "evidence" / "bundle.json").write_text(json.dumps(doc))
    bad = doorward("verify-bundle", str(bundle), check=False)
    assert bad.returncode == 1 and "not a paired owner" in bad.stdout


def test_rate_limited_requests_are_counted_for_the_owner(decided: Scenario) -> None:
    s = decided
    flood = s.rig.tmp / "flood"
    s.requester_cli("init", "--name", "Flood", who=flood)
    for i in range(5):  # the limit is 3 per key and hour
        s.ask("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", f"flood {i}", who=flood)
    doc = _listing(s)
    counted = doc["counted"]
    assert counted.get("rate_limited", 0) >= 2, doc  # type: ignore[attr-defined]
    names = [r["requester"]["name"] for r in doc["requests"]]  # type: ignore[attr-defined]
    assert names.count("Flood") == 3


def test_the_grant_and_its_links_end_when_it_expires(decided: Scenario) -> None:
    """The requester's tool refuses the real answer once the grant's time is up, and the bucket's
    links are presigned for exactly the grant's life (SeaweedFS refuses them after it)."""
    from urllib.parse import parse_qs, urlparse

    from agent.errors import DoorwardError
    from agent.requester.fetch import open_answer, wait_for_answer
    from agent.requester.identity import RequesterIdentity

    s = decided
    me = RequesterIdentity.open(s.requester)
    sealed = wait_for_answer(me, s.approved)
    env, grant = open_answer(me, sealed, s.approved, time.time())
    assert grant.expires_at - grant.issued_at == 86400  # --days 1
    for urls in env.urls.values():
        for url in (urls.header, urls.sealed, urls.manifest):
            assert parse_qs(urlparse(url).query)["X-Amz-Expires"] == ["86400"]
    with pytest.raises(DoorwardError, match="expired"):
        open_answer(me, sealed, s.approved, float(grant.expires_at))
