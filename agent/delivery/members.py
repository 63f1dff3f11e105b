"""Sealed to members only: the upload-side check that a clip may leave the device at all.

Who a clip is sealed to is decided when it starts (agent/recording/sealing.py). What may leave is
decided here: :func:`sealed_to_members` is asked when a clip (or a segment of one) is queued
(:class:`agent.delivery.queueing.Delivery`, start-up re-delivery) and again when it is about to be
sent (:func:`members_only` wraps the uploads lane's port): a clip sealed to any key that is not a
paired member's (the development owner above all) never reaches the bucket.

Wiring (agent/delivery/lanes.py)::

    Ports(upload=members_only(uploader.upload, consent.recipients), ...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent.delivery.outbox import Item
from agent.delivery.ports import PermanentSendError, Progress, UploadPort


def sealed_to_members(recipients: Iterable[str], members: Iterable[str]) -> bool:
    """Whether a clip sealed to ``recipients`` may leave the device: sealed to at least one key,
    and every key a paired member's (``members``: ConsentStore.recipients()). A clip sealed to
    the development owner, whose key lies on the device, fails; so does one sealed to anyone
    no longer paired."""
    wanted = set(recipients)
    return bool(wanted) and wanted <= set(members)


def members_only(upload: UploadPort, members: Callable[[], list[str]]) -> UploadPort:
    """The uploads lane's port, refusing (permanently: the item is dropped and recorded) any clip
    or segment not sealed only to paired members, at the moment of sending. Other jobs (erasure,
    checkpoints, withdrawal) pass through."""

    def guarded(item: Item, progress: Progress) -> object:
        # Read from the row as it is, not the parsed job: a row naming a clip is refused unless
        # sealed to members, even one too damaged to parse (the uploader drops those anyway).
        spec = item.spec or {}
        if "clip_id" in spec and not sealed_to_members(spec.get("recipients") or (), members()):
            raise PermanentSendError(
                f"clip {spec['clip_id']} is sealed to a key that is not a paired member's (the "
                "development owner?): it never leaves the device")
        return upload(item, progress)

    return guarded
