"""The device on a TLS broker with a client certificate issued from its own CSR (`doorward device
csr`): it connects to a client-certificate TLS listener as its device id."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.helpers import DOORWARD, SMALL_CONFIG, doorward, doorward_json, wait_for
from tests.servers import Mosquitto

pytestmark = pytest.mark.slow


def sign_csr(broker: Mosquitto, csr_pem: bytes, out: Path) -> Path:
    assert broker.ca is not None
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(csr.subject)
            .issuer_name(broker.ca.cert.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(broker.ca.key, hashes.SHA256()))
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


@pytest.mark.parametrize("key_type", ["p256", "ed25519"])
def test_device_connects_over_tls_with_csr_cert(key_type: str, tmp_path: Path,
                                                mosquitto_tls: Mosquitto) -> None:
    data = tmp_path / "device"
    label = doorward_json("device", "label", "--json", "--data-dir", str(data))
    csr = tmp_path / "device.csr"
    out = doorward("device", "csr", "--key-type", key_type, "--data-dir", str(data), "-o", str(csr))
    key_file = out.stdout.split("the TLS key is ")[1].split(":")[0]
    assert x509.load_pem_x509_csr(csr.read_bytes()).subject.rfc4514_string() == \
        f"CN={label['device_id']}"
    cert = sign_csr(mosquitto_tls, csr.read_bytes(), tmp_path / "device.crt")
    cfg = tmp_path / "tls.toml"
    cfg.write_text(SMALL_CONFIG + f"""
[mqtt]
url = "{mosquitto_tls.tls_url}"
ca_file = "{mosquitto_tls.ca_file}"
cert_file = "{cert}"
key_file = "{key_file}"
""")
    proc = subprocess.Popen([DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch",
                             "--realtime", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def connected() -> bool:
            try:
                st = json.loads((data / "status.json").read_text())
            except (OSError, ValueError):
                return False
            return bool(st.get("mqtt_connected")) or proc.poll() is not None

        wait_for(connected, timeout=30, what="a TLS connection")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
