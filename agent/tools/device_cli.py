"""Device-side commands: ``device label``, ``press``, ``consent show``, ``ledger show|verify``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agent.config import Config
from agent.device.buttons import SimulatedPress
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity, label_text
from agent.device.ledger import Ledger, verify_local
from agent.errors import DoorwardError
from agent.paths import DataDir
from agent.runtime.control_socket import send_command
from uplink import iso_utc_seconds


def _data_dir(args: argparse.Namespace, cfg: Config) -> Path:
    return cfg.data_dir(args.data_dir)


def _open_db(data_dir: Path) -> DeviceDB:
    path = DataDir(data_dir).device_db
    if not path.exists():
        raise DoorwardError(f"no device state in {data_dir}: start `doorward run` once, or pass "
                            "--data-dir with the directory it uses")
    return DeviceDB(path)


def iso(ts: float | None) -> str | None:
    return None if ts is None else iso_utc_seconds(ts)


def device_label(args: argparse.Namespace, cfg: Config) -> int:
    label = DeviceIdentity.load_or_create(_data_dir(args, cfg)).label()
    print(json.dumps(label, indent=2) if args.json else label_text(label))
    return 0


def device_csr(args: argparse.Namespace, cfg: Config) -> int:
    from agent.device.csr import make_csr

    data_dir = _data_dir(args, cfg)
    ident = DeviceIdentity.load_or_create(data_dir)
    csr, key_path = make_csr(data_dir, ident.device_id, args.key_type)
    if args.output:
        Path(args.output).write_bytes(csr)
        print(f"wrote {args.output} (CN={ident.device_id}); the TLS key is {key_path}: set "
              "[mqtt] key_file to it and cert_file to the issued certificate")
    else:
        print(csr.decode("ascii"), end="")
    return 0


def press(args: argparse.Namespace, cfg: Config) -> int:
    hold = args.hold if args.hold is not None else 0.2
    reply = send_command(DataDir(_data_dir(args, cfg)).control_socket,
                         {"cmd": "press", "button": args.button, "hold_s": hold})
    if not reply.get("ok"):
        raise DoorwardError(f"the daemon refused the press: {reply.get('error', reply)}")
    hold_until(args.button, hold)
    print(f"pressed {args.button} for {hold:g} s")
    return 0


# The daemon's loop presses at its next iteration and releases at the first one after the hold:
# a frame period or two later than the request (15 fps: 67 ms each).
RELEASE_MARGIN_S = 0.15


def hold_until(button: str, hold_s: float, *, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Return when the daemon has let go of ``button``, as a finger would: after ``hold_s``
    (at least the shortest press it makes) and the loop's margin; a countdown on a terminal."""
    end = clock() + max(hold_s, SimulatedPress.MIN_HOLD_S) + RELEASE_MARGIN_S
    tty = sys.stderr.isatty()
    while (left := end - clock()) > 0:
        if tty:
            sys.stderr.write(f"\r\x1b[Kholding {button}: {max(0.0, left):.1f} s left")
            sys.stderr.flush()
        sleep(min(left, 0.1))
    if tty:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def consent_show(args: argparse.Namespace, cfg: Config) -> int:
    data_dir = _data_dir(args, cfg)
    db = _open_db(data_dir)
    try:
        doc = ConsentStore(db).show(time.time())
    finally:
        db.close()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    if not doc["grants"]:
        print("no consent in force: nothing leaves this device")
    for g in doc["grants"]:
        until = "until revoked" if g["expires_at"] is None else f"until {iso(g['expires_at'])}"
        print(f"{g['scope']:<10} granted {iso(g['granted_at'])} by {g['granted_by']}, {until}")
    return 0


def _ledger_export(data_dir: Path) -> str:
    db = _open_db(data_dir)
    try:
        ident = DeviceIdentity.load_or_create(data_dir)
        return Ledger(db, ident.key).export_jsonl()
    finally:
        db.close()


def ledger_show(args: argparse.Namespace, cfg: Config) -> int:
    text = _ledger_export(_data_dir(args, cfg))
    if args.json:
        print(text, end="")
        return 0
    for line in text.splitlines()[1:]:
        e = json.loads(line)
        print(f"{e['seq']:>5}  {iso(e['ts'])}  {e['kind']:<17} {json.dumps(e['data'])}")
    return 0


def ledger_verify(args: argparse.Namespace, cfg: Config) -> int:
    data_dir = _data_dir(args, cfg)
    ident = DeviceIdentity.load_or_create(data_dir)
    db = _open_db(data_dir)
    try:  # the chain, then against the head the device signed with its last append
        report = verify_local(Ledger(db, ident.key), ident.key.public_key())
    finally:
        db.close()
    print(report)
    return 0 if report.ok else 1
