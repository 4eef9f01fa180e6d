#!/usr/bin/env bash
# Installs the Prometheus Operator's CRD schemas for the chart tests into "$1/node_modules": the npm package
# @kubernetes-models/prometheus-operator, whose validators are generated from the operator's CRD OpenAPI
# schemas (monitoring.coreos.com v1: ServiceMonitor, PodMonitor, PrometheusRule, ...), with its
# dependencies. tests/support/operator_schemas.mjs runs them under node. (The PyPI alternative,
# cloudcoil-models-prometheus-operator 0.93.1, ships pydantic models for Python >= 3.14 and no JSON
# schema.) Needs npm (installed from Debian when missing). Exits early when the package is present.
set -euo pipefail
dest=$(realpath -m "${1:?usage: operator-schemas.sh /absolute/tools/dir}")
# Pinned so that every machine validates against the same schemas; bump deliberately.
package="${FOOTPRINT_OPERATOR_SCHEMAS_NPM_PACKAGE:-@kubernetes-models/prometheus-operator@6.0.0}"
if [ -f "$dest/node_modules/@kubernetes-models/prometheus-operator/package.json" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A private npm cache keeps root's ~/.npm untouched; --prefix puts node_modules under the tools folder.
npm install --silent --no-audit --no-fund --no-save --cache "$work/npm-cache" --prefix "$dest" "$package" >/dev/null
echo "operator schemas: $(node -p "require('$dest/node_modules/@kubernetes-models/prometheus-operator/package.json').version")"
