"""The owner command that belongs to the uplink, registered on the CommandProcessor by the
composition root: ``clips.forget`` (erasure, ETSI EN 303 645 5.11: local clips at once, bucket
objects through the uploads lane). (``events.content``, the switch to clear event content for
Home Assistant, is gone: the owner-side bridge keeps events sealed; an older owner tool sending
it gets the usual refusal for an unknown command.)

A forget is answered twice, both sealed to the owners: at once with what was deleted on the device
(``local_deleted``; ``bucket_pending`` when the bucket part is queued), then by the uploads lane
with ``stage: "bucket"`` and what it deleted there
(:func:`agent.device.owner_commands.bucket_replies`). Nothing about it is
ever published readably. A forget narrows consent, so a clock difference never blocks it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from agent.delivery.queueing import Delivery
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.device.owner_commands import CommandProcessor
from agent.store import ClipStore


def _check_forget(args: dict[str, Any]) -> str | None:
    clip, before, everything = args.get("clip"), args.get("before"), args.get("all")
    if not isinstance(everything, bool):
        return "all must be true or false"
    chosen = [clip is not None, before is not None, everything]
    if chosen.count(True) != 1:
        return "give exactly one of clip, before, all"
    if clip is not None and not (isinstance(clip, str) and 0 < len(clip) <= 64 and
                                 clip.replace("-", "").replace("_", "").isalnum()):
        return "clip must be a clip id"
    if before is not None:
        try:
            date.fromisoformat(str(before))
        except ValueError:
            return "before must be a date, YYYY-MM-DD"
    return None


def register(processor: CommandProcessor, db: DeviceDB, ledger: Ledger, store: ClipStore,
             delivery: Delivery | None) -> None:
    def forget(by: str, args: dict[str, Any], jti: str, now: float) -> dict[str, Any]:
        clips = store.list_clips()
        if args["all"]:
            chosen = clips
        elif args["clip"] is not None:
            chosen = [c for c in clips if c.id == args["clip"]]
        else:
            cut = datetime.fromisoformat(str(args["before"])).replace(tzinfo=UTC).timestamp()
            chosen = [c for c in clips if c.started_at_s < cut]
        deleted = store.forget([c.id for c in chosen], everything=bool(args["all"]),
                               before=args["before"])  # the clips and their event history
        bucket, pending = "no bucket configured", False
        if delivery is not None and delivery.uploads_enabled:
            ids = deleted if args["clip"] is None else [args["clip"]]
            delivery.forget(ids, everything=bool(args["all"]), request=jti,
                            before=args["before"])
            bucket, pending = "queued: a second sealed reply to this command reports it", True
        ledger.append("erasure", {"by": by, "jti": jti, "local": deleted,
                                  "selector": {k: args[k] for k in ("clip", "before", "all")}},
                      now)
        return {"local_deleted": deleted, "bucket": bucket, "bucket_pending": pending}

    processor.register("clips.forget", frozenset({"clip", "before", "all"}), _check_forget, forget,
                       narrows=lambda _args: True)
