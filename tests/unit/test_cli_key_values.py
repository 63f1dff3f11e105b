"""A base64url key may begin with ``-`` (one key in 64): ``--public-key -Y63...`` must still
parse, as the owner copies it from ``doorward owner show``. argparse alone took such a value for
an option and answered "expected one argument" (a flaky failure of the clock-skew test with a
random key, 2026-12-06)."""

from __future__ import annotations

import pytest

from agent.cli import parse_args

KEY = "-Y63swQaGDzQ2DpI1--4wmb-sXTFenXryU6aPLIhjBM"  # the key that failed
REC = "age1ytqsk4sr9lt0uqmjdz6580haffwwflu80xgs2szgn7007v497ydq6k6pnp"


@pytest.mark.parametrize("key", [KEY, "-" + KEY[1:], "--" + KEY[2:], KEY[1:]])
def test_add_member_takes_a_public_key_beginning_with_a_dash(key: str) -> None:
    args = parse_args(["owner", "add-member", "--public-key", key, "--recipient", REC,
                       "--role", "viewer"])
    assert args.public_key == key and args.recipient == REC and args.role == "viewer"


def test_the_bridge_takes_a_device_key_beginning_with_a_dash() -> None:
    args = parse_args(["owner", "bridge", "--ha-broker", "mqtt://ha:1883", "--device", "dev-1",
                       "--device-key", KEY])
    assert args.device_key == KEY


def test_the_equals_form_and_other_values_are_left_as_they_are() -> None:
    args = parse_args(["owner", "add-member", f"--public-key={KEY}", "--recipient", REC])
    assert args.public_key == KEY
    # Only a key flag's value is glued on: another option's dash-value still fails as before.
    with pytest.raises(SystemExit):
        parse_args(["owner", "add-member", "--public-key", KEY, "--recipient", "-x"])
