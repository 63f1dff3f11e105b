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
