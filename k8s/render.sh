#!/usr/bin/env bash
# Regenerates the plain manifests in k8s/ (one file per object plus kustomization.yaml) from the Helm chart
# helm/distillery with its default values, so k8s/ stays in sync with the chart. helm/test.sh fails when they
# differ. Needs only Python and PyPI (the chart is rendered by helm-python-sdk; no helm binary).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source=../helm/tests/venv.sh
source "$repo/helm/tests/venv.sh"
helm_venv
"$PY" "$repo/helm/tests/render.py" k8s --chart "$repo/helm/distillery" --out "$here"
