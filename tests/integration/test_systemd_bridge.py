"""systemd/doorward-bridge.service checked by systemd's own tools: verify says nothing, the
security exposure is at most 2.5 (as the device's unit), and the passwords arrive as credentials
named on the command line by file, never as values."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.test_systemd import analyze

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "doorward-bridge.service"
EXEC = "/opt/doorward/venv/bin/doorward"
MAX_EXPOSURE = 2.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing: install the Debian package systemd (252) to check the unit")


def unit_copy(dest: Path) -> Path:
    """The unit with its executable and files where verify can find them."""
    exe = dest / "doorward"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    text = UNIT.read_text().replace(EXEC, str(exe)).replace("/etc/doorward/", f"{dest}/")
    for name in ("bridge.env", "ha-password", "mqtt-password"):
        (dest / name).write_text("X=1\n")
    path = dest / "doorward-bridge.service"
    path.write_text(text)
    return path


@needs_analyze
def test_the_bridge_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    res = analyze("verify", str(unit_copy(tmp_path)), cwd=tmp_path)
    assert res.stderr == "" and res.stdout == "" and res.returncode == 0, res.stderr


@needs_analyze
def test_the_bridge_unit_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    res = analyze("security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}",
                  str(unit_copy(tmp_path)), cwd=tmp_path)
    found = re.search(r"Overall exposure level for doorward-bridge\.service: (\d+\.\d)",
                      res.stdout)
    assert found, res.stdout + res.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, res.stdout


def test_passwords_come_as_credentials_by_file_name() -> None:
    lines = [x for x in UNIT.read_text().splitlines() if x and not x.startswith("#")]
    creds = {x.split("=", 1)[1].split(":", 1)[0] for x in lines
             if x.startswith("LoadCredential=")}
    assert creds == {"ha-password", "mqtt-password"}
    start = next(x for x in lines if x.startswith("ExecStart="))
    assert "--ha-password-file ${CREDENTIALS_DIRECTORY}/ha-password" in start
    assert "--password-file ${CREDENTIALS_DIRECTORY}/mqtt-password" in start
    assert "password=" not in UNIT.read_text().lower()
