"""``doorward owner ...``: the owner's tool. Parsing lives in agent.cli; these run the commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError
from agent.owner import ledger_cli, live_cli, requests_cli, uplink_cli
from agent.owner.app import add_arguments as app_arguments
from agent.owner.app import main as app_main
from agent.owner.bridge import add_arguments as bridge_arguments
from agent.owner.bridge import main as bridge_main
from agent.owner.client import (
    BrokerOptions,
    add_login_arguments,
    command,
    pair,
    refused,
    send_command_replies,
)
from agent.owner.keyring import OwnerKeyring, PairedDevice, default_owner_dir
from agent.owner.pins import PinStore


def add_owner_arguments(sub: Any) -> None:
    """Add the ``owner`` command tree to the top-level subparsers ``sub``."""
    p = sub.add_parser("owner", help="the owner's tool: keys, pairing, consent")
    p.add_argument("--owner-dir", metavar="D", help=f"owner keys (default {default_owner_dir()})")
    osub = p.add_subparsers(dest="owner_command", required=True, metavar="ACTION")
    osub.add_parser("init", help="create the owner's signing key and age identity")
    sp = osub.add_parser("show", help="owner key id, age recipient, paired devices")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp = osub.add_parser("pair", help="pair with a device whose SETUP button was just held")
    _broker_args(sp, required=True)
    sp.add_argument("--device", required=True, metavar="DEVICE_ID",
                    help="the device id on its label")
    sp.add_argument("--setup-code", required=True, metavar="CODE",
                    help="the setup code on its label")
    sp.add_argument("--fingerprint", metavar="FP", help="the label's fingerprint (checked)")
    sp.add_argument("--timeout", type=float, default=30.0, metavar="S",
                    help="keep trying this long for the pairing window (default 30)")

    cp = osub.add_parser("consent", help="grant, revoke or show consent on a device")
    csub = cp.add_subparsers(dest="consent_command", required=True, metavar="ACTION")
    g = csub.add_parser("grant", help="allow scopes to leave the device")
    _device_args(g)
    g.add_argument("--scopes", required=True, help="comma list of events,snapshots,clips")
    span = g.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, metavar="N", help="expires after N days (default 30)")
    span.add_argument("--until-revoked", action="store_true", help="no expiry")
    r = csub.add_parser("revoke", help="withdraw consent (all scopes unless --scopes)")
    _device_args(r)
    r.add_argument("--scopes", help="comma list (default: all)")
    s = csub.add_parser("show", help="the consent in force on the device")
    _device_args(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of text")

    ap = osub.add_parser("add-member", help="let another owner or a viewer in (signed command)")
    _device_args(ap)
    ap.add_argument("--public-key", required=True, help="their key (doorward owner show)")
    ap.add_argument("--recipient", required=True, help="their age recipient (age1...)")
    ap.add_argument("--role", choices=["owner", "viewer"], default="viewer",
                    help="viewer (default: sees events and clips) or owner (also decides)")

    rp = osub.add_parser("remove-member", help="remove another owner or a viewer (signed)")
    _device_args(rp)
    rp.add_argument("--key-id", required=True, metavar="K", help="their key id (k-...)")

    fp = osub.add_parser("forget", help="erase clips on the device and in the bucket (signed)")
    _device_args(fp)
    which = fp.add_mutually_exclusive_group(required=True)
    which.add_argument("--clip", metavar="ID", help="one clip")
    which.add_argument("--before", metavar="DATE", help="YYYY-MM-DD")
    which.add_argument("--all", action="store_true", help="every clip")

    uplink_cli.add_arguments(osub)
    app_arguments(osub)
    bridge_arguments(osub, add_login_arguments)  # Home Assistant (issue 19)

    ledger_cli.add_arguments(osub, _device_args)
    requests_cli.add_arguments(osub, _device_args)  # footage requests (issue 16)
    # live view (issue 17)
    live_cli.add_arguments(osub, _device_args)


class _Waiting:
    """Says on stderr that `owner pair` waits for the window: a countdown on one line on a
    terminal, one line elsewhere."""

    def __init__(self, device_id: str) -> None:
        self.device_id, self.tty, self.said = device_id, sys.stderr.isatty(), False

    def __call__(self, left: float) -> None:
        text = (f"waiting for {self.device_id}'s pairing window: hold its SETUP button for 3 s "
                f"(the LED blinks); {left:.0f} s left")
        if self.tty:
            sys.stderr.write("\r\x1b[K" + text)
            sys.stderr.flush()
        elif not self.said:
            print(text, file=sys.stderr, flush=True)
        self.said = True

    def done(self) -> None:
        if self.tty and self.said:
            sys.stderr.write("\n")


def _broker_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument("--broker", required=required, metavar="URL",
                   help="mqtt://host:port or mqtts://host:port" +
                   ("" if required else " (default: the one used at pairing)"))
    p.add_argument("--ca-file", type=Path, help="CA of the broker (mqtts)")
    p.add_argument("--cert-file", type=Path, help="owner client certificate (mqtts)")
    p.add_argument("--key-file", type=Path, help="owner client key (mqtts)")
    add_login_arguments(p)


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", metavar="DEVICE_ID", help="default: the only paired device")
    _broker_args(p)
    p.add_argument("--timeout", type=float, default=15.0, metavar="S",
                   help="seconds to wait for the device's answer (default 15)")


def _broker(args: argparse.Namespace, device: PairedDevice | None = None) -> BrokerOptions:
    url = args.broker or (device.broker if device else None)
    if not url:
        raise DoorwardError("no broker: pass --broker URL")
    return BrokerOptions.login(url, ca_file=args.ca_file, cert_file=args.cert_file,
                               key_file=args.key_file, username=args.username,
                               password_file=args.password_file)


def _scopes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def dispatch(args: argparse.Namespace) -> int:
    owner_dir = Path(args.owner_dir) if args.owner_dir else default_owner_dir()
    cmd = args.owner_command
    if cmd == "init":
        ring, created = OwnerKeyring.init(owner_dir)
        print(("created" if created else "already present:") + f" owner keys in {owner_dir}")
        print(f"  key id:    {ring.key_id}\n  recipient: {ring.recipient}")
        return 0
    if cmd == "app":
        return app_main(args, owner_dir)
    if cmd == "bridge":
        return bridge_main(args, owner_dir)
    ring = OwnerKeyring.open(owner_dir)
    if cmd == "show":
        doc = ring.describe()
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(f"owner key id: {doc['key_id']}\npublic key:   {doc['public_key']}\n"
                  f"recipient:    {doc['recipient']}\nidentity:     {doc['identity_file']}")
            for d in doc["devices"]:
                print(f"device {d['device_id']} via {d['broker']} (fingerprint {d['fingerprint']})")
        return 0
    if cmd == "pair":
        waiting = _Waiting(args.device)
        try:
            device = pair(ring, _broker(args), args.device, args.setup_code,
                          expected_fingerprint=args.fingerprint, timeout=args.timeout,
                          on_wait=waiting)
        finally:
            waiting.done()
        PinStore(owner_dir).forget(device.device_id)  # a new pairing, a new ledger to pin
        print(f"paired with {device.device_id} (fingerprint {device.fingerprint}); "
              f"its clips are sealed to {ring.recipient}")
        return 0
    if cmd == "ledger" and args.ledger_command == "verify":
        return ledger_cli.verify(ring, args)
    if cmd == "clips":
        if args.clips_command == "list":
            return uplink_cli.clips_list(ring, args)
        return uplink_cli.clips_fetch(ring, args)
    if cmd == "events":
        return uplink_cli.events(ring, args)
    device = ring.device(args.device)
    broker = _broker(args, device)
    if cmd == "requests":  # footage requests (issue 16)
        return requests_cli.dispatch(ring, owner_dir, device, broker, args)
    if cmd == "live":  # live view (issue 17)
        return live_cli.run(ring, device, broker, args)
    if cmd == "live-allow":
        return live_cli.allow(ring, device, broker, args)
    if cmd == "consent":
        return _consent(ring, device, broker, args)
    if cmd == "forget":
        return _forget(ring, device, broker, args)
    if cmd == "add-member":
        reply = command(ring, device, broker, "owner.add", {
            "public_key": args.public_key, "recipient": args.recipient, "role": args.role},
            args.timeout)
        print(f"added {args.role} {reply.get('result', {}).get('key_id', '')}")
        return 0
    if cmd == "remove-member":
        reply = command(ring, device, broker, "owner.remove", {"key_id": args.key_id},
                         args.timeout)
        removed = reply.get("result", {}).get("removed", {})
        print(f"removed {removed.get('role', 'member')} {removed.get('key_id', args.key_id)}: "
              "nothing is sealed to them from now on")
        return 0
    return ledger_cli.fetch(ring, args, broker)


def _more_forget_replies(reply: dict[str, Any]) -> bool:
    """A forget's bucket part follows its first reply, maybe in several parts."""
    result = reply["result"]
    if result.get("stage") == "bucket":
        return result.get("last") is not True
    return bool(reply.get("ok") and result.get("bucket_pending"))


def _forget(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions,
            args: argparse.Namespace) -> int:
    """Erase, then wait (within --timeout) for the bucket's part, sealed to us like the first."""
    replies = send_command_replies(
        ring, device, broker, "clips.forget",
        {"clip": args.clip, "before": args.before, "all": bool(args.all)}, timeout=args.timeout,
        more=_more_forget_replies)
    refused(device, "clips.forget", replies[0])
    result = dict(replies[0]["result"])
    result.pop("bucket_pending", None)
    parts = [r["result"] for r in replies[1:] if r["result"].get("stage") == "bucket"]
    complete = bool(parts) and parts[-1].get("last") is True
    if parts:
        result["bucket"] = {k: [i for p in parts for i in p.get(k, [])]
                            for k in ("clips", "objects", "failed")}
    print(json.dumps(result, indent=2))
    if not complete and replies[0]["result"].get("bucket_pending"):
        print(f"the bucket part is still queued on the device after {args.timeout:g} s (its "
              "uploads lane works in order); its ledger records the erasure when done",
              file=sys.stderr)
    return 0


def _consent(ring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions,
             args: argparse.Namespace) -> int:
    sub = args.consent_command
    if sub == "grant":
        reply = command(ring, device, broker, "consent.grant", {
            "scopes": _scopes(args.scopes), "days": args.days,
            "until_revoked": bool(args.until_revoked)}, args.timeout)
    elif sub == "revoke":
        reply = command(ring, device, broker, "consent.revoke", {"scopes": _scopes(args.scopes)},
                         args.timeout)
    else:
        reply = command(ring, device, broker, "consent.show", {}, args.timeout)
    result = reply.get("result", {})
    print(json.dumps(result, indent=2) if sub != "show" or args.json else
          "\n".join(f"{g['scope']}: until {g['expires_at'] or 'revoked'}"
                    for g in result.get("grants", [])) or "no consent in force")
    return 0
