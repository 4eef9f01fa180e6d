#!/usr/bin/env bash
# Zeus (zeus-ml) for bench/overhead.py, in its own venv under the ignored .cache/ (never in the project
# venv: it pulls pandas, scikit-learn and friends). Idempotent; prints the venv's python.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.cache/zeus-venv"
version="${ZEUS_VERSION:-0.11.0.post1}"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('zeus-ml') != '$version')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "zeus-ml==$version" >&2
fi
echo "$venv/bin/python"
