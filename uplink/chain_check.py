"""The receiver's check of a device's message chain: every message once, in order, each linked to
the one before (:class:`ChainChecker`, :class:`ChainIssue`).

Wiring (the owner side, a subscriber to ``doorward/<id>/+``)::

    checker = ChainChecker()
    v = verify_message(payload, device_public_key, identities=owner_identities)
    for issue in checker.feed(v, retained=msg.retain):
        print(issue)   # a gap, a duplicate, a message out of order or a broken link, once each

It reads only what :func:`uplink.messages.verify_message` checked (``iss``, ``seq``, ``prev`` and
the message's hash); it signs and opens nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from uplink.manifest import ZERO_HASH
from uplink.messages import VerifiedMessage

__all__ = ["ISSUE_KINDS", "ChainChecker", "ChainIssue"]

ISSUE_KINDS = ("gap", "duplicate", "out-of-order", "bad-prev", "retained")


@dataclass(frozen=True)
class ChainIssue:
    """One problem in a device's message chain, reported once when it becomes visible.

    ``gap``: seqs ``first..last`` never arrived before ``seq`` (they may still come late, which
    is then ``out-of-order``); ``duplicate``: ``seq`` arrived again; ``out-of-order``: ``seq``
    arrived after a higher one; ``bad-prev``: ``seq``'s ``prev`` is not the hash of ``seq - 1``;
    ``retained``: ``seq`` came as a broker's retained message. The device retains only its
    status, which is outside the chain, so a chained message there was stored by someone else:
    a captured message replayed to every subscriber at its (re)subscription.
    """

    kind: str
    device_id: str
    seq: int
    first: int | None = None
    last: int | None = None
    detail: str = ""


class _Chain:
    """One device's receive state: the highest seq, recent hashes and open gaps."""

    def __init__(self) -> None:
        self.highest: int | None = None
        self.hashes: dict[int, str] = {}
        self.prevs: dict[int, str] = {}
        self.gaps: list[tuple[int, int]] = []  # inclusive, ascending, disjoint

    def fill(self, seq: int) -> bool:
        """Remove ``seq`` from the open gaps; True if it was missing."""
        for i, (lo, hi) in enumerate(self.gaps):
            if lo <= seq <= hi:
                parts = [(lo, seq - 1)] if lo < seq else []
                parts += [(seq + 1, hi)] if seq < hi else []
                self.gaps[i : i + 1] = parts
                return True
        return False


class ChainChecker:
    """Receiver-side check of device message chains (one per device id, kept internally).

    Feed every verified message as it arrives; each returned :class:`ChainIssue` is reported
    exactly once. Pass ``retained`` as the broker flagged the message (``msg.retain``): the
    retained ``status`` is outside the chain, and any chained message flagged so is reported
    ``retained`` (a replay: the device retains none) and neither starts the chain nor enters
    it. The first live message starts the chain: seqs before it were
    published before we listened, except that a first message with seq 1 must have the zero
    ``prev``. Hashes are kept for the last ``window`` seqs; a message older than that is
    reported ``out-of-order`` (it can no longer be checked for duplication).

    Messages on every topic of a device share one chain, so subscribe to all of the device's
    message topics (``doorward/<id>/+``) or the other topics' messages look like gaps. The
    status is not in the chain (it has no seq): feeding it reports nothing.
    """

    def __init__(self, *, window: int = 65536) -> None:
        self._window = window
        self._chains: dict[str, _Chain] = {}

    def missing(self, device_id: str) -> tuple[tuple[int, int], ...]:
        """The gaps still open for ``device_id`` (inclusive seq ranges)."""
        chain = self._chains.get(device_id)
        return tuple(chain.gaps) if chain else ()

    def highest(self, device_id: str) -> int | None:
        chain = self._chains.get(device_id)
        return chain.highest if chain else None

    def feed(self, message: VerifiedMessage, *, retained: bool = False) -> list[ChainIssue]:
        if message.seq is None:  # the unchained status
            return []
        seq, dev = message.seq, message.iss
        if retained:
            return [ChainIssue("retained", dev, seq, detail="a chained message retained by the "
                               "broker: the device retains none, so a replay")]
        chain = self._chains.setdefault(dev, _Chain())
        if seq in chain.hashes:
            same = chain.hashes[seq] == message.hash_hex
            detail = "same message again" if same else "DIFFERENT content under the same seq"
            return [ChainIssue("duplicate", dev, seq, detail=detail)]
        issues = self._order(chain, message)
        issues += self._links(chain, message)
        chain.hashes[seq], chain.prevs[seq] = message.hash_hex, str(message.prev)
        if chain.highest is not None and len(chain.hashes) > 2 * self._window:  # amortised
            floor = chain.highest - self._window
            for old in [s for s in chain.hashes if s <= floor]:
                del chain.hashes[old], chain.prevs[old]
        return issues

    def _order(self, chain: _Chain, m: VerifiedMessage) -> list[ChainIssue]:
        seq, dev = m.seq, m.iss
        assert seq is not None  # feed() keeps the unchained status out
        if chain.highest is None:
            chain.highest = seq
            return []
        if seq > chain.highest:
            issues = []
            if seq > chain.highest + 1:
                lo, hi = chain.highest + 1, seq - 1
                chain.gaps.append((lo, hi))
                issues.append(ChainIssue("gap", dev, seq, lo, hi, f"{hi - lo + 1} missing"))
            chain.highest = seq
            return issues
        if chain.fill(seq):
            return [ChainIssue("out-of-order", dev, seq, detail="arrived late, fills a gap")]
        if seq <= chain.highest - self._window:
            detail = "older than the checked window: cannot tell if it is a duplicate"
        else:
            detail = "from before the first message seen"
        return [ChainIssue("out-of-order", dev, seq, detail=detail)]

    def _links(self, chain: _Chain, m: VerifiedMessage) -> list[ChainIssue]:
        assert m.seq is not None  # feed() keeps the unchained status out
        issues = []
        before = ZERO_HASH if m.seq == 1 else chain.hashes.get(m.seq - 1)
        if before is not None and m.prev != before:
            issues.append(ChainIssue("bad-prev", m.iss, m.seq,
                                     detail=f"prev is not the hash of seq {m.seq - 1}"))
        after = chain.prevs.get(m.seq + 1)
        if after is not None and after != m.hash_hex:  # the successor arrived first
            issues.append(ChainIssue("bad-prev", m.iss, m.seq + 1,
                                     detail=f"prev is not the hash of seq {m.seq}"))
        return issues
