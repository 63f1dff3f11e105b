"""The small ``doorward`` commands: scenes, events, clips; ``dispatch`` routes the others (status:
:mod:`agent.tools.status_report`; device, press, consent, ledger: :mod:`agent.tools.device_cli`).
Each returns an exit status."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.errors import DoorwardError, StoreError
from agent.paths import DataDir
from agent.store import ClipRecord, ClipStore
from agent.tools import status_report
from uplink import AgeError, decrypt_file, load_identities


def dispatch(args: argparse.Namespace, cfg: Config) -> int:
    if args.command == "scenes":
        return scenes_list(args) if args.scenes_command == "list" else scenes_render(args, cfg)
    if args.command == "events":
        return events_list(args, cfg)
    if args.command == "clips":
        return clips_list(args, cfg) if args.clips_command == "list" else clips_export(args, cfg)
    if args.command == "status":
        return status_report.status(args, cfg)
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
    if not DataDir(data_dir).index_db.exists():
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
    from agent.camera.sim.codec import scaled_kbps
    from agent.tools.scene_render import render_scene

    scene = get_scene(args.name, seed=args.seed)
    if scene.duration_s is None:
        raise DoorwardError(f"scene {args.name!r} runs forever and cannot be rendered to a file: "
                            "pick a finite scene from `doorward scenes list`")
    # The scene's recording bitrate (if it has one) is applied once, by the file's encoder.
    cam = SimCamera(scene, width=cfg.camera.width, height=cfg.camera.height,
                    luma_width=cfg.camera.luma_width, fps=cfg.camera.fps, seed=args.seed,
                    codec_kbps=0)
    ref = scene.sensor.codec_kbps_720p
    kbps = None if ref is None else scaled_kbps(ref, cam.width, cam.height)
    out = Path(args.output)
    truth = render_scene(cam, scene, out, kbps=kbps)
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
