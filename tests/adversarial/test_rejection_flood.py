"""Finding 9b: a stranger on the broker floods the command topic with forged commands. The daemon's
log must stay bounded (rejections are rate-limited per reason) and still say how many were
suppressed, and the ledger must count every one of them.

The real daemon (`doorward run`, simulated porch, real time) on a real Mosquitto; 10,000 forged
commands from a client that is not the owner, in 20 batches of 500: 449 tokens signed by an
unknown key with an unusable jti (refused, not answered), 50 that are not even JWS, and one
well-formed forged token whose refusal, answered with its jti, tells the test the daemon got
through the batch (the daemon answers in order, and Mosquitto drops what it cannot queue).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import DOORWARD, SMALL_CONFIG, doorward_json, wait_for
from tests.servers import Mosquitto
from uplink import jws
from uplink.keys import key_id_for, public_raw
from uplink.mqtt import MqttClient, MqttSettings

pytestmark = pytest.mark.slow

BATCHES, BATCH, GARBAGE = 20, 500, 50
TOTAL = BATCHES * BATCH
MAX_REJECTION_LINES = 40  # a few per reason per minute, whatever the flood


def test_ten_thousand_forged_commands_log_a_bounded_summary(tmp_path: Path,
                                                            mosquitto: Mosquitto) -> None:
    assert TOTAL == 10_000
    # the log goes to a file: a pipe nobody reads would stall a flooding daemon (64 KiB)
    data, log_path = tmp_path / "device", tmp_path / "daemon.log"
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_CONFIG)
    log_file = log_path.open("w")
    proc = subprocess.Popen([DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch",
                             "--realtime", "--data-dir", str(data), "--broker", mosquitto.url],
                            stdout=subprocess.DEVNULL, stderr=log_file, text=True)
    try:
        def status() -> dict[str, object]:
            try:
                return dict(json.loads((data / "status.json").read_text()))
            except (OSError, ValueError):
                return {}

        wait_for(lambda: status().get("mqtt_connected") or proc.poll() is not None, timeout=30,
                 what="the daemon to connect")
        assert proc.poll() is None
        device_id = doorward_json("device", "label", "--json", "--data-dir", str(data))["device_id"]
        cmd, resp = f"doorward/{device_id}/cmd", f"doorward/{device_id}/resp"
        stranger = Ed25519PrivateKey.generate()
        iss = key_id_for(public_raw(stranger))
        now = int(time.time())
        answered: list[bytes] = []
        attacker = MqttClient(MqttSettings(url=mosquitto.url, client_id="stranger"),
                              on_message=lambda m: answered.append(m.payload))
        attacker.subscribe(resp)
        attacker.start()
        try:
            assert attacker.wait_connected(10)
            # in batches, each waited for: Mosquitto queues at most 1,000 messages per client
            # and drops the rest, and the test must know how many the daemon got
            for batch in range(BATCHES):
                handles = []
                for i in range(BATCH):
                    n = batch * BATCH + i
                    if i < GARBAGE:
                        payload = b"not a jws at all %d" % n
                    else:
                        sync = i == BATCH - 1
                        claims = {"iss": iss, "aud": device_id, "iat": now, "exp": now + 300,
                                  "jti": f"flood-{n:08d}" if sync else "!", "ctr": n + 1,
                                  "cmd": "consent.show", "topic": cmd, "args": {}}
                        payload = jws.sign(claims, stranger, kid=iss).encode()
                    handles.append(attacker.publish(cmd, payload))
                for h in handles:
                    assert attacker.wait_published(h, 30)
                last = f"flood-{batch * BATCH + BATCH - 1:08d}".encode()
                wait_for(lambda last=last: any(last in _payload_text(p) for p in answered),
                         timeout=60, what=f"the refusal of {last!r} ({len(answered)} so far)")
        finally:
            attacker.stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            log_file.close()
    err = log_path.read_text()
    assert proc.returncode == 0, err[-3000:]

    lines = [line for line in err.splitlines() if "rejected" in line or "rejections" in line]
    assert len(lines) <= MAX_REJECTION_LINES, \
        f"{len(lines)} log lines about rejections; first ones:\n" + "\n".join(lines[:10])
    logged = [line for line in lines if "command rejected:" in line]
    summaries = [(int(n), reason) for n, reason in
                 re.findall(r"(\d+) more command rejections \(([a-z-]+)\)", err)]
    assert {reason for _, reason in summaries} == {"unknown-owner", "malformed"}, lines
    assert len(logged) + sum(n for n, _ in summaries) == TOTAL, lines

    # the ledger counts every rejection too: one entry per logged one, suppressed counts folded in
    db = sqlite3.connect(data / "device.sqlite")
    try:
        rows = [json.loads(d) for (d,) in
                db.execute("SELECT data FROM ledger WHERE kind = 'command-rejected'")]
    finally:
        db.close()
    assert len(rows) <= MAX_REJECTION_LINES
    assert sum(1 + int(r.get("suppressed", 0)) for r in rows if "detail" in r) + \
        sum(int(r["suppressed"]) for r in rows if "detail" not in r) == TOTAL


def _payload_text(payload: bytes) -> bytes:
    """The claims of a device-signed refusal (a JWS), where the jti appears."""
    try:
        return json.dumps(jws.peek(payload.decode("ascii"))[1]).encode()
    except (UnicodeDecodeError, jws.JwsError):
        return payload
