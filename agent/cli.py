"""``doorward``: the command line. Parsing and dispatch only; the work is in agent.app and
agent.tools.clips_cli. Every DoorwardError becomes a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from agent import __version__
from agent.config import SYSTEM_CONFIG
from agent.errors import DoorwardError

log = logging.getLogger("doorward")


def _add_common(p: argparse.ArgumentParser, *, data_dir: bool = True) -> None:
    p.add_argument("--config", metavar="F", help="TOML config file (default: $DOORWARD_CONFIG, "
                   f"else {SYSTEM_CONFIG} if it exists, else the built-in defaults)")
    if data_dir:
        p.add_argument("--data-dir", metavar="D", help="data directory (default: [store] "
                       "data_dir of the config)")


def build_parser(*, owner_side: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``owner_side=False`` leaves out the ``owner``, ``requester`` and
    ``verify-bundle`` commands, whose argument definitions import the owner's and requester's
    tools (1.4 MB of modules the daemon never uses: ``main`` builds it so for ``run``)."""
    parser = argparse.ArgumentParser(
        prog="doorward",
        description="Doorbell camera agent: clips sealed to the owner, "
                    "nothing leaves without consent.",
    )
    parser.add_argument("--version", action="version", version=f"doorward {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon")
    _add_common(p)
    p.add_argument("--source", metavar="SPEC",
                   help="sim:SCENE | file:PATH | v4l2:DEV | picamera2 (default: from config)")
    p.add_argument("--realtime", action="store_true",
                   help="pace sim and file sources at their frame rate")
    p.add_argument("--exit-at-eof", action="store_true",
                   help="exit when a finite source ends (sim scenes loop otherwise)")
    p.add_argument("--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port "
                   "(overrides [mqtt] url)")
    p.add_argument("--drain-timeout", type=float, metavar="S",
                   help="with --exit-at-eof: wait up to S seconds for the outbox to drain "
                   "(default [uplink] drain_timeout_s, 60)")

    p = sub.add_parser("analyze", help="motion events of a video file, as JSON")
    _add_common(p, data_dir=False)
    p.add_argument("path", metavar="PATH", help="the video file (any format FFmpeg reads)")
    p.add_argument("--json", action="store_true", help="print JSON (the only format)")

    p = sub.add_parser("scenes", help="simulated scenes")
    ssub = p.add_subparsers(dest="scenes_command", required=True, metavar="ACTION")
    sp = ssub.add_parser("list", help="list the built-in scenes")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp = ssub.add_parser("render", help="render a scene to MP4 (+ ground truth JSON)")
    _add_common(sp, data_dir=False)
    sp.add_argument("name", metavar="NAME", help="a scene of `doorward scenes list`")
    sp.add_argument("-o", "--output", required=True, metavar="OUT.mp4",
                    help="the MP4 to write (its ground truth goes next to it as .json)")
    sp.add_argument("--seed", type=int, default=0, metavar="N",
                    help="random seed of the scene's variations (default 0)")

    p = sub.add_parser("events", help="events recorded by this device")
    esub = p.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    sp = esub.add_parser("list", help="list events")
    _add_common(sp)
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("clips", help="sealed clips in the local store")
    csub = p.add_subparsers(dest="clips_command", required=True, metavar="ACTION")
    sp = csub.add_parser("list", help="list clips")
    _add_common(sp)
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp = csub.add_parser("export", help="decrypt a clip for its owner")
    _add_common(sp)
    sp.add_argument("id", metavar="ID", help="a clip id of `doorward clips list`")
    sp.add_argument("--identity", required=True, metavar="FILE",
                    help="the owner's age identity file (AGE-SECRET-KEY-1...)")
    sp.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="where to write the decrypted MP4 (or JPEG)")
    sp.add_argument("--snapshot", action="store_true", help="export the JPEG snapshot instead")

    p = sub.add_parser("status", help="what the daemon is doing")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("doctor", help="check camera, GPIO, clock, storage, broker, bucket, "
                       "pairing and consent; exit 1 if something blocks operation")
    _add_common(p)
    p.add_argument("--source", metavar="SPEC", help="the camera source to check (default: "
                   "from config)")
    p.add_argument("--broker", metavar="URL", help="the broker to check (overrides [mqtt] url)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for the broker and the bucket (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("device", help="this device's identity")
    dsub = p.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    sp = dsub.add_parser("label", help="what is printed on the label inside the housing")
    _add_common(sp)
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")

    sp = dsub.add_parser("csr", help="certificate signing request for the MQTT TLS client key")
    _add_common(sp)
    sp.add_argument("--key-type", choices=["p256", "ed25519"], default="p256",
                    help="p256 (default; AWS IoT Core) or ed25519")
    sp.add_argument("-o", "--output", metavar="FILE", help="write the CSR here (default stdout)")

    p = sub.add_parser("press", help="press a button of the running daemon (simulated sources)")
    _add_common(p)
    p.add_argument("button", choices=["ring", "setup"],
                   help="ring (the visitor's button) or setup (inside the housing)")
    p.add_argument("--hold", type=float, metavar="SECONDS", help="how long (default 0.2 s)")

    p = sub.add_parser("consent", help="the consent in force on this device")
    ksub = p.add_subparsers(dest="consent_command", required=True, metavar="ACTION")
    sp = ksub.add_parser("show", help="grants in force and when they end")
    _add_common(sp)
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("ledger", help="this device's hash-chained, signed ledger")
    lsub = p.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    sp = lsub.add_parser("show", help="list the entries")
    _add_common(sp)
    sp.add_argument("--json", action="store_true", help="the signed JSONL export")
    sp = lsub.add_parser("verify", help="check the chain; exit 1 naming the first broken entry")
    _add_common(sp)

    if not owner_side:
        return parser
    from agent.owner.cli import add_owner_arguments

    add_owner_arguments(sub)
    from agent.requester.cli import add_arguments as add_requester_arguments  # issue 16

    add_requester_arguments(sub)
    return parser


# Flags whose value is a base64url key: one key in 64 begins with "-", which argparse takes for
# an option ("expected one argument"), so their next word is glued on as --flag=KEY.
_KEY_FLAGS = ("--public-key", "--device-key")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line as ``main`` does: a key flag's value may begin with ``-``."""
    words = list(argv)
    glued: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in _KEY_FLAGS and i + 1 < len(words):
            glued.append(f"{words[i]}={words[i + 1]}")
            i += 2
        else:
            glued.append(words[i])
            i += 1
    # `run` is the daemon: its peak RSS is the device's budget (BENCHMARKS.md, issue 19). The
    # subcommand is always the first word (no option comes before it at the top level).
    return build_parser(owner_side=glued[:1] != ["run"]).parse_args(glued)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from agent.config import config_path, load_config
    from agent.logs import setup_logging
    from agent.tools import clips_cli as commands

    try:
        if args.command == "owner":  # the owner's tool needs no device configuration
            from agent.owner.cli import dispatch as owner_dispatch

            setup_logging("warning", "text")
            return owner_dispatch(args)
        if args.command in ("requester", "verify-bundle"):  # footage requests (issue 16)
            from agent.requester.cli import dispatch as requester_dispatch

            setup_logging("warning", "text")
            return requester_dispatch(args)
        if hasattr(args, "config"):  # --config, else $DOORWARD_CONFIG, else the installed one
            args.config = config_path(args.config)
        if args.command == "doctor":  # loads the config itself: a bad one is a FAIL to report
            from agent.tools import doctor

            setup_logging("warning", "text")
            return doctor.main(args)
        cfg = load_config(args.config if hasattr(args, "config") else None)
        setup_logging(cfg.log.level, cfg.log.format)
        if args.command == "run":
            from agent.app import RunOptions, run

            return run(cfg, RunOptions(data_dir=args.data_dir, source=args.source,
                                       realtime=args.realtime, exit_at_eof=args.exit_at_eof,
                                       broker=args.broker,
                                       drain_timeout_s=args.drain_timeout,
                                       child_source=True))
        if args.command == "analyze":
            from agent.tools.analyze import analyze

            print(json.dumps(analyze(cfg, args.path), indent=2))
            return 0
        return commands.dispatch(args, cfg)
    except DoorwardError as exc:
        print(f"doorward: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
