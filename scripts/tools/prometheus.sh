#!/usr/bin/env bash
# Installs promtool, prometheus, alertmanager and amtool into "$1/bin" from the Debian packages (no root
# service, no dependencies: the binaries are static Go programs). Exits early when they are present.
set -euo pipefail
dest=$(realpath -m "${1:?usage: prometheus.sh /absolute/tools/dir}")
bin="$dest/bin"
if [ -x "$bin/promtool" ] && [ -x "$bin/prometheus" ] && [ -x "$bin/alertmanager" ] && [ -x "$bin/amtool" ]; then
  exit 0
fi
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download writes as _apt when it can; a root-owned temp dir makes it warn, so let _apt in.
chmod 0777 "$work"
packages=(prometheus prometheus-alertmanager)
if ! apt-get download -q "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get download -q "${packages[@]}" >/dev/null
fi
for deb in ./*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done
install -m 0755 "$work/root/usr/bin/prometheus" "$bin/prometheus"
install -m 0755 "$work/root/usr/bin/promtool" "$bin/promtool"
install -m 0755 "$work/root/usr/bin/prometheus-alertmanager" "$bin/alertmanager"
install -m 0755 "$work/root/usr/bin/amtool" "$bin/amtool"
echo "prometheus: $("$bin/prometheus" --version 2>&1 | head -1)"
echo "alertmanager: $("$bin/alertmanager" --version 2>&1 | head -1)"
