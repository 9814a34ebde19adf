#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) and installs the project with its test and dev extras,
# at the exact versions of constraints.txt (what the suite was last run with).
# Idempotent: reinstalls only when setup.cfg or constraints.txt changed since the last install.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: $python is older than 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.installed-$(sha256sum setup.cfg pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing lunch-streams and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
