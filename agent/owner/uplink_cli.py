"""The owner's view of what a device delivered: ``owner clips list|fetch``, ``owner events``.

Everything is verified against the device key learnt at pairing: manifests and messages must be
signed by it, manifests must form an unbroken chain, and downloaded objects must match the SHA-256
in their signed manifest before they are decrypted with the owner's identity.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import queue
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import DoorwardError
from agent.owner.client import BrokerOptions, add_login_arguments
from agent.owner.keyring import OwnerKeyring, PairedDevice
from agent.progress import Progress
from uplink import (
    MAX_PROGRESS_BYTES,
    AgeError,
    ChainChecker,
    ClipObject,
    ClipProgress,
    InboundMessage,
    Manifest,
    ObjectStore,
    S3Settings,
    UplinkError,
    UploadedBody,
    b64u_decode,
    check_manifest_chain,
    decrypt_file,
    device_topic,
    file_sha256,
    unseal_times,
    verify_manifest,
    verify_message,
    verify_progress,
)

MAX_MANIFEST_BYTES = 64 * 1024
T = TypeVar("T")


def add_arguments(osub: Any) -> None:
    cp = osub.add_parser("clips", help="clips the device uploaded to the bucket")
    csub = cp.add_subparsers(dest="clips_command", required=True, metavar="ACTION")
    for name, help_text in (("list", "list and verify manifests"),
                            ("fetch", "download, verify and decrypt a clip")):
        sp = csub.add_parser(name, help=help_text)
        sp.add_argument("--device", metavar="DEVICE_ID", help="default: the only paired device")
        add_bucket_arguments(sp, required=True)
        if name == "list":
            sp.add_argument("--json", action="store_true", help="print JSON instead of text")
        else:
            sp.add_argument("clip_id", metavar="CLIP_ID", help="a clip id of `owner clips list`")
            sp.add_argument("-o", "--output", required=True, metavar="OUT",
                            help="where to write the decrypted clip")
            sp.add_argument("--snapshot", action="store_true", help="the JPEG snapshot instead")
    ep = osub.add_parser("events", help="a live, verified view of the device's messages")
    ep.add_argument("--device", metavar="DEVICE_ID", help="default: the only paired device")
    ep.add_argument("--broker", metavar="URL", help="default: the one used at pairing")
    ep.add_argument("--ca-file", type=Path, help="CA of the broker (mqtts)")
    ep.add_argument("--cert-file", type=Path, help="owner client certificate (mqtts)")
    ep.add_argument("--key-file", type=Path, help="owner client key (mqtts)")
    add_login_arguments(ep)
    ep.add_argument("--follow", action="store_true", help="keep listening (Ctrl-C to stop)")
    ep.add_argument("--timeout", type=float, default=3.0, metavar="S",
                    help="without --follow: stop after S seconds without a message")
    ep.add_argument("--json", action="store_true", help="one JSON object per line")


def add_bucket_arguments(sp: argparse.ArgumentParser, *, required: bool) -> None:
    """``--bucket`` and how to reach it (the device's ``[s3]`` settings, as the owner sees them)."""
    sp.add_argument("--bucket", required=required,
                    help="the device's bucket ([s3] bucket)" if required
                    else "also check the device's checkpoints there")
    sp.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
    sp.add_argument("--prefix", default="doorward",
                    help="the device's [s3] prefix (default doorward)")
    sp.add_argument("--region", default="us-east-1", help="bucket region (default us-east-1)")
    sp.add_argument("--addressing-style", choices=["auto", "path", "virtual"], default="auto",
                    help="path for most S3-compatible stores (default auto)")


def bucket_store(args: argparse.Namespace) -> ObjectStore:
    """The bucket named by :func:`add_bucket_arguments`' options."""
    return _store(args)


def _store(args: argparse.Namespace) -> ObjectStore:
    return open_store(args.bucket, endpoint_url=args.endpoint_url, prefix=args.prefix,
                      region=args.region, addressing_style=args.addressing_style)


def open_store(bucket: str, *, endpoint_url: str | None = None, prefix: str = "doorward",
               region: str = "us-east-1", addressing_style: str = "auto",
               max_attempts: int = 5, connect_timeout_s: float = 5.0) -> ObjectStore:
    """The bucket the device uploads to, as the owner reaches it (credentials: boto3's chain).
    The web app passes fewer attempts: a page should say soon that the bucket is unreachable."""
    from uplink import S3ObjectStore  # boto3: only for the bucket commands

    try:
        return S3ObjectStore(S3Settings(bucket=bucket, endpoint_url=endpoint_url, prefix=prefix,
                                        region=region,
                                        addressing_style=addressing_style,  # type: ignore[arg-type]
                                        max_attempts=max_attempts,
                                        connect_timeout_s=connect_timeout_s))
    except (ValueError, UplinkError) as exc:
        raise DoorwardError(f"bucket {bucket}: {exc}") from exc


def _signed(store: ObjectStore, prefix: str, device: PairedDevice, suffix: str, max_bytes: int,
            verify: Callable[[str, bytes], T]) -> tuple[list[tuple[str, T]], list[str]]:
    """Every ``*suffix`` object of ``device`` that ``verify`` accepts (with its token), and the
    keys of those it refuses."""
    key = b64u_decode(device.public_key)
    good: list[tuple[str, T]] = []
    bad: list[str] = []
    base = f"{prefix}/{device.device_id}/".lstrip("/")
    for obj in store.list(base):
        if not obj.endswith(suffix):
            continue
        token = store.get_bytes(obj, max_bytes).decode("ascii", "replace")
        try:
            good.append((token, verify(token, key)))
        except UplinkError:
            bad.append(obj)
    return good, bad


def _manifests(store: ObjectStore, prefix: str,
               device: PairedDevice) -> tuple[list[tuple[str, Manifest]], list[str]]:
    """Every manifest of ``device`` that verifies, and the keys of those that do not."""
    return _signed(store, prefix, device, ".manifest.jws", MAX_MANIFEST_BYTES, verify_manifest)


def _in_progress(store: ObjectStore, prefix: str, device: PairedDevice,
                 done: set[str]) -> tuple[list[ClipProgress], list[str]]:
    """Progress records of clips with no manifest yet (being recorded, or the device stopped
    while recording them), verified; and the keys of records that do not verify."""
    good, bad = _signed(store, prefix, device, ".progress.jws", MAX_PROGRESS_BYTES,
                        verify_progress)
    return [p for _, p in good if p.clip_id not in done], bad


def clip_listing(ring: OwnerKeyring, device: PairedDevice, store: ObjectStore, prefix: str,
                 *, bucket: str = "") -> dict[str, Any]:
    """What ``owner clips list --json`` prints: verified manifests (``clips``, oldest first, with
    their sealed times opened), clips still being recorded, keys that did not verify, and the
    chain check. The page's timeline is built from the same document."""
    return clip_listing_items(ring, device, store, prefix, bucket=bucket)[0]


def clip_listing_items(ring: OwnerKeyring, device: PairedDevice, store: ObjectStore, prefix: str,
                       *, bucket: str = "") -> tuple[dict[str, Any], list[Manifest]]:
    """:func:`clip_listing` and the verified manifests it was made from."""
    try:
        items, bad = _manifests(store, prefix, device)
        live, bad_live = _in_progress(store, prefix, device, {m.clip_id for _, m in items})
    except UplinkError as exc:
        raise DoorwardError(f"cannot list bucket {bucket}: {exc}") from exc
    report = check_manifest_chain(items)
    rows = []
    for _, m in sorted(items, key=lambda it: it[1].seq):
        try:
            times = unseal_times(m, [ring.identity])
        except UplinkError:
            times = {}
        rows.append({"clip_id": m.clip_id, "seq": m.seq, "uploaded_at": m.uploaded_at,
                     "size": next(o.size for o in (m.clip, m.snapshot) if o is not None),
                     "video": m.clip is not None,
                     "snapshot": m.snapshot is not None, **times})
    bad = [*bad, *bad_live]
    chain_ok = report.ok and not bad
    in_progress = [{"clip_id": p.clip_id, "size": p.size, "segments": len(p.segments),
                    "updated_at": p.updated_at} for p in live]
    return {"device_id": device.device_id, "clips": rows, "unverified": bad,
            "in_progress": in_progress,
            "chain": {"ok": chain_ok, "missing": [list(r) for r in report.missing],
                      "out_of_order": list(report.out_of_order), "broken": list(report.broken),
                      "duplicates": list(report.duplicates)}}, [m for _, m in items]


def clips_list(ring: OwnerKeyring, args: argparse.Namespace) -> int:
    device = ring.device(args.device)
    doc = clip_listing(ring, device, _store(args), args.prefix, bucket=args.bucket)
    rows, in_progress, bad = doc["clips"], doc["in_progress"], doc["unverified"]
    chain_ok = doc["chain"]["ok"]
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for r in rows:
            cut = "  truncated (the recording was cut short)" if r.get("truncated") else ""
            print(f"{r['seq']:>4} {r['clip_id']}  {r.get('started_at', '?')}  "
                  f"{r.get('duration_s', 0):6.1f} s  {r['size']:>10} B{cut}")
        for p in in_progress:
            print(f"   - {p['clip_id']}  in progress: {p['segments']} segment(s), {p['size']} B "
                  f"sealed so far (last at {p['updated_at']}; fetch gives what arrived)")
        if chain_ok:
            print(f"{len(rows)} clip(s); every manifest is signed by {device.device_id} and the "
                  "chain is unbroken")
        else:
            print(f"PROBLEMS: {json.dumps(doc['chain'])}; unverified manifests: {bad}")
    return 0 if chain_ok else 1


def verified_manifest(store: ObjectStore, prefix: str, device: PairedDevice,
                      clip_id: str) -> Manifest | None:
    """The verified manifest of ``clip_id``, or None (absent, or it does not verify)."""
    items, _ = _manifests(store, prefix, device)
    return next((m for _, m in items if m.clip_id == clip_id), None)


def sealed_object(store: ObjectStore, obj: ClipObject) -> bytes:
    """The sealed object named by a verified manifest, in memory, checked against the SHA-256 and
    size the manifest signs (DoorwardError when the bucket copy differs)."""
    try:
        data = store.get_bytes(obj.key, obj.size)
    except UplinkError as exc:
        raise DoorwardError(f"cannot download {obj.key}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != obj.sha256 or len(data) != obj.size:
        raise DoorwardError(f"{obj.key} does not match its signed manifest (sha256 {digest}, "
                            f"expected {obj.sha256}): the bucket copy was altered")
    return data


def clips_fetch(ring: OwnerKeyring, args: argparse.Namespace) -> int:
    device = ring.device(args.device)
    store = _store(args)
    items, _ = _manifests(store, args.prefix, device)
    found = [m for _, m in items if m.clip_id == args.clip_id]
    if not found and not args.snapshot:
        live, _ = _in_progress(store, args.prefix, device, set())
        record = next((p for p in live if p.clip_id == args.clip_id), None)
        if record is not None:
            return _fetch_in_progress(store, record, ring, Path(args.output))
    if not found:
        raise DoorwardError(f"no verified manifest for clip {args.clip_id} in {args.bucket}: "
                            "see `doorward owner clips list`")
    obj = found[0].snapshot if args.snapshot else found[0].clip
    if obj is None:
        what = "a snapshot" if args.snapshot else "its video (only the snapshot: --snapshot)"
        raise DoorwardError(f"clip {args.clip_id} was uploaded without {what}")
    out = Path(args.output)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        sealed = Path(tmp) / "sealed.age"
        try:
            with Progress(f"downloading {args.clip_id}", total=obj.size, unit="bytes") as bar:
                store.get_file(obj.key, sealed, progress=bar.update)
        except UplinkError as exc:
            raise DoorwardError(f"cannot download {obj.key}: {exc}") from exc
        digest = file_sha256(sealed)
        if digest != obj.sha256 or sealed.stat().st_size != obj.size:
            raise DoorwardError(f"{obj.key} does not match its signed manifest (sha256 {digest},"
                                f" expected {obj.sha256}): the bucket copy was altered")
        try:
            with Progress(f"decrypting {args.clip_id}", total=obj.size, unit="bytes") as bar:
                decrypt_file(sealed, out, [ring.identity], progress=bar.update)
        except AgeError as exc:
            raise DoorwardError(f"cannot decrypt {obj.key} with {ring.identity_path}: {exc}") \
                from exc
    print(f"wrote {out} (sha256 of the sealed object matches the signed manifest)")
    return 0


def _fetch_in_progress(store: ObjectStore, record: ClipProgress, ring: OwnerKeyring,
                       out: Path) -> int:
    """A clip that has segments and no manifest: every segment checked against the signed
    progress record, joined, and opened as far as it goes (``allow_truncated``)."""
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        sealed = Path(tmp) / "sealed.age"
        with sealed.open("wb") as joined:
            for seg in record.segments:
                part = Path(tmp) / "segment"
                try:
                    store.get_file(seg.key, part)
                except UplinkError as exc:
                    raise DoorwardError(f"cannot download {seg.key}: {exc}") from exc
                if file_sha256(part) != seg.sha256 or part.stat().st_size != seg.size:
                    raise DoorwardError(f"{seg.key} does not match the signed progress record: "
                                        "the bucket copy was altered")
                joined.write(part.read_bytes())
        try:
            decrypt_file(sealed, out, [ring.identity], allow_truncated=True)
        except AgeError as exc:
            raise DoorwardError(f"cannot decrypt clip {record.clip_id} with "
                                f"{ring.identity_path}: {exc}") from exc
    print(f"wrote {out}: clip {record.clip_id} as far as the device sent it while recording "
          f"({len(record.segments)} segment(s), each matching the signed progress record)")
    return 0


def events(ring: OwnerKeyring, args: argparse.Namespace) -> int:
    from uplink import MqttClient  # paho: only when the owner's tool talks to a broker

    device = ring.device(args.device)
    url = args.broker or device.broker
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = MqttClient(BrokerOptions.login(url, ca_file=args.ca_file, cert_file=args.cert_file,
                                            key_file=args.key_file, username=args.username,
                                            password_file=args.password_file)
                        .settings(f"owner-view-{uuid.uuid4().hex[:8]}"), on_message=inbox.put)
    client.subscribe(device_topic(device.device_id, "+"))
    client.start()
    if not client.wait_connected(10):
        client.stop()
        raise DoorwardError(f"cannot reach the broker {url}: {client.last_error or 'no answer'}")
    key = b64u_decode(device.public_key)
    chain = ChainChecker()
    try:
        while True:
            try:
                msg = inbox.get(timeout=None if args.follow else args.timeout)
            except queue.Empty:
                return 0
            if msg.topic.rsplit("/", 1)[-1] in ("cmd", "resp") or "/pair/" in msg.topic:
                continue
            _show(msg, key, ring, chain, as_json=args.json)
    except KeyboardInterrupt:
        return 0
    finally:
        client.stop()


def _show(msg: InboundMessage, key: bytes, ring: OwnerKeyring, chain: ChainChecker, *,
          as_json: bool) -> None:
    if msg.payload == b"offline":  # the broker's will message: not signed by design
        doc: dict[str, Any] = {"topic": msg.topic, "status": "offline", "verified": False}
    else:
        try:
            v = verify_message(msg.payload, key, identities=[ring.identity])
        except UplinkError as exc:
            doc = {"topic": msg.topic, "rejected": str(exc)}
        else:
            issues = chain.feed(v, retained=msg.retain)
            body = v.body.to_json() if v.body is not None else None
            if isinstance(v.body, UploadedBody):  # the manifest itself was verified above
                body = {"clip_id": v.body.clip_id, "manifest": "signed by the device, verified"}
            doc = {"topic": msg.topic, "seq": v.message.seq, "typ": v.message.typ,
                   "content": v.message.content, "body": body, "verified": True,
                   "chain": [f"{i.kind} {i.detail}".strip() for i in issues]}
    if as_json:
        print(json.dumps(doc), flush=True)
    else:
        when = time.strftime("%H:%M:%S")
        print(f"{when} {doc.get('typ', '?'):>9} seq={doc.get('seq') or '-'} "
              f"{json.dumps(doc.get('body') or doc.get('rejected') or doc.get('status'))}",
              flush=True)
        for issue in doc.get("chain", []):
            print(f"          chain: {issue}", file=sys.stderr)
