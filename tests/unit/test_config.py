from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import Config, load_config, parse_config
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_annotated_default_file_equals_builtin_defaults() -> None:
    cfg = load_config(ROOT / "config" / "doorward.toml")
    assert cfg == Config(path=str(ROOT / "config" / "doorward.toml"))


def test_sim_config_loads() -> None:
    cfg = load_config(ROOT / "config" / "sim.toml")
    assert cfg.camera.source.startswith("sim:")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[recording]\npre_roll_s = -1\n", "recording.pre_roll_s = -1"),
        ("[recording]\npre_roll_s = 'x'\n", "must be a number"),
        ("[recording]\ngop_s = 2\n", "at most 1"),
        ("[camera]\nwidth = 641\n", "must be even"),
        ("[camera]\nfps = true\n", "camera.fps = True"),
        ("[events]\npost_roll = 5\n", "events.post_roll is unknown"),
        ("[events]\ngap_s = 2\n", "events.gap_s = 2"),
        ("[events]\nfast_motion_s = -0.1\n", "0 turns the short path off"),
        ("[cameras]\n", "section [cameras] is unknown"),
        ("[log]\nlevel = 'loud'\n", "one of debug, info, warning, error"),
        ("[motion]\nzones = [[[0, 0], [1, 0]]]\n", "motion.zones[0]"),
        ("[motion]\nprivacy_masks = [[[0, 0], [1, 0], [1.5, 1]]]\n", "point [1.5, 1]"),
        ("[recording]\nbitrate_kbps = 50\n", "recording.bitrate_kbps = 50: must be an integer"),
        ("[recording]\nbitrate_kbps = 2.5\n", "kbit/s, the clip's bit-rate cap"),
        ("[store]\nmax_bytes = 5\n", "store.max_bytes = 5"),
        ("[store]\nmin_free_bytes = -1\n", "store.min_free_bytes = -1: must be an integer from 0"),
        ("[store]\nmin_free_bytes = 1.5\n", "0 turns the floor off"),
        ("[store]\nmin_free_mib = 64\n", "store.min_free_mib is unknown"),
        ("camera = 3\n", "must be a table"),
        ("[camera\n", "not valid TOML"),
    ],
)
def test_bad_values_name_key_value_and_allowed(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, path="x.toml")
    assert needle in str(err.value)


def test_polygons_are_parsed() -> None:
    cfg = parse_config("[motion]\nzones = [[[0, 0.5], [1, 0.5], [1, 1]]]\n")
    assert cfg.motion.zones == (((0.0, 0.5), (1.0, 0.5), (1.0, 1.0)),)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    cfg = Config()
    assert cfg.data_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    assert cfg.data_dir() == tmp_path / "state"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert cfg.data_dir() == tmp_path / "xdg" / "doorward"


def test_free_space_floor_is_configurable() -> None:
    assert Config().store.min_free_bytes == 64 * 2**20
    assert parse_config("[store]\nmin_free_bytes = 0\n").store.min_free_bytes == 0
