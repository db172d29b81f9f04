#!/usr/bin/env bash
# Tests the Kubernetes deployment without a cluster or a helm binary: installs helm-python-sdk (Helm v4 as a
# library), kubernetes-validate and yamllint from PyPI into .cache/helm-venv, then helm/tests/check.py
#   - lints the chart (strict) and checks values.schema.json accepts the defaults and helm/tests/values-all.yaml
#     (every option on) and rejects unknown, secret, misplaced, out-of-range and mistyped settings;
#   - checks the chart's stage metadata, secret list and schema against the Rust source (service_config!
#     structs, Stage::inputs, Secret fields, Default impls, the consumer-lag metric, `distillery topics`);
#   - renders the defaults, values-all.yaml and values-all.yaml with vLLM, and validates every object with
#     `kubernetes-validate --strict -k 1.32.0` (KEDA and prometheus-operator resources: shape only) and yamllint;
#   - parses each ConfigMap's TOML (tomllib) and checks its sections, fields and types against the service's Rust
#     struct, with no secrets in it; checks Deployments (binary, --config, mounts, probes, grace period longer than
#     the drain, DISTILLERY__* variables from the Secret), Services, KEDA ScaledObjects (consumer group, topics,
#     maxReplicas), HPAs, the ServiceMonitor, the topics Job and the GPU LLM server;
#   - checks the HTTP API (distillery-api): its TOML has exactly [ops], [llm], [tabular] (no [kafka]/[runtime]),
#     the schema cache is a writable emptyDir, no DISTILLERY__KAFKA__* variable reaches it, its Service port, a
#     CPU-based HPA and never a ScaledObject;
#   - checks that k8s/ is what k8s/render.sh generates, and validates each of its files;
#   - the operations parts (helm/tests/ops.py): the alert rules with `promtool check rules` and their unit tests
#     (`promtool test rules helm/tests/alerts.test.yaml`), the Grafana dashboard's queries (parsed by promtool,
#     reading only metrics the source declares), the README's metrics table against the source, the rendered
#     custom resources (KEDA, prometheus-operator, Strimzi) against their CRDs' schemas, the PrometheusRule,
#     dashboard, PodDisruptionBudgets, KafkaTopics, MinIO notification Job and LLM server autoscaling of each
#     render (values-production.yaml too), the Dockerfile (hadolint, pins, non-root) and the notification script
#     (shellcheck, its mc calls).
# promtool comes from the Debian package prometheus, installed here when missing (scripts/lib.sh ensure_apt).
# Prints `helm: N passed, M failed` last and exits non-zero on any failure. -v prints passing checks too.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/venv.sh
source "$here/tests/venv.sh"
if ! helm_venv; then
  echo "could not install the chart tooling into .cache/helm-venv"
  echo "helm: 0 passed, 1 failed"
  exit 1
fi
if ! command -v promtool >/dev/null 2>&1; then
  # shellcheck source=../scripts/lib.sh
  ( source "$here/../scripts/lib.sh" && ensure_apt prometheus ) || echo "could not install the Debian package prometheus (promtool)"
fi
"$PY" "$here/tests/check.py" "$@"
