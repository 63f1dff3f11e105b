"""``doorward owner app``: the owner's web page, a new face on the same owner client.

A small Starlette server on 127.0.0.1 (``server.py``) behind a token, cookie and CSRF gate
(``security.py``), over :class:`~agent.owner.app.service.OwnerService`, which calls the very
functions ``doorward owner ...`` runs (agent/owner/client.py, uplink_cli.py, ledger_cli.py). The
live feed (``live.py``) verifies the device's messages as ``owner events`` does; media are fetched
sealed, checked against their signed manifest and decrypted range by range in memory
(uplink/age_seek.py). Static page: ``static/`` (HTML, CSS, one JavaScript module).

Wiring (agent.owner.cli)::

    add_arguments(osub); ... if cmd == "app": return main(args, owner_dir)
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from agent.owner.app.settings import STYLES, BucketOptions
from agent.owner.client import BrokerOptions, add_login_arguments


def add_arguments(osub: Any) -> None:
    p = osub.add_parser("app", help="the owner's web page on 127.0.0.1 (clips, consent, live)")
    p.add_argument("--port", type=int, default=0, metavar="P", help="default: a free port")
    p.add_argument("--no-browser", action="store_true", help="print the address only")
    p.add_argument("--broker", metavar="URL", help="default: each device's pairing broker")
    add_login_arguments(p)
    p.add_argument("--bucket", help="the device's bucket (remembered in the owner dir)")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (remembered; default: AWS)")
    p.add_argument("--prefix", help="key prefix (remembered; default doorward)")
    p.add_argument("--region", help="remembered; default us-east-1")
    p.add_argument("--addressing-style", choices=list(STYLES), help="remembered; default auto")


def main(args: argparse.Namespace, owner_dir: Path) -> int:
    from agent.owner.app.server import run  # starlette and uvicorn: only for the app
    from agent.owner.app.service import OwnerService
    from agent.owner.keyring import OwnerKeyring

    ring = OwnerKeyring.open(owner_dir)
    given = {k: getattr(args, k) for k in ("bucket", "endpoint_url", "prefix", "region",
                                           "addressing_style")}
    bucket = BucketOptions.remembered(owner_dir, given)
    if bucket is None:
        print("no bucket given: the clips page stays empty until you restart with --bucket NAME "
              "(and --endpoint-url for a non-AWS store); it is then remembered")
    login = (BrokerOptions.login("mqtt://unused", username=args.username,
                                 password_file=args.password_file)
             if args.username or args.password_file else None)
    service = OwnerService(ring, bucket=bucket, broker_url=args.broker, login=login)
    with contextlib.suppress(KeyboardInterrupt):
        run(service, port=args.port, open_browser=not args.no_browser)
    return 0
