"""Interoperability of uplink.age and uplink.agekeys with the reference ``age`` CLI."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from uplink.age import AgeReader, AgeWriter, TruncatedError, decrypt, encrypt
from uplink.agekeys import Identity, Recipient, load_identities, write_identity_file

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
pytestmark = pytest.mark.skipif(
    AGE is None or AGE_KEYGEN is None,
    reason="the age CLI is not installed (Debian package 'age' provides age and age-keygen)",
)
SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 200_000]


def run(*args: str, stdin: bytes = b"") -> bytes:
    proc = subprocess.run(args, input=stdin, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}: {proc.stderr.decode()}"
    return proc.stdout


def data_of(n: int) -> bytes:
    return hashlib.shake_256(n.to_bytes(4, "big")).digest(n) if n else b""


@pytest.fixture(scope="module")
def our_key_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Identity]:
    identity = Identity.generate()
    path = tmp_path_factory.mktemp("keys") / "owner.key"
    write_identity_file(path, identity, comment="made by uplink.agekeys")
    return path, identity


@pytest.mark.parametrize("n", SIZES)
def test_our_files_decrypt_with_age(n: int, our_key_file: tuple[Path, Identity]) -> None:
    path, identity = our_key_file
    sealed = encrypt(data_of(n), [Recipient.parse(str(identity.recipient))])
    # stdout, not -o: age 1.1.1 writes no output file at all for an empty plaintext
    assert run(str(AGE), "-d", "-i", str(path), stdin=sealed) == data_of(n)


@pytest.mark.parametrize("n", SIZES)
def test_age_files_decrypt_with_us(n: int) -> None:
    identity = Identity.generate()
    sealed = run(str(AGE), "-r", str(identity.recipient), stdin=data_of(n))
    assert decrypt(sealed, [identity]) == data_of(n)


def test_multiple_recipients_both_ways(our_key_file: tuple[Path, Identity]) -> None:
    path, ours = our_key_file
    other = Identity.generate()
    sealed = run(str(AGE), "-r", str(other.recipient), "-r", str(ours.recipient), stdin=b"clip")
    assert decrypt(sealed, [ours]) == b"clip" and decrypt(sealed, [other]) == b"clip"
    mine = encrypt(b"clip", [other.recipient, ours.recipient])
    assert run(str(AGE), "-d", "-i", str(path), stdin=mine) == b"clip"


def test_age_keygen_identity_parses_and_matches_its_public_key(tmp_path: Path) -> None:
    key_file = tmp_path / "keygen.key"
    run(str(AGE_KEYGEN), "-o", str(key_file))
    [identity] = load_identities(key_file)
    public = run(str(AGE_KEYGEN), "-y", str(key_file)).decode().strip()
    assert str(identity.recipient) == public
    assert f"# public key: {public}" in key_file.read_text()
    sealed = encrypt(b"hello", [Recipient.parse(public)])
    assert run(str(AGE), "-d", "-i", str(key_file), stdin=sealed) == b"hello"


def test_age_keygen_y_agrees_with_our_recipient(our_key_file: tuple[Path, Identity]) -> None:
    path, identity = our_key_file
    assert run(str(AGE_KEYGEN), "-y", str(path)).decode().strip() == str(identity.recipient)


def test_age_rejects_our_truncated_file_and_we_read_its_prefix(
    our_key_file: tuple[Path, Identity],
) -> None:
    path, identity = our_key_file
    sink = io.BytesIO()
    writer = AgeWriter(sink, [identity.recipient])
    writer.write(data_of(3 * 65536 + 10))
    writer.abort()  # as if the recorder crashed: no final chunk
    proc = subprocess.run(
        [str(AGE), "-d", "-i", str(path)], input=sink.getvalue(), capture_output=True, timeout=60
    )
    assert proc.returncode != 0
    with pytest.raises(TruncatedError):
        decrypt(sink.getvalue(), [identity])
    reader = AgeReader(io.BytesIO(sink.getvalue()), [identity], allow_truncated=True)
    assert reader.read() == data_of(3 * 65536 + 10)[: 3 * 65536] and reader.truncated
