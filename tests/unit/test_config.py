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


# ---- issue 19: every key checked at load, all problems at once, each naming its file ----------


def test_every_field_has_a_rule_and_every_rule_a_field() -> None:
    import dataclasses

    from agent.config import _RULES

    for name, (cls, rules) in _RULES.items():
        fields = {f.name for f in dataclasses.fields(cls)} - {"tuning"}
        assert fields == set(rules), name
    assert set(_RULES) == {f.name for f in dataclasses.fields(Config)} - {"path"}


def test_all_problems_are_reported_at_once_each_naming_the_file() -> None:
    text = ("[camera]\nwidth = 641\nrotation = 90\n[motion]\nmin_aera = 0.002\n"
            "[recording]\ncrf = 99\n[gpio]\nled_pin = 17\n[extra]\n")
    with pytest.raises(ConfigError) as err:
        parse_config(text, path="/etc/doorward/doorward.toml")
    problems = err.value.problems
    assert len(problems) == 6, problems
    assert all(p.startswith("/etc/doorward/doorward.toml: ") for p in problems)
    message = str(err.value)
    for needle in ("6 problems in /etc/doorward/doorward.toml", "camera.width = 641",
                   "camera.rotation = 90: must be 0 or 180", "motion.min_aera is unknown",
                   "recording.crf = 99", "must be different pins", "section [extra] is unknown"):
        assert needle in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[motion]\nmin_area = 2.0\n", "min_area=2.0 must be within 0..1"),
        ("[motion]\nwork_width = 1.5\n", "motion.work_width = 1.5: must be an integer"),
        ("[motion]\npersist = 1\n", "motion.persist = 1: must be true or false"),
        ("[motion]\nblur_ksize = 4\n", "blur_ksize=4 must be an odd number"),
        ("[camera]\nrotation = 270\n", "can only flip"),
        ("[camera]\nexposure_mode = 'sport'\n", "one of normal, short, long"),
        ("[camera]\nir_on_below_lux = 30\n", "on_below must be lower than off_above"),
        ("[camera]\nsource = 'usb'\n", "camera.source = 'usb': is not understood"),
        ("[gpio]\nir_led_pin = 22\n", "must be different pins"),
        ("[mqtt]\nallow_plain = 'yes'\n", "mqtt.allow_plain = 'yes': must be true or false"),
        ("[s3]\nendpoint_url = 'ftp://x'\n", "http(s)://host[:port]"),
    ],
)
def test_motion_camera_and_other_keys_are_checked_at_load(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, path="x.toml")
    assert needle in str(err.value)


def test_motion_tuning_and_camera_settings_load() -> None:
    cfg = parse_config("[motion]\npersist = false\nmin_area = 0.002\nwork_width = 192\n"
                       "[camera]\nrotation = 180\nhflip = true\ntuning_file = 'imx219_noir.json'\n"
                       "exposure_mode = 'short'\n[gpio]\nir_led_pin = 23\n")
    assert cfg.motion.tuning == {"persist": False, "min_area": 0.002, "work_width": 192}
    assert (cfg.camera.rotation, cfg.camera.hflip, cfg.camera.vflip) == (180, True, False)
    assert cfg.camera.tuning_file == "imx219_noir.json" and cfg.camera.exposure_mode == "short"
    assert cfg.gpio.ir_led_pin == 23


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agent.config import config_path

    system = tmp_path / "doorward.toml"
    monkeypatch.delenv("DOORWARD_CONFIG", raising=False)
    assert config_path(None, system=system) is None  # absent: the defaults
    system.write_text("")
    assert config_path(None, system=system) == str(system)
    monkeypatch.setenv("DOORWARD_CONFIG", "/elsewhere.toml")
    assert config_path(None, system=system) == "/elsewhere.toml"
    assert config_path("flag.toml", system=system) == "flag.toml"
