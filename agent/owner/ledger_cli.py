"""``doorward owner ledger fetch|verify``: the device's ledger, checked so that it cannot be cut.

A ledger passes only when it (1) is a complete export: the device-signed header first, then an
unbroken, device-signed hash chain ending where the header says; (2) extends the owner's pin for
that device (agent/owner/pins.py: the last ledger this owner verified); and (3) with ``--bucket``,
extends every checkpoint the device published there (uplink/checkpoint.py), which must also agree
with each other. Then the pin moves forward to it. Anything else exits 1 and says which check
failed; a ledger that does not extend what the owner or the bucket has seen is a *rollback*.

``fetch -o F`` writes ``F`` only when all of that holds; otherwise it writes ``F.rejected``, so an
earlier good export at ``F`` (the evidence) is never replaced by a cut one.

Wiring (agent/owner/cli.py)::

    add_arguments(osub); ...; return fetch(ring, args) / verify(ring, args)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError
from agent.owner import uplink_cli
from agent.owner.client import BrokerOptions, send_command
from agent.owner.keyring import OwnerKeyring, PairedDevice
from agent.owner.pins import Pin, PinStore
from uplink import (
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    CheckpointError,
    UplinkError,
    b64u_decode,
    check_checkpoint_key,
    checkpoint_not_extended,
    checkpoint_prefix,
    ed25519_public_from_raw,
    inconsistent_checkpoints,
    is_checkpoint_key,
    verify_checkpoint,
    verify_ledger_jsonl,
)


def add_arguments(osub: Any, device_args: Any) -> None:
    """``owner ledger fetch|verify``; ``device_args(p)`` adds --device and the broker options."""
    lp = osub.add_parser("ledger", help="the device's signed ledger")
    lsub = lp.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    f = lsub.add_parser("fetch", help="fetch the ledger with a signed command and verify it")
    device_args(f)
    f.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write the signed JSONL ledger")
    uplink_cli.add_bucket_arguments(f, required=False)
    v = lsub.add_parser("verify", help="verify a fetched ledger offline")
    v.add_argument("file", metavar="FILE", help="a ledger written by `owner ledger fetch`")
    v.add_argument("--device", metavar="DEVICE_ID", help="default: the only paired device")
    uplink_cli.add_bucket_arguments(v, required=False)


@dataclass
class Verdict:
    """What the checks found: ``problems`` make it fail; ``notes`` are said either way."""

    hashes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rollback: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def fetch(ring: OwnerKeyring, args: argparse.Namespace, broker: BrokerOptions) -> int:
    device = ring.device(args.device)
    reply = send_command(ring, device, broker, "ledger.get", {}, timeout=args.timeout)
    if not reply.get("ok"):
        raise DoorwardError(f"{device.device_id} refused ledger.get: {reply.get('reason')} "
                            f"({reply.get('detail', '')})")
    result = reply.get("result")
    text = result.get("ledger") if isinstance(result, dict) else None
    if not isinstance(text, str):
        raise DoorwardError(f"{device.device_id} answered ledger.get without a ledger: is it "
                            "running this version of doorward?")
    verdict = check(ring, device, text, args)
    out = Path(args.output)
    target = out if verdict.ok else out.with_name(out.name + ".rejected")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DoorwardError(f"cannot write {target}: {exc}") from exc
    print(f"wrote {target} ({len(verdict.hashes)} entries)"
          + ("" if verdict.ok else f", NOT {out}: it did not verify"))
    return report(ring, device, verdict)


def verify(ring: OwnerKeyring, args: argparse.Namespace) -> int:
    device = ring.device(args.device)
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DoorwardError(f"cannot read ledger file {args.file}: {exc}") from exc
    return report(ring, device, check(ring, device, text, args))


def report(ring: OwnerKeyring, device: PairedDevice, verdict: Verdict) -> int:
    """Print the verdict; on success advance the pin. Returns the exit code."""
    for note in verdict.notes:
        print(note)
    if not verdict.ok:
        if verdict.rollback:
            print(f"ROLLBACK: the ledger of {device.device_id} does not extend what was seen "
                  "before: entries were removed or rewritten on the device (or this is an "
                  "older export than your last one). Keep the earlier export as evidence and do "
                  "not trust the device's history until you know why (a restored backup of its "
                  "data directory, or tampering). After a factory reset, pair again to start "
                  "a new pin.", file=sys.stderr)
        for problem in verdict.problems:  # on stdout, like the report of a good ledger
            print(problem)
        return 1
    said = advance_pin(ring, device, verdict)
    if said:
        print(said)
    return 0


def advance_pin(ring: OwnerKeyring, device: PairedDevice, verdict: Verdict) -> str:
    """After a verdict that is ok: move the device's pin forward to it; says what was pinned."""
    if not verdict.ok or not verdict.hashes:
        return ""
    pins = PinStore(ring.dir)
    old = pins.get(device.device_id)
    if old is not None and (old.count, old.head) == (len(verdict.hashes), verdict.hashes[-1]):
        return f"pinned {device.device_id} already: {old.describe()}"
    pin = Pin.of(verdict.hashes, time.time())
    pins.put(device.device_id, pin)
    return f"pinned {device.device_id}: {pin.describe()}"


def check(ring: OwnerKeyring, device: PairedDevice, text: str,
          args: argparse.Namespace) -> Verdict:
    """All three checks of the module docstring over an export's ``text``."""
    key = ed25519_public_from_raw(b64u_decode(device.public_key))
    verdict = Verdict()
    result = verify_ledger_jsonl(text, key, require_header=True)
    if not result.ok:
        verdict.problems.append(str(result))
        return verdict
    verdict.notes.append(str(result))
    entries = [json.loads(line) for line in text.splitlines()[1:] if line.strip()]
    verdict.hashes = [e["hash"] for e in entries]
    reset = bool(entries) and entries[0]["kind"] == "factory-reset"
    pin = PinStore(ring.dir).get(device.device_id)
    if pin is not None:
        problem = pin.not_extended_by(verdict.hashes)
        if problem:
            verdict.rollback = True
            verdict.problems.append(f"your pin: {problem}" + (
                "; its first entry is a factory reset: the device was reset since" if reset
                else ""))
    if getattr(args, "bucket", None):
        _check_checkpoints(device, args, verdict, reset=reset)
    return verdict


def _checkpoints(device: PairedDevice, args: argparse.Namespace
                 ) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint of ``device`` in the bucket that verifies, and the keys of other objects
    in its checkpoint folder (anyone able to write the bucket could put them there)."""
    store = uplink_cli.bucket_store(args)
    key = b64u_decode(device.public_key)
    good, bad = [], []
    try:
        for obj in store.list(checkpoint_prefix(args.prefix, device.device_id)):
            if not is_checkpoint_key(obj):
                bad.append(obj)
                continue
            try:
                cp = verify_checkpoint(store.get_bytes(obj, MAX_CHECKPOINT_BYTES), key)
                check_checkpoint_key(obj, cp)
            except CheckpointError:
                bad.append(obj)
                continue
            good.append(cp)
    except UplinkError as exc:
        raise DoorwardError(f"cannot read the checkpoints in bucket {args.bucket}: {exc}") \
            from exc
    return good, bad


def _check_checkpoints(device: PairedDevice, args: argparse.Namespace, verdict: Verdict, *,
                       reset: bool) -> None:
    cps, bad = _checkpoints(device, args)
    if bad:
        verdict.notes.append(f"ignored {len(bad)} object(s) that are not checkpoints signed by "
                             f"{device.device_id}: {', '.join(bad[:3])}")
    forks = inconsistent_checkpoints(cps)
    if forks:
        verdict.rollback = True
        verdict.problems.extend(f"checkpoints: {f}" for f in forks)
    chain = verdict.hashes[0] if verdict.hashes else None
    ours = [cp for cp in cps if cp.chain == chain]
    for cp in ours:
        problem = checkpoint_not_extended(verdict.hashes, cp)
        if problem:
            verdict.rollback = True
            verdict.problems.append(f"checkpoint in the bucket: {problem}")
    older = [cp for cp in cps if cp.chain != chain]
    if older and not reset:
        verdict.rollback = True
        longest = max(older, key=lambda cp: cp.count)
        verdict.problems.append(
            f"checkpoint in the bucket: {checkpoint_not_extended(verdict.hashes, longest)}; this "
            "ledger does not begin with a factory reset, so that ledger was replaced behind your "
            "back")
    if verdict.ok:
        verdict.notes.append(
            f"{len(ours)} checkpoint(s) in bucket {args.bucket} verified and extended"
            + (f"; {len(older)} from before the factory reset" if older else ""))
