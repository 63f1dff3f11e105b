"""The evidence bundle a requester gets, and ``doorward verify-bundle``: an offline check.

Layout of ``DIR`` (written by :mod:`agent.requester.fetch`)::

    DIR/<clip>.mp4                  the footage, decrypted
    DIR/evidence/bundle.json        format, device public key, the signed request, the owner's
                                    signed grant, the device-signed ledger entries, each clip's
                                    file key (hex)
    DIR/evidence/<clip>.mp4.age     the sealed clip exactly as the device uploaded it
    DIR/evidence/<clip>.manifest.jws  its device-signed manifest

What :func:`verify_bundle` checks (all offline; the one trust anchor is the device key, whose
hash is the device id the requester addressed): every ledger entry's hash and device signature;
that a ``pairing``/``owner-added`` entry names the grant's signer; the request's signature (by
the key it names) and the grant's (by that paired owner); that the grant answers this request
for this requester; ``request-received`` and ``request-approved`` entries for this request, the
latter listing exactly the granted clips; per clip the manifest's SHA-256 as granted, the
manifest's device signature, the sealed object's SHA-256 as the manifest and the grant say, the
file key opening that object's original header (MAC) and decrypting it to exactly ``<clip>.mp4``.
Any extra or missing file fails too. The grant's expiry is not checked: it limits downloads, not
what the evidence proves.

Choice: the file key of each clip is in the bundle. Whoever holds the bundle holds the plaintext
anyway; with the key a court can check that the MP4 *is* the device-signed ciphertext's content
without any requester secret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uplink import (
    BUNDLE_FORMAT,
    AgeError,
    Grant,
    UplinkError,
    b64u_decode,
    check_ledger_entry,
    decrypt_with_file_key,
    device_id_for,
    ed25519_public_from_raw,
    loads_strict,
    paired_owner_ids,
    verify_grant,
    verify_manifest,
    verify_request,
)

EVIDENCE = "evidence"
BUNDLE_JSON = "bundle.json"


@dataclass(frozen=True)
class BundleClip:
    id: str
    file_key: bytes
    sealed: bytes
    manifest: str
    plaintext: bytes


def write_bundle(out: Path, *, device_public_key: str, request: str, grant: str,
                 ledger: list[dict[str, Any]], clips: list[BundleClip]) -> None:
    """Write the layout above into ``out`` (created; existing clip files are replaced)."""
    ev = out / EVIDENCE
    ev.mkdir(parents=True, exist_ok=True)
    for c in clips:
        (out / f"{c.id}.mp4").write_bytes(c.plaintext)
        (ev / f"{c.id}.mp4.age").write_bytes(c.sealed)
        (ev / f"{c.id}.manifest.jws").write_text(c.manifest, encoding="ascii")
    doc = {"format": BUNDLE_FORMAT, "device_public_key": device_public_key, "request": request,
           "grant": grant, "ledger": ledger,
           "clips": [{"id": c.id, "file_key": c.file_key.hex()} for c in clips]}
    (ev / BUNDLE_JSON).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n",
                                  encoding="utf-8")


@dataclass
class BundleReport:
    device_id: str = ""
    request_id: str = ""
    owner: str = ""
    clips: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return (f"bundle OK: {len(self.clips)} clip(s) {', '.join(self.clips)} from device "
                    f"{self.device_id}, request {self.request_id}, granted by owner {self.owner}")
        return "bundle NOT valid:\n" + "\n".join(f"  - {p}" for p in self.problems)


class _Fail(Exception):
    pass


def verify_bundle(directory: Path) -> BundleReport:
    """Check the bundle in ``directory`` (see the module doc); never raises for its content."""
    report = BundleReport()
    try:
        _verify(directory, report)
    except _Fail as exc:
        report.problems = (*report.problems, str(exc))
    return report


def _load(directory: Path) -> dict[str, Any]:
    path = directory / EVIDENCE / BUNDLE_JSON
    try:
        doc = loads_strict(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _Fail(f"{path}: cannot be read as JSON: {exc}") from None
    keys = {"format", "device_public_key", "request", "grant", "ledger", "clips"}
    if not isinstance(doc, dict) or set(doc) != keys or doc["format"] != BUNDLE_FORMAT:
        raise _Fail(f"{path}: not a {BUNDLE_FORMAT} bundle (fields or format)")
    if not isinstance(doc["ledger"], list) or not isinstance(doc["clips"], list):
        raise _Fail(f"{path}: ledger/clips are not lists")
    return doc


def _verify(directory: Path, report: BundleReport) -> None:
    doc = _load(directory)
    try:
        raw = b64u_decode(str(doc["device_public_key"]))
        device_key = ed25519_public_from_raw(raw)
    except (ValueError, TypeError, UplinkError) as exc:
        raise _Fail(f"bundle.json device_public_key: {exc}") from None
    report.device_id = device_id_for(raw)
    entries = [e for e in doc["ledger"] if isinstance(e, dict)]
    if len(entries) != len(doc["ledger"]):
        raise _Fail("bundle.json ledger: an entry is not an object")
    for e in entries:
        problem = check_ledger_entry(e, device_key)
        if problem:
            raise _Fail(f"bundle.json ledger: {problem}")
    try:
        request = verify_request(str(doc["request"]))
        grant = verify_grant(str(doc["grant"]), paired_owner_ids(entries))
    except UplinkError as exc:
        raise _Fail(f"bundle.json: {exc}") from None
    report.request_id, report.owner = request.id, grant.owner
    _check_grant_answers(request.id, request.requester, request.recipient,
                         request.device_id, report.device_id, grant)
    _check_ledger_story(entries, request.id, request.reason_hash, grant)
    keys = _clip_keys(doc["clips"], grant)
    for clip in grant.clips:
        _check_clip(directory, clip.id, clip.manifest_sha256, clip.sealed_sha256,
                    keys[clip.id], device_key)
    _check_no_extra_files(directory, grant.clip_ids())
    report.clips = tuple(grant.clip_ids())


def _check_grant_answers(request_id: str, requester: str, recipient: str, aud: str,
                         device_id: str, grant: Grant) -> None:
    if aud != device_id or grant.device_id != device_id:
        raise _Fail(f"request/grant name device {aud}/{grant.device_id}, but the bundle's "
                    f"device key is {device_id}'s")
    if (grant.request_id, grant.requester, grant.recipient) != (request_id, requester, recipient):
        raise _Fail("the grant does not answer this request for this requester")


def _check_ledger_story(entries: list[dict[str, Any]], request_id: str, reason_hash: str,
                        grant: Grant) -> None:
    received = [e for e in entries if e["kind"] == "request-received"
                and e["data"].get("request") == request_id]
    if not received or received[0]["data"].get("reason_sha256") != reason_hash:
        raise _Fail(f"ledger: no request-received entry for {request_id} with its reason hash")
    approved = [e for e in entries if e["kind"] == "request-approved"
                and e["data"].get("request") == request_id]
    if not approved:
        raise _Fail(f"ledger: no request-approved entry for {request_id}")
    data = approved[-1]["data"]
    if sorted(data.get("clips", [])) != sorted(grant.clip_ids()) or data.get("by") != grant.owner:
        raise _Fail(f"ledger entry {approved[-1]['seq']}: approved clips/owner differ from the "
                    "grant's")


def ledger_story_problem(entries: list[dict[str, Any]], request_id: str, reason_hash: str,
                         grant: Grant) -> str | None:
    """None if the (checked) entries record this request's receipt and its approval of exactly
    the granted clips by the grant's owner; otherwise what is missing."""
    try:
        _check_ledger_story(entries, request_id, reason_hash, grant)
    except _Fail as exc:
        return str(exc)
    return None


def _clip_keys(items: list[Any], grant: Grant) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in items:
        if not isinstance(item, dict) or set(item) != {"id", "file_key"}:
            raise _Fail("bundle.json clips: malformed entry")
        try:
            keys[str(item["id"])] = bytes.fromhex(str(item["file_key"]))
        except ValueError:
            raise _Fail(f"bundle.json clips: file key of {item['id']} is not hex") from None
    if sorted(keys) != sorted(grant.clip_ids()):
        raise _Fail("bundle.json clips differ from the granted clips")
    return keys


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Fail(f"{path.name}: missing or unreadable ({exc.strerror})") from None


def _check_clip(directory: Path, clip_id: str, manifest_sha: str, sealed_sha: str,
                file_key: bytes, device_key: Any) -> None:
    ev = directory / EVIDENCE
    manifest_bytes = _read(ev / f"{clip_id}.manifest.jws")
    if hashlib.sha256(manifest_bytes).hexdigest() != manifest_sha:
        raise _Fail(f"{clip_id}.manifest.jws: SHA-256 differs from the grant's (altered)")
    try:
        manifest = verify_manifest(manifest_bytes, device_key)
    except UplinkError as exc:
        raise _Fail(f"{clip_id}.manifest.jws: {exc}") from None
    sealed = _read(ev / f"{clip_id}.mp4.age")
    digest = hashlib.sha256(sealed).hexdigest()
    if manifest.clip is None or manifest.clip_id != clip_id or digest != manifest.clip.sha256 \
            or digest != sealed_sha:
        raise _Fail(f"{clip_id}.mp4.age: SHA-256 differs from the device-signed manifest's "
                    "(altered)")
    try:
        plain = decrypt_with_file_key(sealed, file_key)
    except AgeError as exc:
        raise _Fail(f"{clip_id}: the file key in bundle.json does not open the sealed clip: "
                    f"{exc}") from None
    if _read(directory / f"{clip_id}.mp4") != plain:
        raise _Fail(f"{clip_id}.mp4: differs from the sealed clip's content (altered)")


def _check_no_extra_files(directory: Path, clip_ids: list[str]) -> None:
    expected = {f"{c}.mp4" for c in clip_ids} | {EVIDENCE}
    expected_ev = {BUNDLE_JSON} | {f"{c}{s}" for c in clip_ids
                                   for s in (".mp4.age", ".manifest.jws")}
    extra = sorted({p.name for p in directory.iterdir()} - expected)
    extra += sorted(f"{EVIDENCE}/{n}" for n in
                    {p.name for p in (directory / EVIDENCE).iterdir()} - expected_ev)
    if extra:
        raise _Fail(f"files that are not part of the bundle: {', '.join(extra[:5])}")
