"""``doorward device csr``: a certificate signing request for the device's MQTT TLS client key.

The TLS key is separate from the device's Ed25519 identity key (key separation: a broker operator
never handles the key that signs the device's messages and ledger). Its type is the operator's
choice: ECDSA P-256 (what AWS IoT Core accepts) or Ed25519. The subject CN is the device id, which
brokers map to the username (Mosquitto's ``use_identity_as_username``), so ACLs like
``pattern write doorward/%u/#`` confine the device to its own topics.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from agent.errors import DoorwardError
from agent.paths import TLS_KEY_TYPES, DataDir
from uplink import write_private_file


def tls_key(data_dir: Path, key_type: str) -> tuple[ec.EllipticCurvePrivateKey |
                                                      ed25519.Ed25519PrivateKey, Path]:
    """Load the TLS key of ``key_type``, creating it (0600) on first use."""
    if key_type not in TLS_KEY_TYPES:
        raise DoorwardError(f"key type {key_type!r}: use p256 (AWS IoT Core) or ed25519")
    path = DataDir(data_dir).tls_key(key_type)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise DoorwardError(f"{path} holds an unexpected key type: delete it to start over")
        return key, path
    new: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if key_type == "p256"
        else ed25519.Ed25519PrivateKey.generate())
    pem = new.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_private_file(path, pem)
    return new, path


def make_csr(data_dir: Path, device_id: str, key_type: str) -> tuple[bytes, Path]:
    """PEM CSR with CN = device id, signed by the TLS key; returns (csr, key path)."""
    key, path = tls_key(data_dir, key_type)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM), path
