"""``doorward owner requests list|approve|deny``: the owner decides on footage requests.

See :mod:`agent.owner.requests` for what each does and the choices made.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError
from agent.owner import requests as owner_requests
from agent.owner.client import BrokerOptions
from agent.owner.keyring import OwnerKeyring, PairedDevice
from agent.owner.uplink_cli import _manifests, add_bucket_arguments


def add_arguments(osub: Any, device_args: Callable[[argparse.ArgumentParser], None]) -> None:
    rp = osub.add_parser("requests", help="footage requests from third parties: list, decide")
    rsub = rp.add_subparsers(dest="requests_command", required=True, metavar="ACTION")
    lp = rsub.add_parser("list", help="requests the device received, with the clips they cover")
    device_args(lp)
    _bucket(lp)
    lp.add_argument("--json", action="store_true", help="print JSON instead of text")
    ap = rsub.add_parser("approve", help="hand clips of a request's window to its requester")
    device_args(ap)
    _bucket(ap)
    ap.add_argument("request_id", metavar="REQ_ID", help="a request id of `owner requests list`")
    ap.add_argument("--clips", metavar="ID,ID", help="default: every clip in the window")
    ap.add_argument("--days", type=int, default=owner_requests.DEFAULT_DAYS, metavar="N",
                    help=f"the grant's life (default {owner_requests.DEFAULT_DAYS}, "
                         f"at most {owner_requests.MAX_DAYS})")
    dp = rsub.add_parser("deny", help="refuse a request (the requester is told, sealed)")
    device_args(dp)
    dp.add_argument("request_id", metavar="REQ_ID", help="a request id of `owner requests list`")
    dp.add_argument("--reason", metavar="TEXT", help="told to the requester")


def _bucket(p: argparse.ArgumentParser) -> None:
    add_bucket_arguments(p, required=False)
    p.set_defaults(prefix=None, region=None, addressing_style=None)


def dispatch(ring: OwnerKeyring, owner_dir: Path, device: PairedDevice, broker: BrokerOptions,
             args: argparse.Namespace) -> int:
    sub = args.requests_command
    if sub == "deny":
        owner_requests.deny(ring, device, broker, args.request_id, args.reason,
                            timeout=args.timeout)
        print(f"denied {args.request_id}; the device's ledger records it and the requester "
              "gets a sealed refusal")
        return 0
    opened = owner_requests.store_from(owner_requests.bucket_flags(owner_dir, args))
    if sub == "list":
        manifests = _manifests(opened[0], opened[1], device)[0] if opened else None
        listed, counted = owner_requests.list_requests(ring, device, broker, manifests,
                                                       args.timeout)
        doc: dict[str, Any] = {"requests": [x.to_json() for x in listed], "counted": counted,
                               "clips_checked": opened is not None}
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            for x in doc["requests"]:
                who = x["requester"] or {"name": "?", "key_id": "?"}
                print(f"{x['id']}  {x['state']:8}  {who['name']} ({who['key_id']})  "
                      f"{x['from']} .. {x['to']}  clips: {', '.join(x['clips']) or '-'}\n"
                      f"    reason: {x['reason']}" + (f"  case: {x['case']}" if x['case'] else ""))
            for what, n in sorted(counted.items()):
                print(f"{n} request(s) {what.replace('_', '-')} (counted, not stored)")
            if opened is None:
                print("(pass --bucket ... once to see the clips in each window)")
        return 0
    if opened is None:
        raise DoorwardError("approve needs the bucket: pass --bucket (and --endpoint-url, "
                            "--prefix ...) once; they are remembered")
    clips = [c.strip() for c in args.clips.split(",") if c.strip()] if args.clips else None
    grant = owner_requests.approve(ring, device, broker, opened[0], opened[1], args.request_id,
                                   clips, args.days, timeout=args.timeout)
    print(f"approved {args.request_id}: {', '.join(grant.clip_ids())} for "
          f"{grant.requester} until {grant.expires_at} (unix time); the grant is sealed to them")
    return 0
