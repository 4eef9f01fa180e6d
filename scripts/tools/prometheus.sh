#!/usr/bin/env bash
# Installs promtool, prometheus, alertmanager and amtool into "$1/bin" from the Debian packages (no
# service, no dependencies: the binaries are static Go programs). Exits early when they are present.
# Debian's alertmanager reads its notification templates from a fixed path instead of embedding them
# (it refuses to start without them), so those two files go to /usr/share/prometheus/alertmanager (root).
set -euo pipefail
. "$(dirname "$0")/lib/debian.sh"
dest=$(realpath -m "${1:?usage: prometheus.sh /absolute/tools/dir}")
bin="$dest/bin"
templates=/usr/share/prometheus/alertmanager
if [ -x "$bin/promtool" ] && [ -x "$bin/prometheus" ] && [ -x "$bin/alertmanager" ] && [ -x "$bin/amtool" ] \
  && [ -f "$templates/default.tmpl" ]; then
  exit 0
fi
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
unpack_debs "$work/root" prometheus prometheus-alertmanager
install -m 0755 "$work/root/usr/bin/prometheus" "$bin/prometheus"
install -m 0755 "$work/root/usr/bin/promtool" "$bin/promtool"
install -m 0755 "$work/root/usr/bin/prometheus-alertmanager" "$bin/alertmanager"
install -m 0755 "$work/root/usr/bin/amtool" "$bin/amtool"
if ! { mkdir -p "$templates" && install -m 0644 "$work/root$templates"/*.tmpl "$templates/"; } 2>/dev/null; then
  echo "prometheus.sh: cannot write $templates (run as root): alertmanager will not start" >&2
  exit 1
fi
echo "prometheus: $("$bin/prometheus" --version 2>&1 | head -1)"
echo "alertmanager: $("$bin/alertmanager" --version 2>&1 | head -1)"
