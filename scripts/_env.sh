# Shared set-up for scripts/demo, scripts/test and scripts/bench: a .venv with the project installed.
# Sourced, not run. Sets ROOT, PY and puts .venv/bin first on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "Doorward needs Python 3.11 or newer: install python3 (>= 3.11) and python3-venv" >&2
  return 1
}

ensure_venv() {  # ensure_venv [EXTRAS]
  local extras="${1:-}"
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv" >&2
    "$(find_python)" -m venv .venv || {
      echo "could not create .venv: on Debian/Ubuntu install python3-venv (apt-get install python3-venv)" >&2
      return 1
    }
  fi
  local stamp=".venv/.doorward-installed${extras:+-$extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing doorward${extras:+[$extras]} into .venv (first run takes a minute)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}" >&2
    touch "$stamp"
  fi
  PY="$ROOT/.venv/bin/python"
  export PATH="$ROOT/.venv/bin:$PATH"
}

ensure_debs() {  # ensure_debs CMD:PACKAGE ...  (installs with apt-get when root, else names them)
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian packages: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
}

# ---- The pinned Pi venv (.venv-pi): the unit tests under the Raspberry Pi's package versions. ----
# Raspberry Pi OS bookworm takes numpy/OpenCV/cryptography from Debian bookworm, so on a
# Debian 12 machine apt gives the very versions the Pi runs. The venv is made the way scripts/install-pi makes the Pi's: Debian's python3 with
# --system-site-packages, the "# pip" lines of scripts/pi-pins.txt with the file as constraints,
# doorward with --no-deps.

pi_debs() {  # the Debian packages of the "# apt" lines of scripts/pi-pins.txt, and python3-venv
  awk '$2 == "#" && $3 == "apt" { print $4 }' "$ROOT/scripts/pi-pins.txt"
  echo python3-venv
}

ensure_pi_debs() {  # installs pi_debs with apt-get when root, else names them
  local missing=() deb
  for deb in $(pi_debs); do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing the Pi's Python packages from apt: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    echo "missing Debian packages for the pinned Pi stage: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    return 1
  fi
}

pi_stage_possible() {  # true on Debian 12 (bookworm), whose apt versions are the Pi's
  [ -x /usr/bin/python3 ] && [ -f /etc/os-release ] &&
    [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ]
}

ensure_pi_venv() {  # creates or refreshes .venv-pi; sets PI_PY
  local pins="$ROOT/scripts/pi-pins.txt" want
  # test tools: the same unit tests run, none skip (starlette, httpx: the owner app's routes;
  # grimp: the import-graph tests; pytest-xdist: two workers, as in the main stage)
  local tools="pytest pytest-xdist hypothesis jinja2 pyjwt starlette httpx grimp"
  want="$( (cat "$pins" pyproject.toml; echo "$tools") | sha256sum | cut -d' ' -f1)"
  if [ ! -f .venv-pi/.doorward-pins ] || [ "$(cat .venv-pi/.doorward-pins)" != "$want" ]; then
    echo "==> creating .venv-pi (the Pi's package versions, scripts/pi-pins.txt)" >&2
    rm -rf .venv-pi
    /usr/bin/python3 -m venv --system-site-packages .venv-pi
    local reqs
    reqs="$(awk '$2 == "#" && $3 == "pip" { print $1 }' "$pins")"
    # shellcheck disable=SC2086  # one requirement per word
    .venv-pi/bin/python -m pip install --quiet --disable-pip-version-check -c "$pins" \
      $reqs $tools >&2
    .venv-pi/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e . >&2
    echo "$want" > .venv-pi/.doorward-pins
  fi
  PI_PY="$ROOT/.venv-pi/bin/python"
  # apt's versions must be the pinned ones (a Debian point release may move one: update the pins)
  awk '$2 == "#" && $3 == "apt" { split($1, r, "=="); print $5, r[2], $4 }' "$pins" |
    while read -r module want_version deb; do
      "$PI_PY" - "$module" "$want_version" "$deb" <<'PY'
import importlib, sys
module, want, deb = sys.argv[1:]
m = importlib.import_module(module)
if m.__version__ != want or "/usr/lib/python3/" not in (m.__file__ or ""):
    sys.exit(f"{module} {m.__version__} from {m.__file__}: scripts/pi-pins.txt pins {want} "
             f"from apt's {deb}; update the pin (and check the Pi) or fix .venv-pi")
PY
    done
}
