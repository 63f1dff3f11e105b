"""scripts/install-pi: --dry-run changes nothing, --prefix lays out a working install, and a
second run changes nothing.

The --prefix run is a real one: a venv made from Debian's /usr/bin/python3 with
--system-site-packages (so apt's numpy/OpenCV/cryptography are the ones used, as on the
Pi), pip installing the pip side of scripts/pi-pins.txt from PyPI, doorward with --no-deps, and
`doorward doctor` at the end. scripts/test installs the apt packages first; without them the
test is skipped with the command that installs them.
"""

from __future__ import annotations

import os
import platform
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-pi"
DEB_PYTHON = Path("/usr/bin/python3")


def install_pi(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def apt_side_missing() -> str | None:
    if not DEB_PYTHON.exists():
        return "no /usr/bin/python3 (Debian's interpreter) on this machine"
    probe = subprocess.run([str(DEB_PYTHON), "-c", "import numpy, cryptography"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return ("apt's Python packages are missing: apt-get install python3-numpy "
                "python3-cryptography python3-venv (scripts/test does it as root)")
    return None


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under root with its size, mtime and mode: equal trees = nothing changed."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def test_help_names_the_options() -> None:
    r = install_pi("--help")
    assert r.returncode == 0, r.stderr
    for option in ("--dry-run", "--prefix", "--no-start", "--force", "--python"):
        assert option in r.stdout


def test_unknown_option_is_refused_with_usage() -> None:
    r = install_pi("--frobnicate")
    assert r.returncode == 1
    assert "unknown option '--frobnicate'" in r.stderr and "usage:" in r.stderr


def test_dry_run_prints_every_step_and_creates_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "pfx"
    r = install_pi("--dry-run", "--prefix", str(prefix))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    expected = [
        "apt-get install -y -qq python3-venv python3-numpy python3-cryptography",
        "--no-install-recommends python3-picamera2",
        f"-m venv --system-site-packages {prefix}/opt/doorward/venv",
        f"pip install --quiet --disable-pip-version-check -c {ROOT}/scripts/pi-pins.txt "
        "opencv-python-headless==4.11.0.86 av==18.1.0 paho-mqtt==",
        f"pip install --quiet --disable-pip-version-check --no-deps {ROOT}",
        "useradd --system",
        f"{prefix}/etc/doorward/doorward.toml",
        f"{prefix}/etc/systemd/system/doorward.service",
        "systemctl daemon-reload",
        "systemctl enable --now doorward.service",
        f"{prefix}/opt/doorward/venv/bin/doorward doctor --config {prefix}/etc/doorward/",
        # issue 19: `doorward` on PATH, the data directory in the config, the next steps
        f"ln -sfn {prefix}/opt/doorward/venv/bin/doorward {prefix}/usr/local/bin/doorward",
        f"data_dir\\ =\\ \\\"{prefix}/var/lib/doorward",
        f"{prefix}/opt/doorward/venv/bin/doorward device label --config",
        "Hold the SETUP button (GPIO 27",
        "doorward owner pair --broker",
    ]
    for step in expected:
        assert step in out, f"{step!r} not printed:\n{out}"
    assert not prefix.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(platform.machine() in ("aarch64", "armv7l"), reason="this machine is a Pi")
def test_off_pi_needs_force_and_a_forced_dry_run_touches_no_system_path() -> None:
    r = install_pi("--dry-run")
    assert r.returncode == 1
    assert "not aarch64 or armv7l" in r.stderr and "--force" in r.stderr
    system_paths = [Path("/etc/doorward"), Path("/opt/doorward"),
                    Path("/etc/systemd/system/doorward.service")]
    before = [p.exists() for p in system_paths]
    r = install_pi("--dry-run", "--force")
    assert r.returncode == 0, r.stderr
    assert "+ env DEBIAN_FRONTEND=noninteractive apt-get install" in r.stdout
    assert "+ useradd --system" in r.stdout or "user doorward exists" in r.stdout
    assert "+ systemctl enable --now doorward.service" in r.stdout
    assert "runuser -u doorward --" in r.stdout
    assert [p.exists() for p in system_paths] == before


def test_prefix_install_works_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    missing = apt_side_missing()
    if missing:
        pytest.skip(missing)
    prefix = tmp_path / "root"
    r = install_pi("--prefix", str(prefix), "--no-start")
    assert r.returncode == 0, r.stdout + r.stderr

    venv = prefix / "opt/doorward/venv"
    assert (venv / "bin/doorward").is_file()
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    # apt's modules are used, not copies pip put into the venv
    for module in ("numpy", "cryptography"):
        assert f"  {module}" in r.stdout and "from apt" in r.stdout
    assert "from venv" not in r.stdout
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("numpy*")), "numpy comes from apt (picamera2 is built for it)"
    # OpenCV from pip: apt's python3-opencv maps ~470 libraries (133 MB of RSS at import)
    assert list(site.glob("opencv_python_headless-4.11*"))
    assert list(site.glob("paho_mqtt-2*")), "paho-mqtt 2 comes from pip"
    assert list(site.glob("av-18.1*")), "PyAV comes from pip (apt's 10.0 cannot write clips)"

    config = prefix / "etc/doorward/doorward.toml"
    assert 'source = "picamera2"' in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    unit = (prefix / "etc/systemd/system/doorward.service").read_text()
    assert (f"ExecStart={venv}/bin/doorward run --config {prefix}/etc/doorward/doorward.toml"
            in unit)
    assert "skipped (--prefix): useradd" in r.stdout
    assert "skipped (--prefix): systemctl enable doorward.service" in r.stdout
    # doctor ran from the installed venv and printed its verdict (no camera here: FAIL lines)
    assert f"{venv}/bin/doorward doctor" in r.stdout
    assert "PASS  config" in r.stdout and "doctor: " in r.stdout
    assert (prefix / "var/lib/doorward").is_dir()
    # issue 19: on PATH, finds its data directory, and the next steps show the label
    link = prefix / "usr/local/bin/doorward"
    assert link.is_symlink() and link.resolve() == (venv / "bin/doorward").resolve()
    assert f'data_dir = "{prefix}/var/lib/doorward"' in config.read_text()
    assert "==> next steps" in r.stdout and "setup code:" in r.stdout
    assert "doorward owner pair --broker" in r.stdout

    with config.open("a") as f:
        f.write("# edited by the owner\n")
    edited = config.read_text()
    before = tree(prefix)
    r2 = install_pi("--prefix", str(prefix), "--no-start")
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "up to date (same sources and pins), nothing to install" in r2.stdout
    assert "doorward.toml exists: kept" in r2.stdout
    assert "doorward.service is up to date" in r2.stdout
    assert "usr/local/bin/doorward is up to date" in r2.stdout
    assert "doorward doctor" in r2.stdout
    assert config.read_text() == edited
    assert tree(prefix) == before
