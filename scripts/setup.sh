#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine (Python, pip and apt only): into
# the active virtual environment if there is one, else into the system Python (saying so).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "setup: installing chromium and chromium-driver (Debian packages, for the dashboard's browser tests)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if python3 -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)'; then
  echo "setup: installing into $(python3 -c 'import sys; print(sys.executable)') (no virtual environment is active; to keep this project apart: python3 -m venv .venv && . .venv/bin/activate, then run this again)" >&2
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test,dashboard]'
