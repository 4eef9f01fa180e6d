#!/usr/bin/env bash
# Installs node_exporter into "$1/bin" from the Debian package prometheus-node-exporter (a static Go
# binary; the benchmarks compare against it). Exits early when it is present.
set -euo pipefail
. "$(dirname "$0")/lib/debian.sh"
dest=$(realpath -m "${1:?usage: node_exporter.sh /absolute/tools/dir}")
bin="$dest/bin"
if [ -x "$bin/node_exporter" ]; then
  exit 0
fi
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
unpack_debs "$work/root" prometheus-node-exporter
install -m 0755 "$work/root/usr/bin/prometheus-node-exporter" "$bin/node_exporter"
echo "node_exporter: $("$bin/node_exporter" --version 2>&1 | head -1)"
