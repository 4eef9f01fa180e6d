#!/usr/bin/env bash
# A peer tool for bench/overhead.py in its own venv under the ignored .cache/ (never in the project venv:
# CodeCarbon and Zeus pull pandas, scikit-learn and friends). Idempotent; prints the venv's python.
# Usage: peer_venv.sh NAME DISTRIBUTION VERSION   (e.g. zeus zeus-ml 0.11.0.post1)
set -euo pipefail
name=$1 dist=$2 version=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.cache/$name-venv"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$dist') != '$version')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$dist==$version" >&2
fi
echo "$venv/bin/python"
