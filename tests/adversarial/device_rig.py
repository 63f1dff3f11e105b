"""A real device for attack tests: the `doorward run` daemon on a simulated porch, a real Mosquitto
(and optionally a real SeaweedFS bucket), an owner provisioned straight into device.sqlite (pairing
has its own tests), the owner tool as a subprocess (optionally under ``faketime``), and a stranger
subscribed to ``#`` who records every payload the broker hands out.

Usage::

    dev = DeviceRig.provision(tmp_path, broker)          # owner keys + device data dir
    stranger = Stranger(broker.url)
    with dev.running():
        dev.owner("consent", "grant", "--scopes", "events", "--days", "1")
        dev.owner("consent", "revoke", skew_s=400)       # the owner's clock 400 s ahead
    texts = stranger.texts()                            # payloads, JWS parts decoded
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import DOORWARD, doorward, doorward_json, pair_for_test, wait_for
from tests.servers import Mosquitto
from uplink.keys import b64u_decode
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

SMALL = """
[camera]
width = 320
height = 180
fps = 10.0
"""


def faketime_path() -> str | None:
    return shutil.which("faketime")


FAKETIME_MISSING = "faketime is missing: install the Debian package faketime (scripts/test does)"


@dataclass
class DeviceRig:
    """A device data dir with one provisioned owner; ``running()`` runs its daemon."""

    tmp: Path
    data: Path
    owner_dir: Path
    label: dict[str, str]
    broker: Mosquitto
    s3_config: str = ""
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None

    @classmethod
    def provision(cls, tmp: Path, broker: Mosquitto, *, s3_config: str = "",
                  env: dict[str, str] | None = None) -> DeviceRig:
        p = pair_for_test(tmp, broker.url)
        return cls(tmp, p.data, p.owner_dir, p.label, broker, s3_config, dict(env or {}))

    @property
    def device_id(self) -> str:
        return self.label["device_id"]

    @property
    def public_key(self) -> bytes:
        return b64u_decode(self.label["public_key"])

    def config(self) -> Path:
        path = self.tmp / "device.toml"
        path.write_text(SMALL + self.s3_config)
        return path

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.data / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    @contextmanager
    def running(self, scene: str = "porch") -> Iterator[subprocess.Popen[str]]:
        """The daemon in real time until the block ends (SIGTERM; it drains and exits)."""
        proc = subprocess.Popen(
            [DOORWARD, "run", "--config", str(self.config()), "--source", f"sim:{scene}",
             "--realtime", "--data-dir", str(self.data), "--broker", self.broker.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env})
        self.proc = proc
        try:
            wait_for(lambda: (self.status().get("pid") == proc.pid
                              and self.status().get("mqtt_connected")) or proc.poll() is not None,
                     timeout=60, what="the daemon to connect to the broker")
            assert proc.poll() is None, proc.communicate()[1]
            yield proc
        finally:
            self.proc = None
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()

    def run_to_end(self, scene: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``doorward run`` on a finite scene as fast as it renders; drains the outbox, exits."""
        return doorward("run", "--config", str(self.config()), "--source", f"sim:{scene}",
                        "--data-dir", str(self.data), "--broker", self.broker.url,
                        "--exit-at-eof", *args, env=self.env)

    def owner(self, *args: str, skew_s: int = 0, check: bool = True
              ) -> subprocess.CompletedProcess[str]:
        """The owner tool; ``skew_s`` runs it under ``faketime`` (its clock that far off)."""
        cmd = [DOORWARD, "owner", "--owner-dir", str(self.owner_dir), *args]
        if skew_s:
            exe = faketime_path()
            assert exe, FAKETIME_MISSING
            cmd = [exe, "-f", f"{skew_s:+d}s", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env={**os.environ, **self.env}, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n"
                                 f"{proc.stderr}")
        return proc

    def device_json(self, *args: str) -> Any:
        return doorward_json(*args, "--data-dir", str(self.data), "--json")

    def ledger_entries(self) -> list[dict[str, Any]]:
        """The device's ledger entries (``seq``, ``ts``, ``kind``, ``data``, ...), oldest first."""
        text = doorward("ledger", "show", "--json", "--data-dir", str(self.data)).stdout
        return [json.loads(line) for line in text.splitlines()[1:]]

    def ledger_kinds(self) -> list[str]:
        """The kinds of the device's ledger entries, oldest first."""
        return [e["kind"] for e in self.ledger_entries()]

    def grants(self) -> list[str]:
        return sorted(g["scope"] for g in self.device_json("consent", "show")["grants"])


class Stranger:
    """Anyone on the broker: subscribed to ``#`` from before the test acts until ``stop()``."""

    def __init__(self, url: str) -> None:
        self.inbox: queue.Queue[InboundMessage] = queue.Queue()
        self.client = MqttClient(MqttSettings(url=url, client_id="stranger", allow_plain=True),
                                 on_message=self.inbox.put)
        self.client.subscribe("#")
        self.client.start()
        assert self.client.wait_connected(10), "the stranger cannot reach the broker"
        self.got: list[InboundMessage] = []

    def drain(self, quiet_s: float = 0.5) -> list[InboundMessage]:
        """Everything so far: collects until nothing arrived for ``quiet_s``."""
        while True:
            try:
                self.got.append(self.inbox.get(timeout=quiet_s))
            except queue.Empty:
                return self.got

    def stop(self) -> list[InboundMessage]:
        got = self.drain()
        self.client.stop()
        return got


def readable(payload: bytes) -> str:
    """What anyone can read in a payload: the text itself, plus every base64url part of a compact
    JWS decoded (header and claims), so a search sees what is inside the signature envelope."""
    text = payload.decode("utf-8", errors="replace")
    parts = text.split(".")
    out = [text]
    if len(parts) == 3:
        for part in parts[:2]:
            with contextlib.suppress(ValueError):
                out.append(b64u_decode(part).decode("utf-8", errors="replace"))
    return "\n".join(out)


def jws_claims(payload: bytes) -> dict[str, Any] | None:
    """The claims of a compact JWS payload (unverified: what a stranger reads), else None."""
    parts = payload.decode("ascii", errors="replace").split(".")
    if len(parts) != 3:
        return None
    try:
        value = json.loads(b64u_decode(parts[1]))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
