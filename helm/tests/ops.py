"""Operations checks of helm/test.sh (imported by check.py): the alert rules, the Grafana dashboard, the README's
metrics table, the custom resources' schemas, the image's Dockerfile and the MinIO notification script.

- The metric families the services declare are read from the Rust source (`Metrics::new` in
  crates/distillery-core/src/metrics.rs, and every `counter_vec`/`gauge_vec`/`histogram_vec`/`float_*` call of a
  component), with their type and labels; the README's "Metrics" table must list exactly those.
- The alerts (helm/distillery/files/prometheus-rules.yaml) pass `promtool check rules` and the unit tests of
  helm/tests/alerts.test.yaml (`promtool test rules`, from the Debian prometheus package), every alert is tested
  there, and every metric they read is declared in the source.
- Every query of the dashboard (helm/distillery/files/grafana-dashboard.json) parses (promtool, with Grafana's
  variables filled in), reads only declared metrics (or the llama.cpp server's), and the dashboard covers what
  it must (throughput per stage, accepted per hour, rejection reasons, judge scores, LLM latency and tokens,
  consumer lag, diversity). tests/prometheus.rs checks the same queries against the metrics running services
  export, in a real Prometheus.
- Custom resources (KEDA, prometheus-operator, Strimzi) are validated against their released CRDs' schemas
  (helm/tests/crd-schemas.json), rejecting undeclared fields.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "distillery"
TESTS = REPO / "helm" / "tests"
RULES = CHART / "files" / "prometheus-rules.yaml"
RULE_TESTS = TESTS / "alerts.test.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
MINIO_SCRIPT = CHART / "files" / "minio-notify.sh"
README = REPO / "README.md"
DOCKERFILE = REPO / "images" / "Dockerfile"

# Where metric families are declared: the runtime's own (fields of `Metrics`) and the components'.
CORE_METRICS = "crates/distillery-core/src/metrics.rs"
METRIC_CALL = re.compile(
    r"\b(counter|gauge|histogram|counter_vec|float_counter_vec|gauge_vec|float_gauge_vec|histogram_vec)\(\s*"
    r"(?:r,\s*)?\"([a-z_:][a-z0-9_:]*)\",\s*\"(?:[^\"\\]|\\.)*\",\s*&\[([^\]]*)\]",
    re.S,
)
KIND = {"counter": "counter", "counter_vec": "counter", "float_counter_vec": "counter", "gauge": "gauge",
        "gauge_vec": "gauge", "float_gauge_vec": "gauge", "histogram": "histogram", "histogram_vec": "histogram"}
# Metrics of the LLM server itself (llama.cpp's --metrics) that the dashboard and the autoscaler read.
LLAMACPP = re.compile(r"\bllamacpp:[a-z_]+")
# What the dashboard must show, as a metric each: the list.
DASHBOARD_MUST = {
    "throughput per stage": "distillery_records_in_total",
    "records published per stage": "distillery_records_out_total",
    "rejection reasons": "distillery_rejected_total",
    "judge score distribution": "distillery_judge_scores_total",
    "LLM latency": "distillery_llm_latency_seconds",
    "LLM tokens/s": "distillery_llm_tokens_total",
    "consumer lag": "distillery_consumer_lag",
    "diversity": "distillery_dataset_diversity",
    "dead letters": "distillery_dead_letters_total",
}
# The alerts the issue asks for, by the metric each must read.
ALERTS_MUST = {
    "DistilleryConsumerLagStalled": "distillery_consumer_lag",
    "DistilleryDeadLetterRateHigh": "distillery_dead_letters_total",
    "DistilleryLlmErrorRateHigh": "distillery_llm_calls_total",
    "DistilleryRejectionRateOutOfBand": "distillery:rejection_ratio:1h",
    "DistilleryDiversityFalling": "distillery_dataset_diversity",
}
# Grafana's variables, as tests/prometheus.rs fills them in too.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m", "${stage}": ".*",
                "$stage": ".*", "${dataset}": ".*", "$dataset": ".*"}


# ---------------------------------------------------------------------------------------------------------------
# Metrics declared in the source


def declared_metrics(sources: dict[Path, str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """`distillery_<name>` -> (type, labels) of every family the Rust source declares."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for path, text in sources.items():
        text = text.split("#[cfg(test)]", 1)[0]  # a file's unit tests declare families of their own
        for call, name, labels in METRIC_CALL.findall(text):
            if call in ("counter", "gauge", "histogram") and not str(path).endswith(CORE_METRICS):
                continue  # the private helpers of Metrics::new only
            full = "distillery_" + name
            kind = KIND[call]
            labs = tuple(re.findall(r'"([a-z_]+)"', labels))
            prev = out.get(full)
            assert prev is None or prev == (kind, labs), \
                f"{full} is declared twice with different types or labels: {prev} and {(kind, labs)} ({path})"
            out[full] = (kind, labs)
    assert "distillery_records_in_total" in out and "distillery_llm_calls_total" in out, \
        f"metric declarations not found (found {sorted(out)})"
    return out


def readme_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The README's Metrics table: name -> (type, labels)."""
    text = README.read_text()
    m = re.search(r"^## Metrics\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Metrics' section"
    rows: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`distillery_"):
            continue
        name = cells[0].strip("`")
        labels = tuple(re.findall(r"`([a-z_]+)`", cells[2]))
        assert name not in rows, f"README lists {name} twice"
        rows[name] = (cells[1], labels)
    return rows


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (ours and llama.cpp's), histogram series folded into their
    family."""
    names = set(re.findall(r"\bdistillery_[a-z0-9_]+", expr)) | set(LLAMACPP.findall(expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) and
            not n.endswith("_total") else n for n in names}


def grafana_expr(expr: str) -> str:
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k])
    return expr


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
        for sub in p.get("panels", []):
            for t in sub.get("targets", []):
                out.append((sub["title"], t["expr"]))
    return out


def promtool() -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: install the Debian package prometheus (scripts/test-servers start does)"
    return exe


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


# ---------------------------------------------------------------------------------------------------------------
# The checks (each raises AssertionError with what is wrong)


def check_rules_promtool() -> None:
    p = run([promtool(), "check", "rules", str(RULES)])
    assert p.returncode == 0, (p.stdout + p.stderr).strip()


def check_rules_unit_tests() -> None:
    p = run([promtool(), "test", "rules", str(RULE_TESTS)])
    assert p.returncode == 0 and "SUCCESS" in p.stdout, (p.stdout + p.stderr).strip()


def check_rules_shape(declared: dict[str, Any]) -> None:
    rules = yaml.safe_load(RULES.read_text())
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    alerts = {}
    errors = []
    for g in rules["groups"]:
        for r in g["rules"]:
            used = metric_names(r["expr"])
            unknown = sorted(n for n in used if n not in declared)
            if unknown:
                errors.append(f"{r.get('alert') or r.get('record')} reads undeclared metrics {unknown}")
            if "alert" not in r:
                continue
            alerts[r["alert"]] = r
            if r.get("labels", {}).get("severity") not in ("info", "warning", "critical"):
                errors.append(f"{r['alert']}: severity label info, warning or critical")
            ann = r.get("annotations", {})
            if not ann.get("summary") or not ann.get("description"):
                errors.append(f"{r['alert']}: summary and description annotations")
            if "for" not in r:
                errors.append(f"{r['alert']}: no `for`")
            if r["alert"] not in tested:
                errors.append(f"{r['alert']} fires in no test of {RULE_TESTS.name}")
    for alert, metric in ALERTS_MUST.items():
        if alert not in alerts:
            errors.append(f"missing alert {alert}")
        elif metric not in alerts[alert]["expr"]:
            errors.append(f"{alert} does not read {metric}")
    for rec in records:
        if not re.fullmatch(r"distillery:[a-z_]+:[a-z0-9_]+", rec):
            errors.append(f"recording rule {rec} is not named level:metric:operation")
    assert not errors, "\n".join(errors)


def check_dashboard(declared: dict[str, Any]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash.get("uid") and dash.get("title") and dash.get("schemaVersion"), "uid, title, schemaVersion"
    names = {v["name"] for v in dash["templating"]["list"]}
    assert "datasource" in names, "no datasource variable"
    targets = dashboard_targets()
    assert targets, "no queries"
    errors = []
    used: set[str] = set()
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        errors.append("panel ids repeat")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"{p['title']}: datasource is not ${{datasource}}")
        if not p.get("targets"):
            errors.append(f"{p['title']}: no query")
    for title, expr in targets:
        names_in = metric_names(expr)
        used |= names_in
        if not names_in:
            errors.append(f"{title}: reads no Distillery metric: {expr}")
        unknown = sorted(n for n in names_in if n not in declared and not n.startswith("llamacpp:"))
        if unknown:
            errors.append(f"{title}: undeclared metrics {unknown}")
    for what, metric in DASHBOARD_MUST.items():
        if metric not in used:
            errors.append(f"no panel shows {what} ({metric})")
    if not any("increase(distillery_records_out_total{stage=\"dedup\",topic=\"accepted\"}[1h])" in e for _, e in targets):
        errors.append("no panel shows accepted records per hour")
    # Every query parses: promtool checks them as recording rules.
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "dashboard-queries.yaml"
        rules = [{"record": f"dashboard:query:{i}", "expr": grafana_expr(e)} for i, (_, e) in enumerate(targets)]
        f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        p = run([promtool(), "check", "rules", str(f)])
        if p.returncode != 0:
            errors.append("promtool rejects a query:\n" + (p.stdout + p.stderr).strip())
    assert not errors, "\n".join(errors)


def check_readme_metrics(declared: dict[str, tuple[str, tuple[str, ...]]]) -> None:
    rows = readme_metrics()
    errors = []
    for name, (kind, labels) in sorted(declared.items()):
        if name not in rows:
            errors.append(f"{name} ({kind}; {', '.join(labels)}) is not in the README's Metrics table")
        elif rows[name] != (kind, labels):
            errors.append(f"{name}: README says {rows[name]}, the source declares {(kind, labels)}")
    for name in sorted(set(rows) - set(declared)):
        errors.append(f"README lists {name}, which no source declares")
    assert not errors, "\n".join(errors)


def check_topics(rust_topics: list[str]) -> None:
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    m = re.search(r'define "distillery.topicBases" -\}\}\n(.*?)\n\{\{- end', text, re.S)
    assert m, "distillery.topicBases not found in _helpers.tpl"
    chart = m.group(1).split()
    assert chart == rust_topics, f"chart topics {chart}, Topic::ALL {rust_topics}"


# -- custom resources -----------------------------------------------------------------------------------------


def _strict(node: Any) -> Any:
    """A CRD schema that rejects undeclared fields (what the API server's strict field validation does)."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out and \
                not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


_SCHEMAS: dict[str, Any] = {}


def crd_schema(api_version: str, kind: str) -> Any:
    if not _SCHEMAS:
        data = json.loads((TESTS / "crd-schemas.json").read_text())
        for k, v in data.items():
            if k != "_about":
                _SCHEMAS[k] = _strict(v["schema"])
    return _SCHEMAS.get(f"{api_version}/{kind}")


def validate_custom_resource(obj: dict[str, Any]) -> None:
    schema = crd_schema(obj["apiVersion"], obj["kind"])
    assert schema is not None, f"no CRD schema for {obj['apiVersion']} {obj['kind']} in crd-schemas.json"
    body = copy.deepcopy(obj)
    body["metadata"] = {}  # ObjectMeta is checked apart (names, labels)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path)) or '.'}: {e.message}" for e in errors[:20])


# -- the image ------------------------------------------------------------------------------------------------


def check_dockerfile() -> None:
    exe = Path(sys.executable).parent / "hadolint"
    p = run([str(exe), "-c", str(TESTS / "hadolint.yaml"), "--no-color", str(DOCKERFILE)])
    assert p.returncode == 0, "hadolint:\n" + (p.stdout + p.stderr).strip()
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert len(froms) >= 3, f"not a multi-stage build: {froms}"
    stages = {alias for _, alias in froms}
    pinned = re.compile(r"[\w./-]+:(?:\d+\.\d+(?:\.\d+)?[\w.-]*|[a-z]+-\d{8}[\w-]*)(?:@sha256:[0-9a-f]{64})?")
    for image, alias in froms:
        if image in stages:
            continue  # FROM an earlier stage
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        assert pinned.fullmatch(ref), f"FROM {image} ({ref}) is not pinned to a full version"
    # Every image the chart runs ends as the unprivileged user: USER 10001 in the runtime stage the others
    # build on, and no later USER root.
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and all(u.split(":")[0] not in ("root", "0") for u in users), f"USER lines {users}"
    assert "USER 10001:10001" in text, "the runtime stage does not switch to 10001:10001"
    runtime_children = re.findall(r"^FROM runtime AS (\w+)$", text, re.M)
    assert len(runtime_children) >= 7, f"the service images are not built on the non-root runtime stage: {runtime_children}"


# -- the MinIO notification script ----------------------------------------------------------------------------


FAKE_MC = """#!/bin/sh
# A stand-in for MinIO's mc that records its arguments (the script's logic is under test, not MinIO).
printf '%s\\n' "$*" >> "$MC_LOG"
case "$1 $2" in
  "ready store") exit 0 ;;
esac
exit 0
"""


def _run_minio_script(env: dict[str, str]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        bindir = Path(tmp) / "bin"
        bindir.mkdir()
        mc = bindir / "mc"
        mc.write_text(FAKE_MC)
        mc.chmod(mc.stat().st_mode | stat.S_IEXEC)
        log = Path(tmp) / "mc.log"
        full = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "MC_LOG": str(log), "HOME": tmp, **env}
        p = run(["/bin/sh", str(MINIO_SCRIPT)], env=full)
        assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}"
        return log.read_text().splitlines() if log.exists() else []


def check_minio_script() -> None:
    exe = Path(sys.executable).parent / "shellcheck"
    p = run([str(exe), "-s", "sh", str(MINIO_SCRIPT)])
    assert p.returncode == 0, "shellcheck:\n" + (p.stdout + p.stderr).strip()
    base = {"MINIO_ENDPOINT": "https://minio:9000", "MINIO_ACCESS_KEY": "admin", "MINIO_SECRET_KEY": "s3cret-admin",
            "TARGET_ID": "distillery", "EVENTS": "put"}
    calls = _run_minio_script({**base, "TARGET": "kafka", "RESTART": "true", "BUCKETS": "documents||\nuploads|inbox/|.pdf",
                               "KAFKA_BROKERS": "k0:9093,k1:9093", "KAFKA_TOPIC": "distillery.events",
                               "KAFKA_TLS": "on", "KAFKA_SASL": "on", "KAFKA_SASL_MECHANISM": "sha512",
                               "KAFKA_SASL_USERNAME": "distillery", "KAFKA_SASL_PASSWORD": "pw"})
    want = [
        "alias set store https://minio:9000 admin s3cret-admin",
        "admin config set store notify_kafka:distillery brokers=k0:9093,k1:9093 topic=distillery.events tls=on "
        "tls_skip_verify=off sasl=on sasl_mechanism=sha512 sasl_username=distillery sasl_password=pw",
        "admin service restart store",
        "ready store",
        "event add store/documents arn:minio:sqs::distillery:kafka --event put --ignore-existing",
        "event add store/uploads arn:minio:sqs::distillery:kafka --event put --ignore-existing --prefix inbox/ --suffix .pdf",
    ]
    assert calls == want, "kafka target:\n" + "\n".join(calls)
    calls = _run_minio_script({**base, "TARGET": "webhook", "RESTART": "false", "BUCKETS": "documents",
                               "WEBHOOK_ENDPOINT": "http://distillery-ingest.distillery.svc:9100/events",
                               "WEBHOOK_AUTH_TOKEN": "tok"})
    want = [
        "alias set store https://minio:9000 admin s3cret-admin",
        "admin config set store notify_webhook:distillery endpoint=http://distillery-ingest.distillery.svc:9100/events auth_token=tok",
        "event add store/documents arn:minio:sqs::distillery:webhook --event put --ignore-existing",
    ]
    assert calls == want, "webhook target:\n" + "\n".join(calls)
    # A wrong target is an error before anything changes.
    try:
        calls = _run_minio_script({**base, "TARGET": "sqs", "BUCKETS": "documents"})
    except AssertionError as e:
        assert "exit 2" in str(e), str(e)
    else:
        raise AssertionError(f"TARGET=sqs was accepted: {calls}")
