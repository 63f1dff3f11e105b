"""The chaos rig: the real ``doorward run`` against a real Mosquitto and a real SeaweedFS behind a
fault-injecting proxy, hit by kill -9 and outages, then audited from the owner's side.

Usage (tests/chaos/test_chaos.py, scripts/chaos)::

    with ChaosRig(tmp, faults=Faults(error=0.1)) as rig:
        rig.kill_loop(kills=100, scene="busy", rng=random.Random(1))
        rig.drain()                                # one clean run that empties the outbox
        report = rig.audit()                       # Report: counts, and .ok

The device is provisioned straight into its database (an owner, ``events``/``clips``/
``snapshots`` consent until revoked); everything after that goes through the CLI and the wire.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from tests.chaos.faulty_proxy import Faults, FaultyProxy
from tests.helpers import DOORWARD, doorward, wait_for
from tests.servers import Mosquitto
from tests.servers_s3 import SeaweedS3
from uplink.age import AgeError, AgeReader
from uplink.agekeys import Identity
from uplink.errors import UplinkError
from uplink.keys import public_raw
from uplink.manifest import unseal_times, verify_manifest
from uplink.messages import verify_message
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings


@dataclass
class Report:
    """What an audit found; ``ok`` holds when nothing was lost, duplicated or corrupt."""

    kills: int = 0
    crashes: int = 0  # runs that exited on their own with an error or a traceback
    clips_recorded: int = 0
    clips_truncated: int = 0
    clips_delivered_once: int = 0
    clips_pending: int = 0  # still queued when the audit ran (a bucket that kept failing)
    clips_lost: int = 0  # not in the bucket and no longer queued
    clips_duplicated: int = 0
    clips_corrupt: int = 0
    clips_aborted: int = 0  # could not be written (a full disk): the log says so each time
    partials_removed: int = 0  # killed before the first sealed chunk: nothing to keep
    messages_sent: int = 0
    messages_lost: int = 0
    messages_duplicated: int = 0  # QoS 1 may deliver twice; receivers drop them by seq
    messages_out_of_order: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    lost_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.clips_lost or self.clips_duplicated or self.clips_corrupt
                    or self.messages_lost or self.messages_out_of_order)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def libfaketime() -> str:
    """libfaketime from Debian's ``faketime`` package (scripts/test installs it)."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    assert found, "libfaketime is missing: install the Debian package faketime"
    return str(found[0])


class ChaosRig:
    """See the module docstring. Start with ``with``; everything is stopped on exit."""

    def __init__(self, tmp: Path, *, faults: Faults | None = None, seed: int = 0,
                 disk_bytes: int | None = None, config_extra: str = "") -> None:
        """``disk_bytes``: the data directory is a tmpfs of that size (a small SD card that fills
        up; needs root). ``config_extra``: more TOML sections for the device's config."""
        self.tmp = tmp
        self.config_extra = config_extra
        self.data = tmp / "device"
        self.disk_bytes = disk_bytes
        self.broker = Mosquitto(tmp / "mq", persistent=True)
        self.s3 = SeaweedS3(tmp / "s3")
        self.faults, self.seed = faults or Faults(), seed
        self.owner = Identity.generate()
        self.report = Report()
        self._inbox: queue.Queue[InboundMessage] = queue.Queue()
        self._got: list[int] = []

    def __enter__(self) -> ChaosRig:
        if self.disk_bytes is not None:
            self.data.mkdir(parents=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.disk_bytes}", "tmpfs",
                            str(self.data)], check=True)
        self.broker.start()
        self.s3.start()
        self.bucket = self.s3.create_bucket("chaos")
        self.proxy = FaultyProxy(self.s3.port, self.faults, seed=self.seed).start()
        self.identity = DeviceIdentity.load_or_create(self.data)
        db = DeviceDB(self.data / "device.sqlite")
        consent = ConsentStore(db)
        consent.add_owner(os.urandom(32), str(self.owner.recipient), "owner", time.time())
        consent.grant(["events", "clips", "snapshots"], None, "k-chaos", time.time())
        db.close()
        # resume_session: Mosquitto 2.0.11 keeps over its restart (outage()) only sessions begun
        # with clean start off; what it queued for one begun otherwise is lost with it
        self.sub = MqttClient(MqttSettings(url=self.broker.url, client_id="chaos-owner",
                                           session_expiry_s=3600, resume_session=True),
                              on_message=self._inbox.put)
        self.sub.subscribe(f"doorward/{self.identity.device_id}/+")
        self.sub.start()
        assert self.sub.wait_connected(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sub.stop()
        self.proxy.stop()
        self.s3.stop()
        self.broker.stop()
        if self.disk_bytes is not None:
            subprocess.run(["umount", "-l", str(self.data)], check=False)

    # --- driving the device -------------------------------------------------------------------

    def config(self) -> Path:
        path = self.tmp / "device.toml"
        path.write_text(f'[camera]\nwidth = 640\nheight = 360\n[s3]\nbucket = "{self.bucket}"\n'
                        f'endpoint_url = "{self.proxy.url}"\naddressing_style = "path"\n'
                        f"{self.config_extra}")
        return path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self, scene: str, *args: str, clock: str | None = None) -> subprocess.Popen[str]:
        """``clock``: run under ``faketime CLOCK`` (e.g. ``"+1d"``, ``"-3h"``): a clock jump."""
        errs = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read after the run
        env = self.env
        if clock:  # the library itself, so the pid we kill is the daemon's (faketime forks)
            env = {**env, "LD_PRELOAD": libfaketime(), "FAKETIME": clock,
                   "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        proc = subprocess.Popen(
            [DOORWARD, "run", "--config", str(self.config()), "--source", f"sim:{scene}",
             "--data-dir", str(self.data), "--broker", self.broker.url, *args],
            stdout=subprocess.DEVNULL, stderr=errs, text=True, env=env)
        proc.errs = errs  # type: ignore[attr-defined]
        return proc

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def finished(self, proc: subprocess.Popen[str]) -> None:
        """Count a run that ended by itself badly (not our SIGKILL) as a crash."""
        errs = proc.errs  # type: ignore[attr-defined]
        errs.seek(0)
        text = errs.read()
        errs.close()
        removed = re.search(r"(\d+) removed partials", text)
        self.report.partials_removed += int(removed.group(1)) if removed else 0
        self.report.clips_aborted += len(re.findall(r"clip \w+ aborted", text))
        if proc.returncode not in (0, -signal.SIGKILL) or "Traceback" in text:
            self.report.crashes += 1
            (self.tmp / f"crash-{self.report.crashes}.log").write_text(text)

    def kill_loop(self, *, kills: int, scene: str, rng: random.Random,
                  max_delay_s: float = 6.0, clocks: tuple[str | None, ...] = (None,)) -> None:
        """Start the daemon, kill -9 it at a random moment, ``kills`` times; each run's clock is
        drawn from ``clocks`` (None: the real one)."""
        for _ in range(kills):
            proc = self.start(scene, "--exit-at-eof", clock=rng.choice(clocks))
            try:
                proc.wait(timeout=rng.uniform(0.5, max_delay_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                self.report.kills += 1
            self.finished(proc)

    def outage(self, seconds: float = 20.0) -> None:
        """Record the busy scene in real time; after its first event the broker and the bucket go
        away for ``seconds`` of the scene (its second visit happens meanwhile), then return."""
        proc = self.start("busy", "--realtime", "--exit-at-eof", "--drain-timeout", "120")
        try:
            wait_for(lambda: self.status().get("events", 0) >= 1 or proc.poll() is not None,
                     timeout=60, what="the first event")
            self.broker.stop()
            self.s3.stop()
            t0 = float(self.status().get("source_t_s", 0.0))
            wait_for(lambda: float(self.status().get("source_t_s", 0.0)) > t0 + seconds
                     or proc.poll() is not None, timeout=seconds * 3, what="the outage")
            self.broker.restart()
            self.s3.restart()
            proc.wait(timeout=300)
        finally:
            proc.kill()
        self.finished(proc)

    def drain(self, scene: str = "cat", *, keep_faults: bool = False) -> None:
        """One run that is not killed and empties the outbox before it exits; the bucket's
        faults are switched off first unless ``keep_faults``."""
        if not keep_faults:
            self.proxy.faults = Faults()
        proc = self.start(scene, "--exit-at-eof", "--drain-timeout", "300")
        proc.wait(timeout=900)
        self.finished(proc)

    # --- the audit ------------------------------------------------------------------------------

    def audit(self) -> Report:
        """Count what the device holds against what the owner can get; may be called again
        after more runs (the counts of the runs themselves carry over, the rest is recounted)."""
        runs = self.report
        self.report = r = Report(kills=runs.kills, crashes=runs.crashes,
                                 clips_aborted=runs.clips_aborted,
                                 partials_removed=runs.partials_removed)
        r.faults = dict(self.proxy.counts)
        local = json.loads(doorward("clips", "list", "--data-dir", str(self.data),
                                    "--json").stdout)["clips"]
        r.clips_recorded = len(local)
        r.clips_truncated = sum(1 for c in local if c["truncated"])
        uploaded = self._audit_bucket()
        queued = self._queued_clips()
        for c in local:
            n = uploaded.get(c["id"], 0)
            if n == 0 and c["id"] in queued:
                r.clips_pending += 1
            elif n == 0:
                r.clips_lost += 1
                r.lost_ids.append(c["id"])
            elif n == 1:
                r.clips_delivered_once += 1
        r.clips_duplicated += self._duplicate_disclosures()
        self._audit_messages()
        return r

    def _audit_bucket(self) -> dict[str, int]:
        """clip id -> manifests for it; fetches every clip and checks it against its manifest."""
        client = self.s3.client()
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket) for o in page.get("Contents", [])]
        seen: Counter[str] = Counter()
        for key in (k for k in keys if k.endswith(".manifest.jws")):
            m = verify_manifest(client.get_object(Bucket=self.bucket, Key=key)["Body"].read(),
                                public_raw(self.identity.key))
            seen[m.clip_id] += 1
            body = client.get_object(Bucket=self.bucket, Key=m.clip.key)["Body"].read()
            truncated = bool(unseal_times(m, [self.owner]).get("truncated"))
            if hashlib.sha256(body).hexdigest() != m.clip.sha256 or len(body) != m.clip.size:
                self.report.clips_corrupt += 1
                continue
            try:
                AgeReader(io.BytesIO(body), [self.owner], allow_truncated=truncated).read()
            except (AgeError, UplinkError):
                self.report.clips_corrupt += 1
        return dict(seen)

    def _queued_clips(self) -> set[str]:
        db = sqlite3.connect(self.data / "outbox.sqlite")
        try:
            rows = db.execute("SELECT spec FROM items WHERE kind = 'upload' AND "
                              "state IN ('queued', 'in-flight')").fetchall()
        finally:
            db.close()
        return {json.loads(spec).get("clip_id", "") for (spec,) in rows if spec}

    def _duplicate_disclosures(self) -> int:
        """Whole-clip uploads the ledger records more than once (a second upload of a clip takes a
        new manifest seq and overwrites the first one's key, so the bucket alone cannot tell)."""
        db = DeviceDB(self.data / "device.sqlite")
        try:
            rows = db.query("SELECT data FROM ledger WHERE kind = 'disclosure'")
        finally:
            db.close()
        per_clip = Counter(json.loads(r[0])["clip_id"] for r in rows
                           if "segment" not in json.loads(r[0]))
        return sum(n - 1 for n in per_clip.values() if n > 1)

    def _audit_messages(self) -> None:
        """Every message the outbox sent must have reached the owner's subscriber, in order."""
        got = self._got  # every seq received so far: an audit may be repeated
        while True:
            try:
                msg = self._inbox.get(timeout=2.0)
            except queue.Empty:
                break
            if msg.payload == b"offline" or msg.topic.endswith(("/resp", "/cmd")):
                continue
            try:
                v = verify_message(msg.payload, public_raw(self.identity.key),
                                   identities=[self.owner])
            except UplinkError:
                continue
            if v.message.seq is not None:  # the chained messages (status has no seq)
                got.append(v.message.seq)
        db = sqlite3.connect(self.data / "outbox.sqlite")
        sent = {s for (s,) in db.execute("SELECT seq FROM items WHERE kind = 'message' AND "
                                         "state = 'sent' AND seq IS NOT NULL AND retain = 0")}
        db.close()
        counts = Counter(got)
        self.report.messages_sent = len(sent)
        self.report.messages_lost = len(sent - set(counts))
        self.report.messages_duplicated = sum(n - 1 for n in counts.values())
        first = list(dict.fromkeys(got))
        self.report.messages_out_of_order = sum(1 for a, b in itertools.pairwise(first)
                                                if b < a)
