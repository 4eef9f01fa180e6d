#!/usr/bin/env bash
# CodeCarbon for bench/overhead.py, in its own venv under the ignored .cache/ (never in the project
# venv: it pulls pandas and friends). Idempotent; prints the venv's python.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.cache/codecarbon-venv"
version="${CODECARBON_VERSION:-3.3.2}"
if ! "$venv/bin/python" -c "import codecarbon, sys; sys.exit(codecarbon.__version__ != '$version')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "codecarbon==$version" >&2
fi
echo "$venv/bin/python"
