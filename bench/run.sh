#!/usr/bin/env bash
# ferroni vs Patroni, side by side (a benchmark, not a test). Run as root on Debian 12:
#
#   bench/run.sh                       # all 6 scenarios, 3 runs each, 7 of scenario 2 (~20 min)
#   bench/run.sh --runs 5 --scenarios 1,3,5
#   bench/run.sh --quick               # 1 run, pgbench scale 5, short idle/wrk windows
#   bench/run.sh --check               # only checks that it starts: build, venv, --version; exit 0
#   bench/run.sh --no-build ...        # use the existing target/release/ferroni (e.g. while the tree
#                                      # does not compile)
#
# Installs what is missing (wrk, python3-venv, PostgreSQL 15 and etcd through scripts/setup.sh),
# builds ferroni in release, installs Patroni 4.1 from PyPI into bench/.venv, then runs
# bench/compare.py, which prints a table of medians and writes bench/results/<timestamp>.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK=0
BUILD=1
args=()
for a in "$@"; do
  case "$a" in
    --check) CHECK=1 ;;
    --no-build) BUILD=0 ;;
    *) args+=("$a") ;;
  esac
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if [ "$CHECK" -eq 0 ]; then
    echo "bench/run.sh: run as root (the daemons and PostgreSQL run as the postgres user)" >&2
    exit 1
  fi
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo"
fi
can_install() { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }

# --- system packages -------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# the venv's interpreter must be usable by the postgres user (pyenv under /root is not): prefer Debian's
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3)
"$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  if can_install; then
    echo "bench: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bench: missing ${missing[*]} (not root: not installing)" >&2
  fi
fi
if can_install; then
  if [ "$CHECK" -eq 1 ]; then scripts/setup.sh >/dev/null 2>&1 || echo "bench: scripts/setup.sh failed" >&2
  else scripts/setup.sh >/dev/null; fi
fi

# --- ferroni ---------------------------------------------------------------------------------
FERRONI="target/$(rustc -vV | sed -n 's/^host: //p')/release/ferroni"
if [ "$BUILD" -eq 1 ] || [ ! -x "$FERRONI" ]; then
  scripts/build-release.sh >/dev/null
fi

# --- Patroni 4.1 in a virtualenv -------------------------------------------------------------
VENV=bench/.venv
PATRONI=$VENV/bin/patroni
as_pg() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
make_venv() {
  as_pg sh -c "\"$PWD/$PATRONI\" --version" 2>/dev/null | grep -q '^patroni 4\.1\.' && return 0
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || return 1
  "$VENV/bin/pip" install -q --disable-pip-version-check 'patroni[etcd3]>=4.1,<4.2' psycopg2-binary || return 1
  # the daemons run as postgres: the venv must be readable by it
  chmod -R a+rX "$VENV"
}

if [ "$CHECK" -eq 1 ]; then
  "$FERRONI" --version
  if make_venv; then "$PATRONI" --version; else echo "bench: could not create $VENV (offline?); skipped" >&2; fi
  python3 bench/compare.py --help >/dev/null
  echo "bench: --check ok"
  exit 0
fi

make_venv || { echo "bench: could not install Patroni into $VENV" >&2; exit 1; }
"$FERRONI" --version
"$PATRONI" --version
exec python3 bench/compare.py --ferroni "$FERRONI" --patroni "$PATRONI" ${args[@]+"${args[@]}"}
