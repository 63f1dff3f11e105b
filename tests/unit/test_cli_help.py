"""The command line guides: every flag and argument of every subcommand has help text, and
``doorward --version`` answers."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from agent.cli import build_parser, main


def walk(parser: argparse.ArgumentParser, path: str = "doorward"
         ) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_flag_and_argument_has_help() -> None:
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}"
               for path, a in walk(build_parser())
               if not a.help or (a.help == argparse.SUPPRESS and a.dest != "help")]
    assert missing == []


def test_the_walk_sees_the_json_flags() -> None:  # the test above would pass on an empty walk
    seen = [path for path, a in walk(build_parser()) if "--json" in a.option_strings]
    assert "doorward events list" in seen and "doorward status" in seen and len(seen) > 8


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("doorward ") and any(c.isdigit() for c in out)


def test_run_parses_without_importing_the_owner_side_tools() -> None:
    # The daemon's peak RSS is the device's budget: `run` must not load the owner's and
    # requester's tools just to define their flags (a fresh interpreter: this one has them).
    import subprocess
    import sys

    code = ("import sys; from agent.cli import build_parser; "
            "a = build_parser(owner_side=False).parse_args(['run', '--source', 'sim:porch']); "
            "import agent.app; "
            "print(a.source, sorted(m for m in sys.modules "
            "if m.startswith(('agent.owner', 'agent.requester'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["sim:porch", "[]"]
    full = {a.dest for _, a in walk(build_parser())}
    assert {"owner_dir", "requester_dir"} <= full  # the full parser still has them
