"""The small ``doorward`` commands: scenes, events, clips, status. Each returns an exit status."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.errors import DoorwardError, StoreError
from agent.runtime.status_file import status_document
from agent.store import ClipRecord, ClipStore
from agent.tools.display import utc_minute
from uplink import AgeError, decrypt_file, load_identities


def dispatch(args: argparse.Namespace, cfg: Config) -> int:
    if args.command == "scenes":
        return scenes_list(args) if args.scenes_command == "list" else scenes_render(args, cfg)
    if args.command == "events":
        return events_list(args, cfg)
    if args.command == "clips":
        return clips_list(args, cfg) if args.clips_command == "list" else clips_export(args, cfg)
    if args.command == "status":
        return status(args, cfg)
    from agent.tools import device_cli

    if args.command == "device":
        if args.device_command == "csr":
            return device_cli.device_csr(args, cfg)
        return device_cli.device_label(args, cfg)
    if args.command == "press":
        return device_cli.press(args, cfg)
    if args.command == "consent":
        return device_cli.consent_show(args, cfg)
    if args.command == "ledger":
        if args.ledger_command == "show":
            return device_cli.ledger_show(args, cfg)
        return device_cli.ledger_verify(args, cfg)
    raise DoorwardError(f"unknown command {args.command!r}")


def _open_store(args: argparse.Namespace, cfg: Config) -> ClipStore:
    data_dir = cfg.data_dir(args.data_dir)
    if not (data_dir / "index.sqlite").exists():
        raise StoreError(f"no Doorward store in {data_dir}: pass --data-dir with the directory "
                         "`doorward run` used")
    return ClipStore(data_dir, max_bytes=cfg.store.max_bytes,
                     retention_days=cfg.store.retention_days)


def scenes_list(args: argparse.Namespace) -> int:
    from agent.camera.sim import get_scene, scene_names

    rows = []
    for name in scene_names():
        sc = get_scene(name)
        rows.append({"name": name, "duration_s": sc.duration_s, "events": len(sc.events),
                     "nuisances": list(sc.nuisances), "description": sc.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        dur = "forever" if r["duration_s"] is None else f"{r['duration_s']:.0f} s"
        print(f"{r['name']:<16} {dur:>8}  {r['events']} event(s)  {r['description']}")
    return 0


def scenes_render(args: argparse.Namespace, cfg: Config) -> int:
    from agent.camera.sim import SimCamera, get_scene
    from agent.tools.scene_render import render_scene

    scene = get_scene(args.name, seed=args.seed)
    if scene.duration_s is None:
        raise DoorwardError(f"scene {args.name!r} runs forever and cannot be rendered to a file: "
                            "pick a finite scene from `doorward scenes list`")
    cam = SimCamera(scene, width=cfg.camera.width, height=cfg.camera.height,
                    luma_width=cfg.camera.luma_width, fps=cfg.camera.fps, seed=args.seed)
    out = Path(args.output)
    truth = render_scene(cam, scene, out)
    out.with_suffix(".json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def events_list(args: argparse.Namespace, cfg: Config) -> int:
    events = _open_store(args, cfg).list_events()
    docs = [dataclasses.asdict(e) for e in events]
    if args.json:
        print(json.dumps({"events": docs}, indent=2, default=str))
        return 0
    if not docs:
        print("no events")
    for d in docs:
        print("  ".join(f"{k}={v}" for k, v in d.items()))
    return 0


def clip_doc(rec: ClipRecord) -> dict[str, Any]:
    doc = dataclasses.asdict(rec)
    for key in ("path", "snapshot_path"):
        if doc.get(key) is not None:
            doc[key] = str(doc[key])
    doc["recipients"] = list(rec.recipients)
    return doc


def clips_list(args: argparse.Namespace, cfg: Config) -> int:
    clips = _open_store(args, cfg).list_clips()
    if args.json:
        print(json.dumps({"clips": [clip_doc(c) for c in clips]}, indent=2, default=str))
        return 0
    if not clips:
        print("no clips")
    for c in clips:
        flag = " (truncated)" if c.truncated else ""
        print(f"{c.id}  {c.started_at}  {c.duration_s:6.1f} s  {c.bytes:>10} B{flag}")
    return 0


def clips_export(args: argparse.Namespace, cfg: Config) -> int:
    store = _open_store(args, cfg)
    rec = store.get_clip(args.id)
    if rec is None:
        raise StoreError(f"no clip {args.id!r} in {cfg.data_dir(args.data_dir)}: "
                         "see `doorward clips list`")
    src = rec.snapshot_path if args.snapshot else rec.path
    if src is None:
        raise StoreError(f"clip {args.id} has no snapshot")
    try:
        identities = load_identities(args.identity)
    except (OSError, AgeError) as exc:
        raise DoorwardError(f"identity file {args.identity} cannot be used: {exc}") from exc
    out = Path(args.output)
    try:
        decrypt_file(src, out, identities, allow_truncated=rec.truncated)
    except AgeError as exc:
        raise DoorwardError(f"clip {args.id} cannot be decrypted with {args.identity}: {exc}") \
            from exc
    except OSError as exc:
        raise DoorwardError(f"cannot export clip {args.id} to {out}: {exc}") from exc
    note = " (truncated by a crash: the playable prefix)" if rec.truncated else ""
    print(f"wrote {out}{note}")
    return 0


def status(args: argparse.Namespace, cfg: Config) -> int:
    """``doorward status [--json]``: works with the daemon stopped (databases read read-only).

    ``--json`` prints one object, schema 1 (times are epoch seconds, sizes bytes; a key whose
    value is unknown is null):

    - ``schema`` (1), ``version`` (this doorward), ``running`` (the daemon's pid is alive),
      ``state`` (starting | running | stopped | never-run), ``pid``, ``started_at``,
      ``updated_at`` (last status.json write), ``data_dir``, ``device_id``;
    - ``sealing`` (owners | dev-owner | not-recording) and ``sealing_reason``; ``frames``;
    - ``pairing``: ``paired``, ``owners``, ``viewers``, ``window_open``;
    - ``consent``: for each of events, snapshots, clips: ``in_force``, ``until`` (null: until
      revoked, or not in force);
    - ``camera``: ``source``, ``frames``, ``dropped_frames``, ``stalls`` and ``recoveries``
      (capture stalls and reopens, Pi camera), ``last_frame_at``, ``last_frame_age_s``,
      ``recording``;
    - ``events``: ``today`` (local day, from the clip index), ``this_run``;
    - ``queues``: ``messages``, ``uploads`` (open outbox items; null without an outbox);
    - ``storage``: ``used_bytes``, ``clips``, ``max_bytes``, ``free_bytes``;
    - ``broker``, ``bucket``: ``configured``, ``state`` (broker: connected | disconnected |
      failed; bucket: ok | failed; both: unknown until seen), ``at``, ``error`` - as last seen
      by the daemon (a stopped daemon's broker reads disconnected);
    - ``clock``: ``now``, ``warning`` (null while plausible: not before this version's release
      date nor before the newest ledger entry), ``not_before`` and ``not_before_what``;
    - ``problems``: what could not be read, and what stops clips being kept (a full disk, free
      space below ``[store] min_free_bytes``), each naming the fix.
    """
    data_dir = cfg.data_dir(args.data_dir)
    doc = status_document(data_dir, max_bytes=cfg.store.max_bytes,
                          min_free_bytes=cfg.store.min_free_bytes,
                          broker_configured=bool(cfg.mqtt.url),
                          bucket_configured=bool(cfg.s3.bucket))
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
        return 0
    print("\n".join(status_lines(doc, time.time())))
    return 0


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    s = max(0.0, now - float(then))
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} days ago"


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"


def _link_line(link: dict[str, Any], what: str, now: float) -> str:
    if not link["configured"]:
        return f"not configured (no {what})"
    if link["state"] == "unknown":
        return "not seen yet"
    text = f"{link['state']} {_ago(now, link['at'])}"
    return text + (f": {link['error']}" if link.get("error") else "")


def status_lines(doc: dict[str, Any], now: float) -> list[str]:
    """The human form of :func:`agent.runtime.status_file.status_document`: one aligned line per
    topic."""
    state = "running" if doc["running"] else "not running"
    head = f"doorward {doc['version']}: {state}"
    if doc["pid"] and doc["running"]:
        head += f" (pid {doc['pid']})"
    if doc["updated_at"] is not None:
        head += f", status updated {_ago(now, doc['updated_at'])}"
    elif doc["state"] == "never-run":
        head += ", no daemon has run with this data directory"
    p = doc["pairing"]
    pairing = (f"paired: {p['owners']} owner(s), {p['viewers']} viewer(s)" if p["paired"] else
               "not paired (hold SETUP 3 s, then `doorward owner pair`)")
    if p["window_open"]:
        pairing += "; pairing window open"
    consent = "; ".join(
        f"{scope} " + ("until revoked" if c["until"] is None else f"until {utc_minute(c['until'])}")
        for scope, c in doc["consent"].items() if c["in_force"]) or "none (nothing leaves)"
    cam = doc["camera"]
    camera = f"{cam['source'] or '?'}"
    if cam["last_frame_at"] is not None:
        camera += (f", last frame {_ago(now, cam['last_frame_at'])}, {cam['frames']} frames, "
                   f"{cam['dropped_frames']} dropped")
    if cam["stalls"]:
        camera += f", {cam['stalls']} stall(s), {cam['recoveries']} recovered"
    if cam["recording"]:
        camera += ", recording"
    ev = doc["events"]
    events = f"{'?' if ev['today'] is None else ev['today']} today, {ev['this_run']} this run"
    q = doc["queues"]
    queues = "no outbox" if q is None else f"{q['messages']} message(s), {q['uploads']} upload(s)"
    s = doc["storage"]
    storage = (f"{_mb(s['used_bytes'])} used of {_mb(s['max_bytes'])} ({s['clips']} clip(s)), "
               f"{_mb(s['free_bytes'])} free on disk")
    rows = [("device", f"{doc['device_id'] or '?'} (data: {doc['data_dir']})"),
            ("pairing", pairing), ("consent", consent), ("camera", camera),
            ("sealing", doc["sealing_reason"] or doc["sealing"] or "?"),
            ("events", events), ("outbox", queues), ("storage", storage),
            ("broker", _link_line(doc["broker"], "[mqtt] url", now)),
            ("bucket", _link_line(doc["bucket"], "[s3] bucket", now))]
    if doc["clock"]["warning"]:
        rows.append(("clock", f"{doc['clock']['warning']}: set it (`doorward doctor` checks)"))
    rows += [("problem", p) for p in doc["problems"]]
    width = max(len(k) for k, _ in rows)
    return [head, *(f"  {k:<{width}}  {v}" for k, v in rows)]
