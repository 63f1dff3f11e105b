"""The jobs the uploads lane runs, as typed values: what crosses ``outbox.sqlite`` as JSON.

The loop thread builds a job and queues it (``Outbox.enqueue_upload(job.to_json(), scope,
now=...)``); the uploads lane reads it back with :func:`parse_job` (``item.job()``) and
dispatches on its type. Five kinds:

* :class:`UploadJob`: a sealed clip (and its snapshot) to the bucket, then its manifest;
* :class:`SegmentJob`: one segment of a clip still being recorded
  (agent/recording/live_segments.py);
* :class:`ForgetJob`: the bucket side of an owner's erasure;
* :class:`CheckpointJob`: the ledger's newest signed head (agent/delivery/checkpoints.py);
* :class:`WithdrawLiveJob`: delete every segment sent of clips not yet uploaded whole (a revoke).

Encoding (golden files in tests/golden/job_*.json): a JSON object with ``"v"`` (the schema,
:data:`JOB_SCHEMA`), ``"job"`` (the kind) and the job's fields, under the names the previous
version used, with its markers kept (``"live": true``, ``"forget": [...]``,
``"withdraw_live": true``): a row written before the jobs were typed (no ``v``, no ``job``) is
read by those markers, so a device upgraded with uploads queued delivers them, and a device
rolled back reads rows written by this one.

:func:`parse_job` raises :class:`JobError` naming the field that is missing or wrong; the uploads
lane drops such an item (recorded, never retried).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from agent.errors import DoorwardError

JOB_SCHEMA = 1
CHECKPOINT = "ledger-checkpoint"  # the value of "job" the checkpoint job always had


class JobError(DoorwardError):
    """An upload job in outbox.sqlite cannot be read; the message names the field."""


def _get(d: Mapping[str, Any], kind: str, name: str, types: type | tuple[type, ...],
         what: str, *, optional: bool = False) -> Any:
    if name not in d or (optional and d[name] is None):
        if optional:
            return None
        raise JobError(f"{kind} job: field {name!r} is missing (want {what}); the outbox row is "
                       "damaged or from a newer doorward")
    value = d[name]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        value = object()  # a bool is an int to Python, never to a job
    if not isinstance(value, types):
        raise JobError(f"{kind} job: field {name!r} must be {what}, got {d[name]!r}")
    return value


def _strs(d: Mapping[str, Any], kind: str, name: str) -> tuple[str, ...]:
    value = _get(d, kind, name, list, "a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise JobError(f"{kind} job: field {name!r} must be a list of strings, got {value!r}")
    return tuple(value)


def _int(d: Mapping[str, Any], kind: str, name: str) -> int:
    value = _get(d, kind, name, int, "a whole number >= 0")
    if value < 0:
        raise JobError(f"{kind} job: field {name!r} must be a whole number >= 0, got {value!r}")
    return int(value)


def _head(kind: str) -> dict[str, Any]:
    return {"v": JOB_SCHEMA, "job": kind}


@dataclass(frozen=True)
class UploadJob:
    """A sealed clip: ``clip`` (and ``snapshot``, if any) go up, then the signed manifest.
    ``started_at``/``ended_at`` are the store's ISO times; ``recipients`` the age recipients the
    clip is sealed to (checked against the members again before sending)."""

    KIND: ClassVar[str] = "clip"
    clip_id: str
    clip: Path
    snapshot: Path | None
    started_at: str
    ended_at: str
    duration_s: float
    recipients: tuple[str, ...]
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {**_head(self.KIND), "clip_id": self.clip_id, "clip": str(self.clip),
               "snapshot": None if self.snapshot is None else str(self.snapshot),
               "started_at": self.started_at, "ended_at": self.ended_at,
               "duration_s": self.duration_s, "recipients": list(self.recipients)}
        if self.truncated:  # absent when false, as the previous version wrote it
            out["truncated"] = True
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> UploadJob:
        k = cls.KIND
        duration = _get(d, k, "duration_s", (int, float), "a number of seconds")
        if not math.isfinite(duration) or duration < 0:
            raise JobError(f"{k} job: field 'duration_s' must be a number of seconds >= 0, "
                           f"got {duration!r}")
        snapshot = _get(d, k, "snapshot", str, "a file path or null", optional=True)
        truncated = _get(d, k, "truncated", bool, "true or false", optional=True)
        return cls(clip_id=_get(d, k, "clip_id", str, "a clip id"),
                   clip=Path(_get(d, k, "clip", str, "a file path")),
                   snapshot=None if snapshot is None else Path(snapshot),
                   started_at=_get(d, k, "started_at", str, "an ISO time"),
                   ended_at=_get(d, k, "ended_at", str, "an ISO time"),
                   duration_s=float(duration),
                   recipients=_strs(d, k, "recipients"), truncated=bool(truncated))


@dataclass(frozen=True)
class SegmentJob:
    """Segment ``segment`` (1, 2, ...) of the clip being recorded: ``length`` bytes at
    ``offset`` of the partial file ``path``."""

    KIND: ClassVar[str] = "segment"
    clip_id: str
    segment: int
    offset: int
    length: int
    path: Path
    recipients: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**_head(self.KIND), "live": True, "clip_id": self.clip_id,
                "segment": self.segment, "offset": self.offset, "length": self.length,
                "path": str(self.path), "recipients": list(self.recipients)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SegmentJob:
        k = cls.KIND
        return cls(clip_id=_get(d, k, "clip_id", str, "a clip id"), segment=_int(d, k, "segment"),
                   offset=_int(d, k, "offset"), length=_int(d, k, "length"),
                   path=Path(_get(d, k, "path", str, "a file path")),
                   recipients=_strs(d, k, "recipients"))


@dataclass(frozen=True)
class ForgetJob:
    """The bucket side of ``clips.forget``: these clips, everything (``everything``), or what
    was uploaded before the day ``before`` (YYYY-MM-DD); ``request`` is the command's jti."""

    KIND: ClassVar[str] = "forget"
    clips: tuple[str, ...]
    everything: bool
    before: str | None
    request: str

    def to_json(self) -> dict[str, Any]:
        return {**_head(self.KIND), "forget": list(self.clips), "all": self.everything,
                "before": self.before, "request": self.request}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ForgetJob:
        k = cls.KIND
        return cls(clips=_strs(d, k, "forget"), everything=_get(d, k, "all", bool, "true or false"),
                   before=_get(d, k, "before", str, "a date or null", optional=True),
                   request=_get(d, k, "request", str, "the command's jti"))


@dataclass(frozen=True)
class CheckpointJob:
    """Publish the ledger's newest signed head (``count``: its size when the job was queued)."""

    KIND: ClassVar[str] = CHECKPOINT
    count: int

    def to_json(self) -> dict[str, Any]:
        return {**_head(self.KIND), "count": self.count}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CheckpointJob:
        return cls(count=_int(d, cls.KIND, "count"))


@dataclass(frozen=True)
class WithdrawLiveJob:
    """Delete what was sent of every clip still being recorded (``clips`` revoked)."""

    KIND: ClassVar[str] = "withdraw-live"
    reason: str = "consent revoked"

    def to_json(self) -> dict[str, Any]:
        return {**_head(self.KIND), "withdraw_live": True, "reason": self.reason}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WithdrawLiveJob:
        reason = _get(d, cls.KIND, "reason", str, "a reason", optional=True)
        return cls("consent revoked" if reason is None else reason)


Job = UploadJob | SegmentJob | ForgetJob | CheckpointJob | WithdrawLiveJob
_KINDS: dict[str, type[Job]] = {
    t.KIND: t for t in (UploadJob, SegmentJob, ForgetJob, CheckpointJob, WithdrawLiveJob)}


def _legacy_kind(d: Mapping[str, Any]) -> str:
    """The kind of a row written before jobs had a ``job`` field (its dispatch, in its order)."""
    if "forget" in d:
        return ForgetJob.KIND
    if d.get("live"):
        return SegmentJob.KIND
    if d.get("withdraw_live"):
        return WithdrawLiveJob.KIND
    return UploadJob.KIND


def parse_job(spec: Mapping[str, Any] | None) -> Job:
    """The job an outbox upload row holds (its ``spec``); JobError naming the field if not one."""
    if not isinstance(spec, Mapping):
        raise JobError(f"upload job: the outbox row holds no JSON object ({spec!r})")
    version = spec.get("v", JOB_SCHEMA)
    if version != JOB_SCHEMA or isinstance(version, bool):
        raise JobError(f"upload job: field 'v' is schema {version!r}, this doorward reads "
                       f"{JOB_SCHEMA}: upgrade doorward (do not downgrade over newer data)")
    kind = spec.get("job", None)
    if kind is None:
        kind = _legacy_kind(spec)
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise JobError(f"upload job: field 'job' must be one of {sorted(_KINDS)}, got {kind!r}")
    return cls.from_json(spec)
