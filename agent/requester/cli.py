"""``doorward requester init|request|fetch`` and ``doorward verify-bundle DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError
from agent.requester.ask import RequestOptions, send_request
from agent.requester.bundle import verify_bundle
from agent.requester.fetch import fetch_into, wait_for_answer
from agent.requester.identity import RequesterIdentity, default_requester_dir


def add_arguments(sub: Any) -> None:
    """Add ``requester`` and ``verify-bundle`` to the top-level subparsers ``sub``."""
    p = sub.add_parser("requester", help="ask an owner for footage (police, insurer, neighbour)")
    p.add_argument("--requester-dir", metavar="R",
                   help=f"requester keys (default {default_requester_dir()})")
    rsub = p.add_subparsers(dest="requester_command", required=True, metavar="ACTION")
    ip = rsub.add_parser("init", help="create a requester identity (signing key, age identity)")
    ip.add_argument("--name", required=True, help="who you are, as the owner will see it")
    qp = rsub.add_parser("request", help="send a signed request for a time window")
    qp.add_argument("--device", required=True, metavar="ID", help="the doorbell's device id")
    qp.add_argument("--broker", required=True, metavar="URL", help="mqtt(s)://host:port")
    qp.add_argument("--from", dest="start", required=True, metavar="ISO8601",
                    help="start of the window")
    qp.add_argument("--to", dest="end", required=True, metavar="ISO8601", help="its end")
    qp.add_argument("--reason", required=True, metavar="TEXT", help="why, shown to the owner")
    qp.add_argument("--case", metavar="REF", help="your case reference")
    fp = rsub.add_parser("fetch", help="get the owner's answer and write a verified bundle")
    fp.add_argument("request_id", metavar="REQ_ID", help="the id `requester request` printed")
    fp.add_argument("-o", "--output", required=True, metavar="DIR", help="the bundle's folder")
    fp.add_argument("--timeout", type=float, default=15.0, metavar="S",
                    help="seconds to wait for the answer (default 15)")
    for q in (qp, fp, ip):
        q.add_argument("--requester-dir", metavar="R", default=argparse.SUPPRESS,
                       help="requester keys (also accepted before the action)")
    vp = sub.add_parser("verify-bundle", help="check a requester's bundle offline (exit 0: valid)")
    vp.add_argument("directory", metavar="DIR", help="the bundle's folder")


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "verify-bundle":
        report = verify_bundle(Path(args.directory))
        print(report)
        return 0 if report.ok else 1
    where = Path(args.requester_dir) if args.requester_dir else default_requester_dir()
    sub = args.requester_command
    if sub == "init":
        me, created = RequesterIdentity.init(where, name=args.name)
        print(("created" if created else "already present:") + f" requester keys in {where}")
        print(f"  key id:    {me.key_id}\n  recipient: {me.recipient}\n  name:      {me.name}")
        return 0
    me = RequesterIdentity.open(where)
    if sub == "request":
        rid = send_request(me, RequestOptions(args.device, args.broker, args.start, args.end,
                                              args.reason, args.case))
        print(rid)
        return 0
    if sub == "fetch":
        sealed = wait_for_answer(me, args.request_id, timeout=args.timeout)
        ids = fetch_into(me, sealed, args.request_id, Path(args.output))
        print(f"{len(ids)} clip(s) written to {args.output}: {', '.join(ids)}; "
              f"the bundle verifies (doorward verify-bundle {args.output})")
        return 0
    raise DoorwardError(f"unknown requester action {sub}")
