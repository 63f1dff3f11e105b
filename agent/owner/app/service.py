"""What the page can ask of the owner's client: the same functions ``doorward owner ...`` runs.

Every method is synchronous and blocking (MQTT round trips, S3 requests); the server runs them in
its thread pool. Signed commands go through one lock, because each takes the next command counter
from ``devices.json``. Nothing here writes plaintext to disk: clips and snapshots are fetched
sealed into memory, checked against their signed manifest and opened on demand.

Wiring (agent.owner.app.server)::

    service = OwnerService(OwnerKeyring.open(owner_dir), bucket=BucketOptions(...))
    service.clips(device_id, page=0)         # the timeline's rows, verified
    media = service.video(device_id, clip_id)  # SeekableAge over the sealed, checked object
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from agent.errors import DoorwardError
from agent.owner import ledger_cli, uplink_cli
from agent.owner.app.settings import BucketOptions
from agent.owner.app.token_cache import TokenCache
from agent.owner.client import BrokerOptions, command, pair
from agent.owner.keyring import OwnerKeyring, PairedDevice
from agent.owner.pins import PinStore
from uplink import AgeError, Manifest, ObjectStore, SeekableAge

SCOPES = ("events", "snapshots", "clips")
PAGE_SIZE = 50
LISTING_TTL_S = 10.0  # the timeline is listed again after this, or when the page asks
PAIR_ATTEMPT_S = 4.0  # a hello is sent again this often while the owner walks to the button
SEALED_CACHE = 4  # sealed clips kept in memory (a few MB each) for range requests


@dataclass(frozen=True)
class QrLabel:
    """What the label's QR code says: ``doorward:<device_id>:<fingerprint>:<setup code>``."""

    device_id: str
    fingerprint: str
    setup_code: str

    @classmethod
    def parse(cls, text: str) -> QrLabel:
        parts = text.strip().split(":")
        if len(parts) != 4 or parts[0] != "doorward" or not all(parts[1:]):
            raise DoorwardError("that is not the label's QR text (doorward:<device id>:"
                                "<fingerprint>:<setup code>): paste it whole, or type the "
                                "device id and setup code instead")
        return cls(parts[1], parts[2], parts[3])


class OwnerService:
    """The owner's client for the page; see the module docstring."""

    def __init__(self, ring: OwnerKeyring, *, bucket: BucketOptions | None,
                 store: ObjectStore | None = None, broker_url: str | None = None,
                 timeout: float = 15.0,
                 store_factory: Callable[[BucketOptions], ObjectStore] | None = None,
                 login: BrokerOptions | None = None) -> None:
        self.ring = ring
        self.login = login  # --username/--password-file: the broker login (its url unused)
        self.bucket = bucket
        self.broker_url = broker_url
        self.timeout = timeout
        self._store = store
        self._store_factory = store_factory or (lambda o: uplink_cli.open_store(
            o.bucket, endpoint_url=o.endpoint_url, prefix=o.prefix, region=o.region,
            addressing_style=o.addressing_style, max_attempts=2, connect_timeout_s=3.0))
        self._commands = threading.Lock()
        self._lock = threading.Lock()
        self._listings: dict[str, tuple[float, dict[str, Any], dict[str, Manifest]]] = {}
        self._sealed: dict[str, OrderedDict[str, SeekableAge]] = {
            "video": OrderedDict(), "snapshot": OrderedDict()}
        self._noted: dict[tuple[str, str], Manifest] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="owner-bucket")

    # -- keys, devices -----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        doc = self.ring.describe()
        doc.pop("identity_file", None)
        doc["bucket"] = asdict(self.bucket) if self.bucket else None
        pins = PinStore(self.ring.dir)
        for d in doc["devices"]:
            pin = pins.get(d["device_id"])
            d["pin"] = pin.describe() if pin else None
        return doc

    def device(self, device_id: str | None) -> PairedDevice:
        return self.ring.device(device_id or None)

    def broker(self, device: PairedDevice) -> BrokerOptions:
        return self.options(self.broker_url or device.broker)

    def options(self, url: str) -> BrokerOptions:
        """How to reach the broker at ``url``: with the app's login, if it was given one."""
        return replace(self.login, url=url) if self.login is not None else BrokerOptions(url)

    # -- the bucket --------------------------------------------------------------------------
    def store(self) -> ObjectStore:
        if self.bucket is None:
            raise DoorwardError("no bucket configured: start the app with --bucket NAME (and "
                                "--endpoint-url for a non-AWS store); it is remembered")
        if self._store is None:
            self._store = self._store_factory(self.bucket)
        return self._store

    def _listing(self, device: PairedDevice, refresh: bool) -> tuple[dict[str, Any],
                                                                     dict[str, Manifest]]:
        with self._lock:
            cached = self._listings.get(device.device_id)
        if cached and not refresh and time.monotonic() - cached[0] < LISTING_TTL_S:
            return cached[1], cached[2]
        cache = TokenCache.load(self.ring.dir, device.device_id)
        store = _Prefetched(self.store(), self._pool, cache)
        prefix = self.bucket.prefix if self.bucket else "doorward"
        doc, items = uplink_cli.clip_listing_items(
            self.ring, device, store, prefix, bucket=self.bucket.bucket if self.bucket else "")
        cache.keep(set(store.etags))
        with contextlib.suppress(DoorwardError):  # only a cache: the next listing fetches again
            cache.save()
        manifests = {m.clip_id: m for m in items}
        with self._lock:
            self._listings[device.device_id] = (time.monotonic(), doc, manifests)
        return doc, manifests

    def warm(self) -> None:
        """List and verify every device's timeline now (the server calls it at start, on a
        thread), so the first visit to the clips page finds it ready."""
        if self.bucket is None and self._store is None:
            return
        for d in self.ring.devices():
            try:
                self._listing(d, refresh=True)
            except DoorwardError:
                return  # the page will say what is wrong when it asks

    def clips(self, device_id: str | None, *, page: int = 0, per_page: int = PAGE_SIZE,
              refresh: bool = False) -> dict[str, Any]:
        """One page of the timeline, newest first, with the chain check and what failed."""
        device = self.device(device_id)
        try:
            doc, _ = self._listing(device, refresh)
        except DoorwardError as exc:
            where = (self.bucket.endpoint_url or "AWS S3") if self.bucket else "the bucket"
            raise DoorwardError(
                f"{exc}. Check that the store at {where} runs and this computer reaches it, the "
                "bucket settings (--bucket, --endpoint-url: remembered in the owner dir's "
                "app.json) and your credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                "~/.aws/credentials)") from exc
        rows = list(reversed(doc["clips"]))
        page = max(page, 0)
        chunk = rows[page * per_page:(page + 1) * per_page]
        return {"device_id": device.device_id, "total": len(rows), "page": page,
                "per_page": per_page, "pages": max(1, -(-len(rows) // per_page)),
                "clips": chunk, "unverified": doc["unverified"],
                "in_progress": doc["in_progress"], "chain": doc["chain"]}

    def note_manifest(self, device_id: str, m: Manifest) -> None:
        """A manifest verified elsewhere (the live feed's snapshot finder) for :meth:`manifest`."""
        with self._lock:
            self._noted[(device_id, m.clip_id)] = m

    def manifest(self, device_id: str | None, clip_id: str) -> Manifest:
        """The verified manifest of ``clip_id`` (DoorwardError if there is none)."""
        device = self.device(device_id)
        with self._lock:
            noted = self._noted.get((device.device_id, clip_id))
        if noted is not None:
            return noted
        _, manifests = self._listing(device, refresh=False)
        m = manifests.get(clip_id)
        if m is None:
            _, manifests = self._listing(device, refresh=True)
            m = manifests.get(clip_id)
        if m is None:
            raise DoorwardError(f"no verified manifest for clip {clip_id}: it is not in the "
                                "bucket, or its manifest failed verification (see the timeline)")
        return m

    def sealed(self, device_id: str | None, clip_id: str, which: str) -> SeekableAge:
        """The clip's ``video`` or ``snapshot``, fetched sealed into memory, checked against the
        signed manifest, ready to be opened range by range with the owner's identity."""
        m = self.manifest(device_id, clip_id)
        obj = m.clip if which == "video" else m.snapshot
        if obj is None:
            raise DoorwardError(f"clip {clip_id} was uploaded without its {which}")
        cache_key = f"{obj.key}:{obj.sha256}"
        cache = self._sealed[which]
        with self._lock:
            hit = cache.get(cache_key)
            if hit is not None:
                cache.move_to_end(cache_key)
                return hit
        data = uplink_cli.sealed_object(self.store(), obj)
        try:
            opened = SeekableAge(data, [self.ring.identity])
        except AgeError as exc:
            raise DoorwardError(f"cannot open {obj.key} with your identity: {exc}") from exc
        with self._lock:
            cache[cache_key] = opened
            while len(cache) > (SEALED_CACHE if which == "video" else 64):
                cache.popitem(last=False)
        return opened

    def sealed_bytes(self, device_id: str | None, clip_id: str) -> tuple[bytes, str]:
        """The sealed video as stored (for export: still encrypted), and its manifest key."""
        m = self.manifest(device_id, clip_id)
        obj = m.clip or m.snapshot
        assert obj is not None
        return uplink_cli.sealed_object(self.store(), obj), obj.key

    # -- signed commands ---------------------------------------------------------------------
    def _command(self, device_id: str | None, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        device = self.device(device_id)
        with self._commands:
            reply = command(self.ring, device, self.broker(device), cmd, args, self.timeout)
        result: dict[str, Any] = reply.get("result", {})
        return result

    def consent_show(self, device_id: str | None) -> dict[str, Any]:
        return self._command(device_id, "consent.show", {})

    def consent_grant(self, device_id: str | None, scopes: list[str], days: int | None,
                      until_revoked: bool) -> dict[str, Any]:
        _check_scopes(scopes)
        if until_revoked:
            days = None
        return self._command(device_id, "consent.grant", {"scopes": scopes, "days": days,
                                                           "until_revoked": until_revoked})

    def consent_revoke(self, device_id: str | None, scopes: list[str] | None) -> dict[str, Any]:
        if scopes is not None:
            _check_scopes(scopes)
        return self._command(device_id, "consent.revoke", {"scopes": scopes})

    def member_add(self, device_id: str | None, public_key: str, recipient: str,
                   role: str) -> dict[str, Any]:
        if role not in ("owner", "viewer"):
            raise DoorwardError("role must be owner or viewer")
        return self._command(device_id, "owner.add", {"public_key": public_key.strip(),
                                                       "recipient": recipient.strip(),
                                                       "role": role})

    def member_remove(self, device_id: str | None, key_id: str) -> dict[str, Any]:
        return self._command(device_id, "owner.remove", {"key_id": key_id.strip()})

    def ledger(self, device_id: str | None) -> dict[str, Any]:
        """The device's ledger fetched with a signed command and verified as ``owner ledger
        fetch`` does (chain, your pin, the bucket's checkpoints); the pin moves forward only
        when it passes. Entries newest first; disclosures name their clips; members derived."""
        device = self.device(device_id)
        text = self._command(device.device_id, "ledger.get", {}).get("ledger")
        if not isinstance(text, str):
            raise DoorwardError(f"{device.device_id} answered ledger.get without a ledger: is "
                                "it running this version of doorward?")
        args = argparse.Namespace(**(asdict(self.bucket) if self.bucket else {"bucket": None}))
        verdict = ledger_cli.check(self.ring, device, text, args)
        pinned = ledger_cli.advance_pin(self.ring, device, verdict)
        entries = [json.loads(line) for line in text.splitlines()[1:] if line.strip()]
        return {"device_id": device.device_id, "ok": verdict.ok, "rollback": verdict.rollback,
                "problems": verdict.problems, "notes": verdict.notes, "pinned": pinned,
                "entries": list(reversed(entries)), "members": members_from(entries)}

    def pair(self, *, broker_url: str, device_id: str, setup_code: str,
             fingerprint: str | None, timeout: float = 60.0,
             attempt_s: float = PAIR_ATTEMPT_S) -> dict[str, Any]:
        """Pair as ``doorward owner pair`` does, but wait (up to ``timeout``) for the owner to
        hold SETUP: the device answers only inside its window, so a hello is sent again every
        ``attempt_s`` (each a fresh exchange with the same key, which the window allows)."""
        deadline = time.monotonic() + timeout
        with self._commands:
            while True:
                left = deadline - time.monotonic()
                try:
                    device = pair(self.ring, self.options(broker_url), device_id, setup_code,
                                  expected_fingerprint=fingerprint or None,
                                  timeout=max(0.5, min(attempt_s, left)))
                    break
                except DoorwardError as exc:
                    if not str(exc).startswith("no answer from") or left <= attempt_s:
                        raise
        PinStore(self.ring.dir).forget(device.device_id)  # a new pairing, a new ledger to pin
        return asdict(device)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _check_scopes(scopes: list[str]) -> None:
    if not scopes or any(s not in SCOPES for s in scopes):
        raise DoorwardError(f"scopes must be some of {', '.join(SCOPES)}")


def members_from(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Members as the ledger tells them: pairing adds an owner, owner-added/-removed the rest; a
    factory reset starts afresh. Oldest first."""
    members: dict[str, dict[str, Any]] = {}
    removed: set[str] = set()
    for e in entries:
        data = e.get("data") or {}
        if e.get("kind") == "factory-reset":
            members.clear()
            removed.clear()
        elif e.get("kind") == "pairing" and data.get("owner"):
            members[data["owner"]] = {"key_id": data["owner"], "role": "owner",
                                      "recipient": data.get("recipient"), "since": e.get("ts")}
        elif e.get("kind") == "owner-added" and data.get("key_id"):
            members[data["key_id"]] = {"key_id": data["key_id"], "role": data.get("role"),
                                       "recipient": data.get("recipient"), "since": e.get("ts")}
        elif e.get("kind") == "owner-removed":
            members.pop(data.get("key_id", ""), None)
            removed.add(data.get("key_id", ""))
        by = data.get("by")
        if isinstance(by, str) and by not in members and by not in removed:
            # a key whose signed command the device accepted is a member, even when it came in
            # some other way than pairing (provisioned, or the ledger began after it)
            members[by] = {"key_id": by, "role": None, "recipient": None, "since": e.get("ts")}
    return list(members.values())


class _Prefetched:
    """An ObjectStore view for one timeline listing: ``list`` is asked once per prefix (manifests
    and progress records come from the same listing) and starts fetching every listed ``.jws`` in
    parallel, so 1,000 clips cost one LIST of their keys and 1,000 GETs eight at a time, not in
    a row; on S3 the listing's ETags let ``cache`` (tokens fetched before, unchanged since) save
    those GETs. Only ``list`` and ``get_bytes`` are used by the listing."""

    def __init__(self, store: ObjectStore, pool: ThreadPoolExecutor,
                 cache: TokenCache | None = None) -> None:
        self._store = store
        self._pool = pool
        self._cache = cache
        self._pending: dict[str, Any] = {}
        self._hits: dict[str, bytes] = {}
        self._listed: dict[str, list[str]] = {}
        self.etags: dict[str, str] = {}

    def _pairs(self, prefix: str) -> list[tuple[str, str]]:
        from uplink import S3ObjectStore

        if isinstance(self._store, S3ObjectStore):
            from uplink import list_with_etags

            return list(list_with_etags(self._store, prefix))
        return [(k, "") for k in self._store.list(prefix)]

    def list(self, prefix: str) -> Any:
        keys = self._listed.get(prefix)
        if keys is None:
            pairs = self._pairs(prefix)
            self.etags.update(pairs)
            keys = self._listed[prefix] = [k for k, _ in pairs]
        for k in keys:
            if not k.endswith(".jws") or k in self._pending or k in self._hits:
                continue
            cached = self._cache.get(k, self.etags.get(k, "")) if self._cache else None
            if cached is not None:
                self._hits[k] = cached
            else:
                self._pending[k] = self._pool.submit(self._store.get_bytes, k,
                                                     uplink_cli.MAX_MANIFEST_BYTES)
        return iter(keys)

    def get_bytes(self, key: str, max_bytes: int) -> bytes:
        hit = self._hits.get(key)
        if hit is not None and len(hit) <= max_bytes:
            return hit
        future = self._pending.get(key)
        if future is None:
            return self._store.get_bytes(key, max_bytes)
        data: bytes = future.result()
        if len(data) > max_bytes:
            return self._store.get_bytes(key, max_bytes)  # raises as the store does
        if self._cache is not None:
            self._cache.put(key, self.etags.get(key, ""), data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
