"""``doorward owner bridge``: Home Assistant through an owner-side bridge, sealing kept end to end.

A long-running member of the device (paired as a viewer with ``owner add-member``) that listens
to the device's sealed, signed messages, verifies and opens them with its own identity (the owner
app's :class:`~agent.owner.app.live.LiveFeed`), and republishes to Home Assistant's broker with
MQTT discovery (:mod:`.ha_discovery`, :mod:`.bridge`): a doorbell ``event``, a motion
``binary_sensor``, a last-event ``sensor`` and an ``image`` of the last event's snapshot
(:mod:`.pictures`, decrypted here, never by the device). Anything that fails verification is
dropped and logged. The systemd unit is systemd/doorward-bridge.service.

Wiring (agent.owner.cli)::

    add_arguments(osub); ... if cmd == "bridge": return main(args, owner_dir)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from agent.errors import DoorwardError

log = logging.getLogger("doorward")


def add_arguments(osub: Any, login_args: Any) -> None:
    """The ``bridge`` action; ``login_args(p)`` adds --username/--password-file."""
    from agent.owner.app.settings import STYLES
    from agent.owner.bridge.ha_discovery import DEFAULT_PREFIX

    p = osub.add_parser("bridge", help="republish the device's verified events to Home "
                        "Assistant's broker (runs until stopped)")
    p.add_argument("--ha-broker", required=True, metavar="URL",
                   help="Home Assistant's broker, mqtt://host:1883 or mqtts://host:8883")
    p.add_argument("--ha-username", metavar="U", help="login on Home Assistant's broker")
    p.add_argument("--ha-password-file", type=Path, metavar="F",
                   help="file holding that login's password on one line")
    p.add_argument("--ha-ca-file", type=Path, metavar="F", help="CA of Home Assistant's broker "
                   "(mqtts)")
    p.add_argument("--discovery-prefix", default=DEFAULT_PREFIX, metavar="P",
                   help=f"Home Assistant's MQTT discovery prefix (default {DEFAULT_PREFIX})")
    p.add_argument("--broker", metavar="URL", help="the device's broker (default: the one "
                   "remembered with the device)")
    p.add_argument("--ca-file", type=Path, help="CA of the device's broker (mqtts)")
    p.add_argument("--cert-file", type=Path, help="client certificate there (mqtts)")
    p.add_argument("--key-file", type=Path, help="client key there (mqtts)")
    login_args(p)
    p.add_argument("--device", metavar="DEVICE_ID", help="with --device-key: remember this "
                   "device (once; the owner's `doorward owner show --json` lists both)")
    p.add_argument("--device-key", metavar="KEY", help="the device's public key (base64url)")
    p.add_argument("--bucket", help="the device's bucket, for snapshots (remembered)")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (remembered; default AWS)")
    p.add_argument("--prefix", help="key prefix (remembered; default doorward)")
    p.add_argument("--region", help="remembered; default us-east-1")
    p.add_argument("--addressing-style", choices=list(STYLES), help="remembered; default auto")
    p.add_argument("--max-ring-age", type=float, default=300.0, metavar="S",
                   help="a ring signed longer ago than S seconds (late, or replayed) does not "
                        "ring in Home Assistant, and until Home Assistant shows a message of a "
                        "device, one older than that does not set its states (default 300)")
    p.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                   help="give up at start when a broker does not answer within S seconds")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="json: one object per line, with the structured fields")


def main(args: argparse.Namespace, owner_dir: Path) -> int:
    """Run the bridge until SIGTERM or Ctrl-C."""
    from agent.logs import setup_logging

    setup_logging("info", args.log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    running = start(args, owner_dir)
    try:
        stop.wait()
    finally:
        running.close()
    return 0


class Running:
    """A started bridge: its feed (device side) and HaBridge (Home Assistant side)."""

    def __init__(self, feed: Any, bridge: Any, service: Any) -> None:
        self.feed, self.bridge, self.service = feed, bridge, service

    def close(self) -> None:
        # The feed stops handing items on first, the bridge then settles what it was handed
        # (acknowledged over the feed's still open connection), and only then does the feed
        # disconnect: a clean stop leaves nothing for the device's broker to send again.
        self.feed.quiesce()
        self.bridge.stop()
        self.feed.stop()
        self.service.close()


def start(args: argparse.Namespace, owner_dir: Path, *, connector: Any = None,
          ha_connector: Any = None, store: Any = None) -> Running:
    """Build and start the bridge from the parsed flags; ``connector``/``ha_connector`` (MQTT
    client factories) and ``store`` (the bucket) replace the real ones in tests."""
    from agent import __version__
    from agent.owner.app.live import LiveFeed
    from agent.owner.app.service import OwnerService
    from agent.owner.app.settings import BucketOptions
    from agent.owner.app.snapshots import SnapshotFinder
    from agent.owner.bridge.bridge import HaBridge
    from agent.owner.bridge.ha_discovery import check_prefix
    from agent.owner.bridge.pictures import BridgePictures
    from agent.owner.bridge.shown import SHOWN_FILE, ShownSeqs
    from agent.owner.client import BrokerOptions, wait_connected
    from agent.owner.keyring import OwnerKeyring

    ring = OwnerKeyring.open(owner_dir)
    try:
        prefix = check_prefix(args.discovery_prefix)
    except ValueError as exc:
        raise DoorwardError(str(exc)) from exc
    shown = ShownSeqs.open(owner_dir / SHOWN_FILE)  # a bad file stops here, before connecting
    remember_device(ring, args)
    devices = ring.devices()
    if not devices:
        raise DoorwardError(f"the bridge knows no device ({owner_dir}/devices.json): run it once "
                            "with --device DEVICE_ID --device-key KEY --broker URL (the owner's "
                            "`doorward owner show --json` lists the device id and key)")
    device_broker = BrokerOptions.login(
        args.broker or devices[0].broker, ca_file=args.ca_file, cert_file=args.cert_file,
        key_file=args.key_file, username=args.username, password_file=args.password_file)
    ha_broker = BrokerOptions.login(args.ha_broker, ca_file=args.ha_ca_file,
                                    username=args.ha_username,
                                    password_file=args.ha_password_file)
    given = {k: getattr(args, k) for k in ("bucket", "endpoint_url", "prefix", "region",
                                           "addressing_style")}
    bucket = BucketOptions.remembered(owner_dir, given)
    if bucket is None and store is None:
        log.warning("bridge: no bucket given: the image entity stays empty until you restart "
                    "with --bucket NAME (and --endpoint-url for a non-AWS store)")
    service = OwnerService(ring, bucket=bucket, store=store)
    pictures = BridgePictures(service)
    if ha_connector is None or connector is None:
        from uplink import MqttClient  # paho: only when the bridge talks to brokers

        ha_connector, connector = ha_connector or MqttClient, connector or MqttClient
    bridge = HaBridge(ha_connector, ha_broker, bridge_id=ring.key_id,
                      devices=[d.device_id for d in devices], prefix=prefix,
                      sw_version=__version__, pictures=pictures,
                      max_ring_age_s=args.max_ring_age, shown=shown)
    # One broker session per bridge identity, kept while the bridge is stopped: events sent
    # meanwhile reach Home Assistant when it starts again (rings older than --max-ring-age only
    # update the states). Two bridges of one owner directory would take the session from each
    # other: run one. A message is acknowledged there only once Home Assistant's broker has
    # what the bridge made of it (settle), so one in hand when the bridge dies comes again.
    feed = LiveFeed(ring, broker=device_broker, connector=connector, snapshot=pictures.find,
                    warm=SnapshotFinder.warm if (bucket or store) else None,
                    session=f"doorward-bridge-{ring.key_id}", settle=bridge.settle)
    feed.listen(bridge.offer)
    bridge.start()
    running = Running(feed, bridge, service)
    try:
        _connected(bridge.ha, ha_broker.url, "Home Assistant's broker (--ha-broker, "
                   "--ha-username, --ha-password-file)", args.connect_timeout, wait_connected)
        feed.start()
        for client in feed.clients():
            _connected(client, device_broker.url, "the device's broker (--broker, --username, "
                       "--password-file)", args.connect_timeout, wait_connected)
    except BaseException:
        with contextlib.suppress(Exception):
            running.close()
        raise
    log.info("bridge: %s (%s) republishes %s to Home Assistant at %s (discovery prefix %s)",
             ring.key_id, ring.recipient, ", ".join(d.device_id for d in devices),
             ha_broker.url, prefix)
    return running


def _connected(client: Any, url: str, what: str, timeout: float, wait: Any) -> None:
    if not wait(client, timeout):
        raise DoorwardError(f"cannot connect to {what} at {url}: "
                            f"{client.last_error or 'no answer'}")


def remember_device(ring: Any, args: argparse.Namespace) -> None:
    """With --device and --device-key, add the device to the bridge's keyring (checked: the id
    is the key's); either alone is an error."""
    from agent.owner.keyring import PairedDevice
    from uplink import UplinkError, b64u_decode, device_id_for, fingerprint

    if not args.device and not args.device_key:
        return
    if not (args.device and args.device_key and args.broker):
        raise DoorwardError("--device, --device-key and --broker go together: the device's "
                            "id, public key and broker, as the owner's `doorward owner show "
                            "--json` lists them")
    try:
        raw = b64u_decode(args.device_key.strip())
        device_id = device_id_for(raw)
    except (UplinkError, ValueError) as exc:
        raise DoorwardError(f"--device-key is not a device public key: {exc}") from exc
    if device_id != args.device:
        raise DoorwardError(f"--device-key belongs to {device_id}, not {args.device}: copy both "
                            "from the same line of `doorward owner show --json`")
    known = {d.device_id: d for d in ring.devices()}
    if args.device in known and known[args.device].public_key == args.device_key.strip():
        return
    ring.add_device(PairedDevice(device_id, args.device_key.strip(), fingerprint(raw),
                                 args.broker, time.time()))
    log.info("bridge: remembered device %s (fingerprint %s)", device_id, fingerprint(raw))
