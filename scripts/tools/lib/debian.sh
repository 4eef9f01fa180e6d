# Sourced by the tool scripts (not a tool itself: install-test-tools.sh runs only scripts/tools/*.sh).
# unpack_debs ROOT PACKAGE...: downloads the Debian packages into the current directory, refreshing the
# package lists only when they lack them, and unpacks each into ROOT. Nothing is installed: no maintainer
# scripts, no dependencies (the tools are static Go binaries).
unpack_debs() {
  local root=$1 deb
  shift
  # apt-get download writes as _apt when it can; a root-owned temp dir makes it warn, so let _apt in.
  chmod 0777 .
  if ! apt-get download -q "$@" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get download -q "$@" >/dev/null
  fi
  for deb in ./*.deb; do
    dpkg-deb -x "$deb" "$root"
  done
}
