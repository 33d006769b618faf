#!/usr/bin/env bash
# Installs what the benchmarks compare against and draw with, into the current Python,
# only when missing: Huey 3.5.4 (the reference queue) and matplotlib (the chart).
set -euo pipefail
PYTHON="${PYTHON:-python3}"
need=()
"$PYTHON" - <<'PY' || need+=("huey==3.5.4")
import importlib.metadata as m, sys
sys.exit(0 if m.version('huey') == '3.5.4' else 1)
PY
"$PYTHON" -c 'import matplotlib' 2>/dev/null || need+=("matplotlib")
if ((${#need[@]})); then
  echo "bench setup: installing ${need[*]}" >&2
  "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore "${need[@]}"
fi
command -v redis-server >/dev/null 2>&1 || {
  echo "bench setup: redis-server is missing; run scripts/setup.sh first" >&2; exit 1; }
