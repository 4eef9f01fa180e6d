#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver (system packages: /usr/bin/chromium, /usr/bin/chromedriver)
# for the live page's browser tests (tests/integration/test_page_browser.py). Selenium drives this system
# browser through its matching driver; nothing downloads a browser of its own. Needs root (apt-get), like
# prometheus.sh. Exits early when both are present.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
packages=(chromium chromium-driver fonts-dejavu-core)
if ! apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
