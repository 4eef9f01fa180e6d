#!/usr/bin/env bash
# Installs node_exporter into "$1/bin" from the Debian package prometheus-node-exporter (a static Go
# binary; the benchmarks compare against it). Exits early when it is present.
set -euo pipefail
dest=$(realpath -m "${1:?usage: node_exporter.sh /absolute/tools/dir}")
bin="$dest/bin"
if [ -x "$bin/node_exporter" ]; then
  exit 0
fi
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download writes as _apt when it can; a root-owned temp dir makes it warn, so let _apt in.
chmod 0777 "$work"
if ! apt-get download -q prometheus-node-exporter >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get download -q prometheus-node-exporter >/dev/null
fi
dpkg-deb -x ./*.deb "$work/root"
install -m 0755 "$work/root/usr/bin/prometheus-node-exporter" "$bin/node_exporter"
echo "node_exporter: $("$bin/node_exporter" --version 2>&1 | head -1)"
