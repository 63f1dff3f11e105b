"""10,000 malformed inputs on every way in: each gets the package's own error (or a refusal) and
changes nothing. ``DOORWARD_FUZZ_N`` sets the count (default 10,000; video files: a fiftieth).

The inputs: owner commands on ``doorward/<id>/cmd`` (mutated signed tokens and random bytes),
pairing messages, the control socket's request line, config files, and video files for the
``file:`` source. A crash is any other exception.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.camera.sources import make_source, parse_source
from agent.config import parse_config
from agent.errors import DoorwardError
from agent.runtime.control_socket import parse_message
from tests.helpers import doorward
from tests.unit.test_commands_device import Rig, grant_args
from uplink import pairing
from uplink.errors import UplinkError

N = int(os.environ.get("DOORWARD_FUZZ_N", "10000"))
SEED = 20261203


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of: flip bits, cut, duplicate a slice, insert random bytes, swap two slices."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            b = b[:i]
        elif op == 2:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[min(i, j):max(i, j)][:64]
        elif op == 3:
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        elif b:
            j = rng.randrange(len(b))
            b[i:i + 8], b[j:j + 8] = b[j:j + 8], b[i:i + 8]
    return bytes(b)


def run_fuzz(seeds: list[bytes], n: int, feed: Callable[[bytes], None],
             expected: tuple[type[BaseException], ...]) -> Counter[str]:
    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    for i in range(n):
        data = rng.randbytes(rng.randint(0, 200)) if i % 10 == 0 else mutate(rng.choice(seeds),
                                                                             rng)
        try:
            feed(data)
            outcomes["accepted"] += 1
        except expected:
            outcomes["refused"] += 1
        except Exception as exc:  # a crash: the fuzz found a bug
            raise AssertionError(f"input {data[:120]!r} raised {type(exc).__name__}: {exc}") \
                from exc
    return outcomes


def test_owner_commands_malformed_change_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "device.sqlite")
    try:
        settings = "SELECT * FROM settings WHERE key != 'ledger_head'"  # refusals are recorded
        before = (rig.consent.owners(), rig.db.query("SELECT * FROM grants"),
                  rig.db.query(settings))
        seeds = [rig.token("consent.grant", grant_args()).encode(),
                 rig.token("consent.revoke", {"scopes": ["clips"]}).encode(),
                 rig.token("clips.forget", {"all": True}).encode()]
        accepted = Counter[bool]()

        def feed(data: bytes) -> None:
            resp = rig.proc.handle(data, rig.topic, 1_800_000_000.0)
            accepted[resp.ok] += 1

        run_fuzz(seeds, N, feed, ())
        after = (rig.consent.owners(), rig.db.query("SELECT * FROM grants"),
                 rig.db.query(settings))
        assert accepted[True] == 0 and accepted[False] == N
        assert [tuple(r) for r in before[1]] == [tuple(r) for r in after[1]]
        assert before[0] == after[0]
        assert [tuple(r) for r in before[2]] == [tuple(r) for r in after[2]]
    finally:
        rig.db.close()


def test_pairing_messages_malformed_are_refused() -> None:
    seeds = [p.read_bytes() for p in (Path(__file__).parents[1] / "golden").glob("pairing_*")]
    outcomes = run_fuzz(seeds, N, pairing.decode, (UplinkError,))
    assert outcomes["refused"] > N * 0.9


def test_control_socket_lines_malformed_are_refused() -> None:
    seeds = [b'{"cmd": "press", "button": "ring"}', b'{"cmd": "press", "button": "setup", '
             b'"hold_s": 3.5}']
    outcomes = run_fuzz(seeds, N, parse_message, (ValueError,))
    assert outcomes["refused"] > N * 0.9


def test_config_files_malformed_get_a_config_error(tmp_path: Path) -> None:
    seeds = [(Path(__file__).parents[2] / "config" / "doorward.toml").read_bytes()]

    def feed(data: bytes) -> None:
        parse_config(data.decode("utf-8", "replace"), path="fuzz.toml")

    run_fuzz(seeds, N, feed, (DoorwardError,))
    assert list(tmp_path.iterdir()) == []  # nothing was created


@pytest.mark.slow
def test_video_files_malformed_end_the_source_with_its_error(tmp_path: Path) -> None:
    clip = tmp_path / "visit.mp4"
    doorward("scenes", "render", "cat", "-o", str(clip))
    data = clip.read_bytes()[:400_000]  # the header and a few seconds: enough to mutate
    target = tmp_path / "fuzz.mp4"

    def feed(blob: bytes) -> None:
        target.write_bytes(blob)
        with make_source(parse_source(f"file:{target}"), width=640, height=360, fps=15,
                         luma_width=320, realtime=False) as cam:
            for n, _ in enumerate(cam.frames()):
                if n > 30:
                    break

    run_fuzz([data], max(20, N // 50), feed, (DoorwardError,))
