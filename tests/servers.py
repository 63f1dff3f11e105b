"""Real servers for tests, started on free loopback ports and stopped by PID.

``Mosquitto(tmp_dir)`` runs the system's ``/usr/sbin/mosquitto`` with its own config file: a plain
listener on 127.0.0.1 (anonymous, unrestricted: for tests; with ``logins={user: password}`` it
wants a login from a ``mosquitto_passwd`` file instead, and ``acl=`` text confines it) and, with
``tls=True``, a TLS listener
that requires a client certificate, takes the certificate CN as the username and applies the ACL
the project ships, config/mosquitto-acl.conf (read at start, so tests run under exactly it): each
device reads and writes only under its own ``doorward/<cn>/`` (and may clear the discovery configs
an earlier version published); the CN ``owner`` (``OWNER_CN``) reads ``doorward/#`` and writes
only ``cmd`` and ``pair/owner``; the CN ``bridge`` reads ``doorward/#`` and writes discovery and
``doorward-bridge/#``; the CN ``homeassistant`` reads discovery and ``doorward-bridge/#``.

``issue_client_cert(cn)`` signs client certificates with the test CA (P-256 by default;
``key_type="ed25519"`` also works with Mosquitto 2.0.11 / OpenSSL 3). As root, Mosquitto would drop
to the ``mosquitto`` user before loading the 0600 keys and the tmp dir's log file, so the config
says ``user root`` when we run as root (see security.md).

``pytest`` fixtures wrapping these live in tests/conftest.py.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_MISSING = (
    "mosquitto is not installed: install the Debian package 'mosquitto' (scripts/test does)"
)
OWNER_CN = "owner"  # the owner tool's CN in the shipped ACL
SHIPPED_ACL = Path(__file__).resolve().parents[1] / "config" / "mosquitto-acl.conf"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def mosquitto_path() -> str | None:
    """The Mosquitto binary, or None when the Debian package is not installed."""
    if os.access(MOSQUITTO, os.X_OK):
        return MOSQUITTO
    return shutil.which("mosquitto")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# A throwaway certificate authority


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key_type must be 'p256' or 'ed25519', not {key_type!r}")


def _write_key(path: Path, key: PrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


@dataclass(frozen=True)
class TestCA:
    """A CA key and self-signed certificate in ``directory``; issues server and client certs."""

    directory: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    __test__ = False  # not a pytest test class

    @property
    def cert_file(self) -> Path:
        return self.directory / "ca.crt"

    @classmethod
    def create(cls, directory: Path, name: str = "Doorward test CA") -> TestCA:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        ca = cls(directory, key, cert)
        ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ca

    def issue(self, cn: str, *, server: bool = False,
              key_type: str = "p256") -> tuple[Path, Path]:
        """Write ``<cn>.crt`` and ``<cn>.key`` (0600) signed by this CA; return their paths."""
        key = _new_key(key_type)
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{cn}.crt", self.directory / f"{cn}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path


# ---------------------------------------------------------------------------------------------
# Mosquitto


class Mosquitto:
    """A private Mosquitto broker: ``start()``, ``stop()``, ``restart()`` on the same ports.

    ``port`` is the plain loopback listener; ``tls_port`` (with ``tls=True``) the certificate one,
    whose CA file is ``ca_file``. Use ``issue_client_cert(cn)`` for clients of the TLS listener.
    """

    def __init__(self, directory: Path, *, tls: bool = False, persistent: bool = False,
                 logins: dict[str, str] | None = None, acl: str | None = None) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise FileNotFoundError(MOSQUITTO_MISSING)
        self.exe = exe
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port: int | None = None
        self.ca: TestCA | None = None
        self.log_file = directory / "mosquitto.log"
        self.conf_file = directory / "mosquitto.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []
        # persistent: sessions and queued QoS 1 messages survive a stop()/restart() (a subscriber
        # with a persistent session then misses nothing published while it was away)
        self.persistent = persistent
        # logins: the plain listener wants a username and password (a password file made by
        # mosquitto_passwd, as the Home Assistant add-on's broker does); acl: its acl_file text
        self.logins, self.acl = logins, acl
        if tls:
            self.tls_port = free_port()
            self.ca = TestCA.create(directory / "pki")
        self.conf_file.write_text(self._config(), encoding="utf-8")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("this Mosquitto has no TLS listener: create it with tls=True")
        return f"mqtts://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        if self.ca is None:
            raise RuntimeError("this Mosquitto has no TLS listener: create it with tls=True")
        return self.ca.cert_file

    def issue_client_cert(self, cn: str, *, key_type: str = "p256") -> tuple[Path, Path]:
        """(cert_path, key_path) of a new client certificate with CN ``cn`` from the test CA."""
        if self.ca is None:
            raise RuntimeError("this Mosquitto has no TLS listener: create it with tls=True")
        return self.ca.issue(cn, key_type=key_type)

    def _config(self) -> str:
        lines = [
            "per_listener_settings true",
            *(["persistence true", f"persistence_location {self.directory}/",
                "autosave_interval 1"] if self.persistent else ["persistence false"]),
            f"log_dest file {self.log_file}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            f"listener {self.port} 127.0.0.1",
            *self._login_lines(),
        ]
        if os.geteuid() == 0:
            # as root Mosquitto drops to user 'mosquitto' before reading keys and the log file
            lines.insert(0, "user root")
        if self.ca is not None and self.tls_port is not None:
            server_cert, server_key = self.ca.issue("127.0.0.1", server=True)
            acl = self.directory / "acl"
            acl.write_text(SHIPPED_ACL.read_text(encoding="utf-8"), encoding="utf-8")
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.ca.cert_file}",
                f"certfile {server_cert}",
                f"keyfile {server_key}",
                "require_certificate true",
                "use_identity_as_username true",
                "allow_anonymous false",
                f"acl_file {acl}",
            ]
        return "\n".join(lines) + "\n"

    def _login_lines(self) -> list[str]:
        if not self.logins:
            return ["allow_anonymous true"]
        passwd = self.directory / "passwd"
        passwd.unlink(missing_ok=True)
        for i, (user, password) in enumerate(self.logins.items()):
            subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd),
                            user, password], check=True, capture_output=True)
        lines = ["allow_anonymous false", f"password_file {passwd}"]
        if self.acl is not None:
            (self.directory / "login.acl").write_text(self.acl, encoding="utf-8")
            lines.append(f"acl_file {self.directory / 'login.acl'}")
        return lines

    def _ports(self) -> list[int]:
        return [self.port] + ([self.tls_port] if self.tls_port is not None else [])

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and return once every listener accepts TCP connections."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"mosquitto is already running (pid {self.proc.pid})")
        began = time.monotonic()
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf_file)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = began + timeout
        pending = self._ports()
        while pending:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}\n"
                                   f"log:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"mosquitto did not listen on {pending} within {timeout} s; "
                                   f"log:\n{self.log_text()}")
            pending = [p for p in pending if not port_open(p)]
            if pending:
                time.sleep(0.01)  # polling interval for the port check, not a wait for an event
        self.start_seconds.append(time.monotonic() - began)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker by PID (SIGKILL if it ignores SIGTERM); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        finally:
            if proc.stderr is not None:
                proc.stderr.close()

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again on the same ports (clients see an outage and reconnect)."""
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log file)"
