"""Checks the Distillery Helm chart and the plain manifests in k8s/ against Kubernetes' schemas and against the
Rust code they deploy. Run by helm/test.sh; prints one line per failed check and a closing
`helm: N passed, M failed` line, and exits non-zero on any failure.

What "the Rust code" means here: the configuration structs (every `#[serde(deny_unknown_fields)]` struct under
crates/*/src and services/*/src, and the per-service structs made by `service_config!`, a macro defined in
crates/distillery-kafka/src/service.rs and invoked in each services/<stage>/src/service.rs), the stages' names
(`NAME: StageName`, spelled by `StageName::as_str` in crates/distillery-core/src/stage.rs) and input topics
(`Stage::inputs` in services/<stage>/src/lib.rs), the topic base names, the consumer-lag metric, the
`distillery topics` flags (services/distillery) and the per-service binaries, and for the HTTP API
(`distillery-api`, deployed like a stage but without Kafka) ApiServiceConfig in services/api/src/tabular.rs. They
are read from the source on every run, so a renamed field or topic shows up here.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ops  # noqa: E402
import render  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "distillery"
TESTS = REPO / "helm" / "tests"
K8S = REPO / "k8s"
KUBE_VERSION = "1.32.0"
STAGES = ["ingest", "extract", "generate", "judge", "dedup", "sink"]
# Where the Rust sources are read from (relative to the repository): the library crates and the service crates.
RUST_SOURCES = ("crates/*/src/**/*.rs", "services/*/src/**/*.rs")
# The `service_config!` macro: the sections every Kafka service has.
SERVICE_MACRO = "crates/distillery-kafka/src/service.rs"
# The HTTP API: deployed like a stage (ConfigMap, Deployment, Service) but no Kafka, scaled on CPU.
API = "api"
API_STRUCT = "ApiServiceConfig"  # services/api/src/tabular.rs
SERVICES = STAGES + [API]
# Custom resources, which kubernetes-validate has no schemas for: validated against their released CRDs' schemas
# (helm/tests/crd-schemas.json, undeclared fields rejected) by ops.validate_custom_resource.
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
}


# ---------------------------------------------------------------------------------------------------------------
# Results


class Results:
    def __init__(self, verbose: bool) -> None:
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        """Runs `fn`; an AssertionError or any exception is a failure with its message."""
        try:
            out = fn()
        except AssertionError as e:
            self.fail(name, str(e) or "assertion failed")
            return None
        except Exception as e:  # noqa: BLE001 - any error is a failed check
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            self.fail(name, detail)
            return None
        self.passed += 1
        if self.verbose:
            print(f"ok    {name}")
        return out

    def fail(self, name: str, detail: str) -> None:
        self.failed += 1
        first, *rest = detail.splitlines() or [""]
        print(f"FAIL  {name}: {first}")
        for line in rest[:40]:
            print(f"      {line}")


# ---------------------------------------------------------------------------------------------------------------
# What the Rust source says


class Rust:
    INTS = {"u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize"}

    def __init__(self, root: Path) -> None:
        self.root = root
        self.structs: dict[str, dict[str, str]] = {}
        self.enums: dict[str, list[str]] = {}
        self.files: list[Path] = []
        for pattern in RUST_SOURCES:
            found = sorted(root.glob(pattern))
            assert found, f"no Rust sources match {pattern}"
            self.files += found
        self.sources = {path: path.read_text() for path in self.files}
        for text in self.sources.values():
            self._scan(text)
        self.services = self._services()

    def _scan(self, text: str) -> None:
        item = r"((?:[ \t]*(?:#\[[^\n]*\]|///[^\n]*)\n)*)[ \t]*pub (struct|enum) (\w+)\s*\{(.*?)\n\}"
        for attrs, what, name, body in re.findall(item, text, re.S):
            if "Deserialize" not in attrs:
                continue
            if what == "struct":
                fields = dict(re.findall(r"^\s*pub (\w+)\s*:\s*(.+?),\s*$", body, re.M))
                if fields:
                    self.structs.setdefault(name, fields)
            else:
                variants = re.findall(r"^\s*(\w+),?\s*$", body, re.M)
                rename = re.search(r'rename_all\s*=\s*"([\w-]+)"', attrs)
                self.enums.setdefault(name, [self._rename(v, rename.group(1) if rename else None) for v in variants])

    @staticmethod
    def _rename(variant: str, rule: str | None) -> str:
        if rule == "lowercase":
            return variant.lower()
        if rule in ("kebab-case", "snake_case", "SCREAMING_SNAKE_CASE"):
            sep = "-" if rule == "kebab-case" else "_"
            out = re.sub(r"(?<!^)([A-Z])", sep + r"\1", variant)
            return out.upper() if rule == "SCREAMING_SNAKE_CASE" else out.lower()
        return variant

    def service_sections(self, name: str) -> dict[str, str]:
        """{section: struct} of a stage's service or of the API."""
        if name == API:
            assert API_STRUCT in self.structs, f"{API_STRUCT} not found in {' or '.join(RUST_SOURCES)}"
            return {f: ty.split("::")[-1] for f, ty in self.structs[API_STRUCT].items()}
        return self.services[name]

    def _services(self) -> dict[str, dict[str, str]]:
        """stage -> {section: struct}: the fixed fields of the `service_config!` macro (SERVICE_MACRO), then the
        fields of its invocation in services/<stage>/src/service.rs."""
        text = (self.root / SERVICE_MACRO).read_text()
        macro = re.search(r"macro_rules!\s*service_config\s*\{(.*?)\n\}", text, re.S)
        assert macro, f"service_config! macro not found in {SERVICE_MACRO}"
        # `pub kafka: $crate::KafkaConfig,`, `pub runtime: $crate::service::__private::RuntimeConfig,`: the type's
        # last path segment (the struct's name). `pub $field: $ty` (the invocation's own fields) does not match.
        base = {f: ty.split("::")[-1] for f, ty in re.findall(r"pub (\w+)\s*:\s*([\w$:]+)\s*,", macro.group(1))}
        assert base, f"no fixed fields found in the service_config! macro ({SERVICE_MACRO})"
        invocation = (r"service_config!\(\s*(?:no_default\s+)?(?:(?:///[^\n]*|#\[[^\n]*\])\n\s*)*(\w+)\s*\{(.*?)\n\s*\}"
                      r"\s*validate")
        out: dict[str, dict[str, str]] = {}
        for path in sorted(self.root.glob("services/*/src/service.rs")):
            where = path.relative_to(self.root)
            for name, body in re.findall(invocation, self.sources[path], re.S):
                stage = re.sub(r"ServiceConfig$", "", name).lower()
                assert stage == path.parts[-3], f"{where} declares {name}, not the {path.parts[-3]} service"
                assert stage not in out, f"service_config! declares {name} twice"
                # A path-qualified type (`distillery_dataset::StoreConfig`) names its struct by the last segment.
                fields = {f: ty.split("::")[-1]
                          for f, ty in re.findall(r"^\s*(\w+)\s*:\s*([\w:<>]+),?\s*$", body, re.M)}
                assert fields, f"no fields found in {where}'s service_config! {name}"
                out[stage] = {**base, **fields}
                self.structs[name] = out[stage]
        assert out, "no service_config! invocation found in services/*/src/service.rs"
        return out

    def classify(self, ty: str) -> tuple[Any, ...]:
        ty = re.sub(r"\s+", "", ty)
        m = re.fullmatch(r"Option<(.+)>", ty)
        if m:
            return self.classify(m.group(1))
        m = re.fullmatch(r"Vec<(.+)>", ty)
        if m:
            return ("list", self.classify(m.group(1)))
        m = re.fullmatch(r"(?:std::collections::)?(?:BTreeMap|HashMap)<String,(.+)>", ty)
        if m:
            return ("map", self.classify(m.group(1)))
        m = re.fullmatch(r"(?:std::collections::)?(?:BTreeMap|HashMap)<(\w+),(.+)>", ty)
        if m and m.group(1) in self.enums:
            # Keyed by an enum: ("map", value kind, key enum).
            return ("map", self.classify(m.group(2)), m.group(1))
        last = ty.split("::")[-1]
        if last == "Secret":
            return ("secret",)
        if last in ("String", "PathBuf", "SocketAddr"):
            return ("str",)
        if last == "bool":
            return ("bool",)
        if last in self.INTS:
            return ("int",)
        if last in ("f32", "f64"):
            return ("float",)
        if ty == "serde_json::Value" or last == "Value":
            return ("any",)
        if last in self.structs:
            return ("struct", last)
        if last in self.enums:
            return ("enum", last)
        raise AssertionError(f"unknown Rust type {ty}")

    def secret_fields(self, struct: str) -> list[str]:
        return [f for f, t in self.structs[struct].items() if self.classify(t) == ("secret",)]

    def resolve_env(self, stage: str, var: str) -> tuple[Any, ...]:
        """The type a DISTILLERY__SECTION__FIELD variable sets in a service's configuration."""
        parts = var[len("DISTILLERY__"):].lower().split("__")
        kind: tuple[Any, ...] = ("struct", self.service_struct(stage))
        for p in parts:
            if kind[0] == "map":
                kind = kind[1]
                continue
            assert kind[0] == "struct", f"{var}: {p} is inside a {kind[0]}"
            fields = self.structs[kind[1]]
            assert p in fields, f"{var}: the {stage} service has no field {p} there (fields: {', '.join(fields)})"
            kind = self.classify(fields[p])
        return kind

    @staticmethod
    def service_struct(stage: str) -> str:
        return stage.capitalize() + "ServiceConfig"

    def topics(self) -> dict[str, str]:
        """Topic variant -> base name (crates/distillery-core/src/topic.rs)."""
        text = (self.root / "crates/distillery-core/src/topic.rs").read_text()
        names = dict(re.findall(r'Topic::(\w+)\s*=>\s*"([\w-]+)"', text))
        assert names, "no topic base names found"
        return names

    def stage_names(self) -> dict[str, str]:
        """StageName variant -> its name (`StageName::as_str` in crates/distillery-core/src/stage.rs)."""
        text = (self.root / "crates/distillery-core/src/stage.rs").read_text()
        m = re.search(r"fn as_str\(self\)\s*->\s*&'static str\s*\{(.*?)\n    \}", text, re.S)
        assert m, "StageName::as_str not found in crates/distillery-core/src/stage.rs"
        names = dict(re.findall(r'StageName::(\w+)\s*=>\s*"([\w-]+)"', m.group(1)))
        assert names, "no stage names found in StageName::as_str"
        return names

    def stages(self) -> dict[str, list[str]]:
        """Stage name -> input topic base names, from each services/<dir>/src/lib.rs: `Stage::name` (a literal,
        `NAME.as_str()` with `const NAME: StageName = StageName::X`, or `StageName::X.as_str()`) and
        `Stage::inputs`. A stage must live in the service directory of its name."""
        base = self.topics()
        variants = self.stage_names()
        out: dict[str, list[str]] = {}
        for path in sorted(self.root.glob("services/*/src/lib.rs")):
            text = self.sources[path]
            where = path.relative_to(self.root)
            name = re.search(r"fn name\(&self\)\s*->\s*&'static str\s*\{\s*(.*?)\s*\}", text, re.S)
            inputs = re.search(r"fn inputs\(&self\)\s*->\s*&'static \[Topic\]\s*\{\s*&\[(.*?)\]", text, re.S)
            if not (name and inputs):
                continue
            expr = name.group(1)
            if m := re.fullmatch(r'"([\w-]+)"', expr):
                stage = m.group(1)
            elif m := re.fullmatch(r"(?:StageName::(\w+)|(\w+))\.as_str\(\)", expr):
                variant = m.group(1)
                if variant is None:
                    const = re.search(rf"\bconst {m.group(2)}\s*:\s*StageName\s*=\s*StageName::(\w+)\s*;", text)
                    assert const, f"{where}: Stage::name returns {expr} but {m.group(2)} is not a StageName constant there"
                    variant = const.group(1)
                assert variant in variants, f"{where}: StageName::{variant} has no name in StageName::as_str"
                stage = variants[variant]
            else:
                raise AssertionError(f"{where}: cannot read the stage name from Stage::name ({expr})")
            assert stage == path.parts[-3], f"{where} implements the {stage} stage, not {path.parts[-3]}"
            topics = re.findall(r"Topic::(\w+)", inputs.group(1))
            unknown = [t for t in topics if t not in base]
            assert not unknown, f"{where}: Stage::inputs names topics {unknown} without a base name"
            out[stage] = [base[t] for t in topics]
        return out

    def struct_default(self, struct: str) -> str:
        text = "\n".join(self.sources.values())
        m = re.search(r"impl Default for " + struct + r"\s*\{.*?\n\}", text, re.S)
        assert m, f"impl Default for {struct} not found"
        return m.group(0)

    def llm_defaults(self, struct: str) -> tuple[float, int]:
        """(temperature, max_tokens) that `impl Default for <struct>` gives its `llm` field: set in place
        (`LlmConfig { temperature: .., max_tokens: .., ..LlmConfig::default() }`) or by a function returning the
        LlmConfig (`llm: judge_llm(&LlmConfig::default())`)."""
        default = self.struct_default(struct)
        m = re.search(r"\bllm:\s*(\w+)\(", default)
        body = default
        if m and m.group(1) != "LlmConfig":
            text = "\n".join(self.sources.values())
            f = re.search(r"fn " + m.group(1) + r"\([^)]*\)\s*->\s*LlmConfig\s*\{.*?\n\}", text, re.S)
            assert f, f"{struct}::default sets llm by {m.group(1)}(), which was not found"
            body = f.group(0)
        m = re.search(r"temperature:\s*([0-9.]+),\s*max_tokens:\s*([0-9_]+)", body)
        assert m, f"{struct}::default no longer sets llm temperature and max_tokens"
        return float(m.group(1)), int(m.group(2).replace("_", ""))


# ---------------------------------------------------------------------------------------------------------------
# Chart facts


def chart_meta() -> dict[str, Any]:
    """The stage metadata in _helpers.tpl (sections, inputs) and its secret field list."""
    text = (CHART / "templates" / "_helpers.tpl").read_text()

    def block(name: str) -> Any:
        m = re.search(r'\{\{- define "' + re.escape(name) + r'" -\}\}\n(.*?)\{\{- end -\}\}', text, re.S)
        assert m, f"define {name} not found in _helpers.tpl"
        return yaml.safe_load(m.group(1))

    return {"stages": block("distillery.stageMeta"), "api": block("distillery.apiMeta"),
            "secrets": block("distillery.secretFields")}


def check_value(rust: Rust, value: Any, kind: tuple[Any, ...], path: str, errors: list[str]) -> None:
    tag = kind[0]
    if tag == "secret":
        errors.append(f"{path} is a secret and must not be in the ConfigMap")
    elif tag == "str":
        if not isinstance(value, str):
            errors.append(f"{path} = {value!r} should be a string")
    elif tag == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path} = {value!r} should be a boolean")
    elif tag == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path} = {value!r} should be an integer")
    elif tag == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path} = {value!r} should be a number")
    elif tag == "list":
        if not isinstance(value, list):
            errors.append(f"{path} = {value!r} should be an array")
        else:
            for i, v in enumerate(value):
                check_value(rust, v, kind[1], f"{path}[{i}]", errors)
    elif tag == "map":
        if not isinstance(value, dict):
            errors.append(f"{path} = {value!r} should be a table")
        else:
            keys = rust.enums[kind[2]] if len(kind) > 2 else None
            for k, v in value.items():
                if keys is not None and k not in keys:
                    errors.append(f"{path}.{k}: {k!r} is not one of {', '.join(keys)}")
                check_value(rust, v, kind[1], f"{path}.{k}", errors)
    elif tag == "enum":
        variants = rust.enums[kind[1]]
        if value not in variants:
            errors.append(f"{path} = {value!r} is not one of {', '.join(variants)}")
    elif tag == "struct":
        if not isinstance(value, dict):
            errors.append(f"{path} = {value!r} should be a table")
            return
        fields = rust.structs[kind[1]]
        for k, v in value.items():
            where = f"{path}.{k}" if path else k
            if k not in fields:
                errors.append(f"{where}: {kind[1]} has no field {k} (fields: {', '.join(fields)})")
            else:
                check_value(rust, v, rust.classify(fields[k]), where, errors)


def schema_fields(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = schema["definitions"][node["$ref"].split("/")[-1]]
    return node


def compare_schema(rust: Rust, schema: dict[str, Any], node: dict[str, Any], struct: str, path: str, errors: list[str]) -> None:
    """The schema's properties for a Rust struct must be its non-secret fields, recursively."""
    node = schema_fields(schema, node)
    if node.get("additionalProperties") is not False:
        errors.append(f"{path}: the schema must reject unknown fields (additionalProperties: false)")
    props = node.get("properties", {})
    fields = rust.structs[struct]
    want = {f for f, t in fields.items() if rust.classify(t) != ("secret",)}
    if set(props) != want:
        missing, extra = sorted(want - set(props)), sorted(set(props) - want)
        errors.append(f"{path} ({struct}): schema lacks {missing or '-'}, has unknown {extra or '-'}")
    for f in sorted(want & set(props)):
        kind = rust.classify(fields[f])
        if kind[0] == "struct":
            compare_schema(rust, schema, props[f], kind[1], f"{path}.{f}", errors)
        elif kind[0] == "enum":
            enum = schema_fields(schema, props[f]).get("enum")
            variants = rust.enums[kind[1]]
            if enum is None or not set(enum) <= set(variants):
                errors.append(f"{path}.{f}: schema enum {enum} is not within the Rust variants {variants}")
        elif kind[0] == "list" and kind[1][0] == "enum":
            enum = schema_fields(schema, props[f]).get("items", {}).get("enum")
            if enum is None or not set(enum) <= set(rust.enums[kind[1][1]]):
                errors.append(f"{path}.{f}: schema item enum {enum} is not within {rust.enums[kind[1][1]]}")


# ---------------------------------------------------------------------------------------------------------------
# The checks


class Suite:
    def __init__(self, results: Results) -> None:
        self.r = results
        self.rust: Rust | None = None
        self.values_all = render.load_values([TESTS / "values-all.yaml"])
        self.values_production = render.load_values([CHART / "values-production.yaml"])

    # -- static checks of the chart against the Rust code ------------------------------------------------------

    def static(self) -> None:
        self.rust = self.r.check("rust: read the configuration structs and service_config! services", lambda: Rust(REPO))
        if self.rust is None:
            return
        rust = self.rust
        meta = self.r.check("chart: read the stage metadata in _helpers.tpl", chart_meta)
        if meta is None:
            return

        def stage_sections() -> None:
            want = {s: list(rust.services[s]) for s in rust.services}
            got = {s: m["sections"] for s, m in meta["stages"].items()}
            assert set(got) == set(STAGES) == set(want), f"stages: chart {sorted(got)}, Rust {sorted(want)}"
            for s in STAGES:
                assert got[s] == want[s], f"{s}: chart sections {got[s]} but the Rust struct has {want[s]}"

        self.r.check("chart: each stage's sections match its Rust service struct", stage_sections)

        def api_sections() -> None:
            want = list(rust.service_sections(API))
            got = meta["api"]["sections"]
            assert got == want, f"chart apiMeta sections {got} but {API_STRUCT} has {want}"
            assert "kafka" not in got and "runtime" not in got, f"{API_STRUCT} has no Kafka: {got}"
            assert meta["api"]["inputs"] == [], "the API consumes no topic"
            assert API not in meta["stages"], "the API must not be a Kafka stage (no ScaledObject, no consumer group)"

        self.r.check(f"chart: the API's sections match {API_STRUCT} (ops, llm, tabular; no kafka, runtime)", api_sections)

        def stage_inputs() -> None:
            stages = rust.stages()
            assert set(stages) == set(STAGES), f"Rust stages {sorted(stages)}"
            for s in STAGES:
                got = meta["stages"][s]["inputs"]
                assert got == stages[s], f"{s}: chart consumes {got} but Stage::inputs is {stages[s]}"

        self.r.check("chart: each stage's input topics match Stage::inputs", stage_inputs)

        def secret_fields() -> None:
            want: dict[str, list[str]] = {}
            for s in SERVICES:
                for section, struct in rust.service_sections(s).items():
                    fields = rust.secret_fields(struct)
                    if fields:
                        want[section] = fields
            assert meta["secrets"] == want, f"chart secretFields {meta['secrets']} but the Rust Secret fields are {want}"

        self.r.check("chart: the secret field list matches the Rust Secret-typed fields", secret_fields)

        def schema_vs_rust() -> None:
            schema = json.loads((CHART / "values.schema.json").read_text())
            errors: list[str] = []
            defs = schema["definitions"]
            for s in STAGES:
                cfg = defs[f"{s}Config"]
                assert set(cfg["properties"]) == set(rust.services[s]), f"{s}Config sections {sorted(cfg['properties'])}"
                for section, struct in rust.services[s].items():
                    compare_schema(rust, schema, cfg["properties"][section], struct, f"stages.{s}.config.{section}", errors)
            cfg = defs["apiConfig"]
            assert set(cfg["properties"]) == set(rust.service_sections(API)), f"apiConfig sections {sorted(cfg['properties'])}"
            for section, struct in rust.service_sections(API).items():
                compare_schema(rust, schema, cfg["properties"][section], struct, f"api.config.{section}", errors)
            assert schema["properties"]["api"] == {"$ref": "#/definitions/apiService"}, "values key `api` is not apiService"
            assert "api" not in schema["properties"]["stages"]["properties"], "the API is not a Kafka stage"
            api_as = defs["apiService"]["properties"]["autoscaling"]["properties"]
            assert "mode" not in api_as and "lagThreshold" not in api_as, "the API scales on CPU, not on lag"
            shared = defs["sharedConfig"]["properties"]
            union = {sec for s in SERVICES for sec in rust.service_sections(s)}
            assert set(shared) == union, f"sharedConfig sections {sorted(shared)} but the services have {sorted(union)}"
            assert not errors, "\n".join(errors)

        self.r.check("schema: config sections list exactly the Rust fields (Secret fields excluded)", schema_vs_rust)

        def binaries() -> None:
            # services/<s>: package distillery-<s>, whose binary's main() runs its library's service::main(),
            # which boots the binary of that name.
            for s in SERVICES:
                toml = tomllib.loads((REPO / "services" / s / "Cargo.toml").read_text())
                pkg = toml["package"]["name"]
                assert pkg == f"distillery-{s}", f"services/{s} builds {pkg}"
                lib = (toml.get("lib") or {}).get("name", pkg.replace("-", "_"))
                assert lib == f"distillery_{s}", f"services/{s}'s library is {lib}, not distillery_{s}"
                main = (REPO / "services" / s / "src" / "main.rs").read_text()
                call = f"distillery_{s}::service::main()"
                assert re.search(r"fn main\(\)[^{]*\{\s*" + re.escape(call) + r"\s*\}", main), \
                    f"services/{s}/src/main.rs does not run {call}"
                service = (REPO / "services" / s / "src" / "service.rs").read_text()
                body = re.search(r"\npub fn main\(\)\s*->\s*std::process::ExitCode\s*\{.*?\n\}", service, re.S)
                assert body and re.search(r"\bservice_main\(\s*" + re.escape(f'"distillery-{s}"'), body.group(0)), \
                    f"services/{s}/src/service.rs has no `pub fn main()` booting distillery-{s}"
            toml = tomllib.loads((REPO / "services" / "distillery" / "Cargo.toml").read_text())
            assert toml["package"]["name"] == "distillery"

        self.r.check("rust: binaries distillery, distillery-<stage> and distillery-api exist and run their service::main()", binaries)

        def defaults() -> None:
            kafka = rust.struct_default("KafkaConfig")
            facts = {"brokers": '"127.0.0.1:9092"', "topic_prefix": '"distillery."', "group_prefix": '"distillery-"',
                     "partitions": "6", "replication_factor": "1"}
            for field, val in facts.items():
                assert re.search(rf"{field}:\s*{re.escape(val)}", kafka), f"KafkaConfig::default {field} is no longer {val} (update distillery.kafkaFacts)"
            assert '"0.0.0.0:9100"' in rust.struct_default("OpsConfig"), "OpsConfig::default listen changed (update distillery.opsPort)"
            assert re.search(r"drain_timeout_secs:\s*60", rust.struct_default("RuntimeConfig")), "RuntimeConfig::default drain_timeout_secs changed"
            # values.yaml restates the API's and the judge's own [llm] defaults (so a shared config.llm does not
            # override them).
            values = yaml.safe_load((CHART / "values.yaml").read_text())
            for where, struct, llm in ((
                    "api.config.llm", API_STRUCT, values["api"]["config"]["llm"]), (
                    "stages.judge.config.llm", rust.service_struct("judge"), values["stages"]["judge"]["config"]["llm"])):
                temperature, max_tokens = rust.llm_defaults(struct)
                assert (temperature, max_tokens) == (llm.get("temperature"), llm.get("max_tokens")), \
                    f"values.yaml {where} {llm} != {struct}::default (temperature {temperature}, max_tokens {max_tokens})"

        self.r.check("chart: fallback Kafka, ops, drain, API and judge defaults match the Rust Default impls", defaults)

        def metric() -> None:
            text = (REPO / "crates/distillery-core/src/metrics.rs").read_text()
            assert '.namespace("distillery")' in text and re.search(r'consumer_lag:\s*gauge\(\s*r,\s*"consumer_lag"', text), \
                "distillery_consumer_lag is no longer exported"
            assert '&["stage", "topic", "partition"]' in text

        self.r.check("rust: the services export distillery_consumer_lag{stage,topic,partition}", metric)

        def topic_bases() -> None:
            text = (REPO / "crates/distillery-core/src/topic.rs").read_text()
            m = re.search(r"pub const ALL: \[Topic; \d+\] = \[(.*?)\];", text, re.S)
            assert m, "Topic::ALL not found in crates/distillery-core/src/topic.rs"
            names = rust.topics()
            ops.check_topics([names[v] for v in re.findall(r"Topic::(\w+)", m.group(1))])

        self.r.check("chart: distillery.topicBases (topics Job, Strimzi KafkaTopics) lists Topic::ALL in order", topic_bases)

        def topics_cli() -> None:
            text = (REPO / "services/distillery/src/cli.rs").read_text()
            m = re.search(r"\n\s*Topics\s*\{(.*?)\n\s*\},", text, re.S)
            assert m, "the topics subcommand is gone from services/distillery/src/cli.rs"
            fields = re.findall(r"^\s*(\w+)\s*:", m.group(1), re.M)
            want = ["brokers", "prefix", "partitions", "replication_factor"]
            assert [f for f in fields if f in want] == want, f"topics flags are now {fields}"

        self.r.check("rust: `distillery topics` takes --brokers --prefix --partitions --replication-factor (the Job's flags)",
                     topics_cli)

        def versions() -> None:
            cargo = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]
            chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
            assert chart["apiVersion"] == "v2", "Chart.yaml apiVersion must be v2"
            assert str(chart["appVersion"]) == cargo["version"], \
                f"Chart.yaml appVersion {chart['appVersion']} (the default image tag) != workspace version {cargo['version']}"
            docker = (REPO / "images" / "Dockerfile").read_text()
            assert re.search(rf"rust:{re.escape(cargo['rust-version'])}(\.\d+)?-bookworm\b", docker), \
                f"the builder image is not rust:{cargo['rust-version']}[.patch]-bookworm"
            assert re.search(r"ARG RUNTIME_IMAGE=debian:12\.\d+-slim\b", docker) and "cargo build --release --locked --bins" in docker
            for lib in ("ca-certificates", "libssl3", "libcurl4", "libsasl2-2"):
                assert lib in docker, f"the runtime image lacks {lib}"
            for b in ["distillery"] + [f"distillery-{s}" for s in SERVICES]:
                assert re.search(rf"\b{re.escape(b)}\b", docker), f"images/Dockerfile does not install {b}"
            assert "DISTILLERY_EMBED_MODEL_DIR" in docker, "the image does not point dedup at its embedding model"
            readers = [p for p, t in rust.sources.items() if re.search(r'env::var(?:_os)?\(\s*"DISTILLERY_EMBED_MODEL_DIR"', t)]
            assert readers, "no Rust source reads DISTILLERY_EMBED_MODEL_DIR (the image's embedding model for dedup)"

        self.r.check("image: Chart appVersion, Dockerfile toolchain, libraries and binaries match the workspace", versions)

    # -- alerts, dashboard, metrics documentation, image, notification script ----------------------------------

    def observability(self) -> None:
        rust = self.rust
        assert rust is not None
        declared = self.r.check("rust: read the metric families the services declare (name, type, labels)",
                                lambda: ops.declared_metrics(rust.sources))
        self.r.check("alerts: promtool check rules helm/distillery/files/prometheus-rules.yaml", ops.check_rules_promtool)
        self.r.check("alerts: promtool test rules helm/tests/alerts.test.yaml (every alert fires and stays silent as it should)",
                     ops.check_rules_unit_tests)
        if declared is not None:
            self.r.check("alerts: the issue's alerts exist, each with severity, summary, description, `for` and a unit test, "
                         "reading only declared metrics", lambda: ops.check_rules_shape(declared))
            self.r.check("dashboard: every query parses (promtool), reads declared metrics; throughput, accepted/h, "
                         "rejections, scores, LLM latency and tokens, lag, diversity are shown",
                         lambda: ops.check_dashboard(declared))
            self.r.check("README: the Metrics table lists every declared metric with its type and labels, and nothing else",
                         lambda: ops.check_readme_metrics(declared))
        self.r.check("image: hadolint, every base image pinned to a full version, multi-stage, non-root (USER 10001)",
                     ops.check_dockerfile)
        self.r.check("minio-notify.sh: shellcheck, and the mc calls it makes for a Kafka (SASL, TLS, restart) and a "
                     "webhook target, refusing another", ops.check_minio_script)

    # -- lint, schema and guards --------------------------------------------------------------------------------

    def lint_and_schema(self) -> None:
        def lint(values: dict[str, Any]) -> Callable[[], None]:
            def run() -> None:
                report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
                bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
                errs = report.get("errors") or []
                assert not bad and not errs, "\n".join([f"{m['path']}: {m['error']}" for m in bad] + list(map(str, errs)))
            return run

        self.r.check("helm lint --strict (default values)", lint({}))
        self.r.check("helm lint --strict (values-all.yaml)", lint(self.values_all))
        self.r.check("helm lint --strict (values-production.yaml)", lint(self.values_production))

        def schema_accepts() -> None:
            with helm.Chart.load(str(CHART)) as c:
                c.validate_schema(self.values_all)
                c.validate_schema(self.values_production)
                c.validate_schema({})

        self.r.check("schema: accepts the defaults, values-all.yaml and values-production.yaml", schema_accepts)

        rejected = {
            "an unknown field (config.llm.modle)": {"config": {"llm": {"modle": "x"}}},
            "a secret in the config (config.s3.secret_access_key)": {"config": {"s3": {"secret_access_key": "x"}}},
            "a section the stage lacks (stages.judge.config.s3)": {"stages": {"judge": {"config": {"s3": {}}}}},
            "an out-of-range value (config.kafka.partitions: 0)": {"config": {"kafka": {"partitions": 0}}},
            "a wrong type (config.kafka.partitions: \"6\")": {"config": {"kafka": {"partitions": "6"}}},
            "an unknown top-level key": {"replicaCount": 3},
            "a [kafka] section for the API (api.config.kafka)": {"api": {"config": {"kafka": {"brokers": "k:9092"}}}},
            "a [runtime] section for the API (api.config.runtime)": {"api": {"config": {"runtime": {"drain_timeout_secs": 5}}}},
            "a secret in the API's config (api.config.llm.api_key)": {"api": {"config": {"llm": {"api_key": "x"}}}},
            "an unknown [tabular] field (api.config.tabular.rows)": {"api": {"config": {"tabular": {"rows": 5}}}},
            "lag-based autoscaling for the API (api.autoscaling.mode)": {"api": {"autoscaling": {"mode": "keda"}}},
            "the API as a stage (stages.api)": {"stages": {"api": {"enabled": True}}},
            "an unknown Strimzi API version (kafkaTopics.apiVersion)": {"kafkaTopics": {"apiVersion": "kafka.strimzi.io/v2"}},
            "a MinIO target other than kafka or webhook": {"minioNotifications": {"target": "amqp"}},
            "an LLM server scaled to zero (llmServer.autoscaling.minReplicas: 0)": {"llmServer": {"autoscaling": {"minReplicas": 0}}},
        }
        for what, vals in rejected.items():
            def bad_schema(vals: dict[str, Any] = vals) -> None:
                with helm.Chart.load(str(CHART)) as c:
                    try:
                        c.validate_schema(vals)
                    except helm.HelmError:
                        return
                raise AssertionError("accepted")

            self.r.check(f"schema: rejects {what}", bad_schema)

        guards = {
            "ingest with 2 replicas and no claims.bucket": ({"stages": {"ingest": {"replicas": 2}}}, "claims.bucket"),
            "dedup autoscaled without vectors.qdrant_url": ({"autoscaling": {"mode": "keda"}, "stages": {
                "ingest": {"config": {"claims": {"bucket": "b"}}}}}, "qdrant_url"),
            "sink without an output": ({"stages": {"sink": {"config": {"output": {"bucket": None}}}}}, "output.dir"),
            "sink with both outputs": ({"stages": {"sink": {"config": {"output": {"dir": "/data"}}}}}, "exactly one"),
            "a password in kafka.properties": ({"config": {"kafka": {"properties": {"sasl.password": "p"}}}}, "secret"),
            "ingest scaled to zero with the webhook on": ({"autoscaling": {"mode": "keda"}, "stages": {
                "ingest": {"autoscaling": {"minReplicas": 0}, "config": {"claims": {"bucket": "b"}}},
                "dedup": {"config": {"vectors": {"qdrant_url": "http://q:6334"}}}}}, "webhook"),
            "a DISTILLERY__KAFKA__* variable for the API (it has no [kafka])": (
                {"api": {"secretEnv": {"DISTILLERY__KAFKA__SASL_PASSWORD": "kafka-sasl-password"}}}, "no [kafka] section"),
            "the API's HPA with maxReplicas < minReplicas": (
                {"api": {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}}, "maxReplicas"),
            "the API's CPU HPA without a CPU request": ({"api": {"resources": {"requests": {"cpu": None}}}}, "requests.cpu"),
            "an API preStop pause as long as its grace period": (
                {"api": {"preStopSleepSeconds": 30, "terminationGracePeriodSeconds": 30}}, "preStopSleepSeconds"),
            "Strimzi KafkaTopics and the topics Job at once": (
                {"kafkaTopics": {"enabled": True, "clusterName": "k"}}, "topicsJob"),
            "Strimzi KafkaTopics without a cluster name": (
                {"kafkaTopics": {"enabled": True}, "topicsJob": {"enabled": False}}, "clusterName"),
            "min.insync.replicas above the topics' replicas": (
                {"kafkaTopics": {"enabled": True, "clusterName": "k", "config": {"min.insync.replicas": 2}},
                 "topicsJob": {"enabled": False}}, "min.insync.replicas"),
            "LLM server autoscaling without a Prometheus address": (
                {"llmServer": {"enabled": True, "autoscaling": {"enabled": True}}}, "serverAddress"),
            "MinIO notifications without buckets": (
                {"minioNotifications": {"enabled": True, "endpoint": "http://minio:9000"}}, "buckets"),
            "MinIO notifications without an endpoint": (
                {"minioNotifications": {"enabled": True, "buckets": [{"name": "docs"}]}}, "endpoint"),
            "MinIO webhook notifications with ingest's webhook off": (
                {"minioNotifications": {"enabled": True, "endpoint": "http://minio:9000", "target": "webhook",
                                        "buckets": [{"name": "docs"}]},
                 "stages": {"ingest": {"config": {"webhook": {"enabled": False}}}}}, "webhook"),
        }
        for what, (vals, needle) in guards.items():
            def guard(vals: dict[str, Any] = vals, needle: str = needle) -> None:
                try:
                    render.render(CHART, vals)
                except helm.HelmError as e:
                    assert needle in str(e), f"failed, but without mentioning {needle}: {e}"
                    return
                raise AssertionError("rendered")

            self.r.check(f"template: refuses {what}", guard)

        def api_disabled() -> None:
            objs = render.split(render.render(CHART, {"api": {"enabled": False}}))
            left = [f"{o.kind}/{o.name}" for o in objs if o.name == "distillery-api" or
                    (o.data.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/component") == API]
            assert not left, f"api.enabled=false still renders {left}"
            assert any(o.kind == "Deployment" and o.name == "distillery-ingest" for o in objs)

        self.r.check("template: api.enabled=false renders no API object", api_disabled)

    # -- rendered objects ---------------------------------------------------------------------------------------

    def scenario(self, label: str, values: dict[str, Any], workdir: Path) -> None:
        objs = self.r.check(f"[{label}] render", lambda: render.split(render.render(CHART, values)))
        if objs is None:
            return
        merged = self.r.check(f"[{label}] merge values", lambda: self._merged_values(values))
        if merged is None:
            return
        for o in objs:
            self.r.check(f"[{label}] {o.kind}/{o.name} is well-formed", lambda o=o: self._well_formed(o))
        self._validate(label, objs, workdir)
        self._yamllint(label, objs, workdir)
        by_kind: dict[str, dict[str, render.Obj]] = {}
        for o in objs:
            by_kind.setdefault(o.kind, {})[o.name] = o
        configs: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
            name = f"distillery-{stage}"
            cm = by_kind.get("ConfigMap", {}).get(name)
            cfg = self.r.check(f"[{label}] ConfigMap {name}: TOML parses and has only {stage}'s sections and fields",
                               lambda cm=cm, stage=stage: self._config(cm, stage))
            if cfg is not None:
                configs[stage] = cfg
                self.r.check(f"[{label}] Deployment {name}: image binary, config mount, probes, grace, secret env",
                             lambda stage=stage, cfg=cfg: self._deployment(by_kind, stage, cfg, merged))
                self.r.check(f"[{label}] Service {name}: port metrics -> ops port",
                             lambda stage=stage: self._service(by_kind, stage))
                self.r.check(f"[{label}] autoscaling of {stage}",
                             lambda stage=stage, cfg=cfg: self._autoscaling(by_kind, stage, cfg, merged))
        api_cfg = self.r.check(f"[{label}] ConfigMap distillery-api: TOML parses with exactly [ops], [llm], [tabular] "
                               f"(no kafka, runtime) and {API_STRUCT}'s fields", lambda: self._api_config(by_kind, merged))
        if merged["api"].get("enabled", True) and api_cfg is not None:
            configs[API] = api_cfg
            self.r.check(f"[{label}] Deployment distillery-api: distillery-api binary, config and schema-cache mounts, "
                         "probes, no Kafka variables, LLM key from the Secret",
                         lambda: self._api_deployment(by_kind, api_cfg, merged))
            self.r.check(f"[{label}] Service distillery-api: port metrics -> the API's ops port",
                         lambda: self._api_service(by_kind, api_cfg, merged))
        self.r.check(f"[{label}] autoscaling of the API: a CPU HPA (or fixed replicas), never a ScaledObject",
                     lambda: self._api_autoscaling(by_kind, merged))
        self.r.check(f"[{label}] topics Job runs `distillery topics` with config.kafka before install/upgrade",
                     lambda: self._topics_job(by_kind, merged))
        self.r.check(f"[{label}] ServiceMonitor and scrape annotations", lambda: self._monitoring(by_kind, merged))
        self.r.check(f"[{label}] LLM server on a GPU node, used by generate, judge and the API",
                     lambda: self._llm(by_kind, configs, merged))
        self.r.check(f"[{label}] PrometheusRule: the groups of files/prometheus-rules.yaml (plus additionalAlertLabels)",
                     lambda: self._prometheus_rule(by_kind, merged))
        self.r.check(f"[{label}] Grafana dashboard ConfigMap: files/grafana-dashboard.json with the sidecar's label",
                     lambda: self._dashboard(by_kind, merged))
        self.r.check(f"[{label}] PodDisruptionBudgets: one per service that may run several pods, selecting only its pods",
                     lambda: self._pdbs(by_kind, merged))
        self.r.check(f"[{label}] Strimzi KafkaTopics: every topic the services use, partitions, replicas, config",
                     lambda: self._kafka_topics(by_kind, configs, merged))
        self.r.check(f"[{label}] MinIO notification Job: target, the events topic ingest consumes or its webhook, buckets",
                     lambda: self._minio_job(by_kind, configs, merged))
        self.r.check(f"[{label}] LLM server autoscaling: a KEDA prometheus trigger on its queue depth, no fixed replicas",
                     lambda: self._llm_autoscaling(by_kind, merged))
        self.r.check(f"[{label}] extraVolumes and extraVolumeMounts reach every service", lambda: self._extra_volumes(by_kind, merged))
        self.r.check(f"[{label}] secret values appear only in Secret objects", lambda: self._no_leaks(objs, merged))
        self.r.check(f"[{label}] no object is defined twice", lambda: self._unique(objs))

    def _merged_values(self, values: dict[str, Any]) -> dict[str, Any]:
        with helm.Chart.load(str(CHART)) as c:
            return c.merge_values(values)

    @staticmethod
    def _well_formed(o: render.Obj) -> None:
        d = o.data
        assert isinstance(d, dict), "not a mapping"
        assert isinstance(d.get("apiVersion"), str) and d["apiVersion"], "no apiVersion"
        assert isinstance(d.get("kind"), str) and d["kind"], "no kind"
        md = d.get("metadata")
        assert isinstance(md, dict) and md.get("name"), "no metadata.name"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", md["name"]), f"invalid name {md['name']}"
        for k, v in (md.get("labels") or {}).items():
            assert isinstance(v, str) and len(v) <= 63, f"label {k}={v!r} is not a string of <= 63 characters"
        if (d["apiVersion"], d["kind"]) in CRDS:
            assert isinstance(d.get("spec"), dict), "custom resource without a spec"

    def _validate(self, label: str, objs: list[render.Obj], workdir: Path) -> None:
        """kubernetes-validate --strict -k KUBE_VERSION on every object (one file each)."""
        files: list[Path] = []
        d = workdir / label.replace(" ", "_").replace("+", "_")
        d.mkdir(parents=True, exist_ok=True)
        for i, o in enumerate(objs):
            f = d / f"{i:03d}-{o.kind.lower()}-{o.name}.yaml"
            f.write_text(o.text)
            files.append(f)
        exe = Path(sys.executable).parent / "kubernetes-validate"
        proc = subprocess.run([str(exe), "--strict", "-k", KUBE_VERSION, *map(str, files)],
                              capture_output=True, text=True, check=False)
        lines = (proc.stdout + proc.stderr).splitlines()
        for f, o in zip(files, objs, strict=True):
            mine = [ln for ln in lines if f" {f} " in ln or ln.endswith(f" {f}")]

            def verdict(mine: list[str] = mine, o: render.Obj = o) -> None:
                assert mine, "kubernetes-validate said nothing about it"
                if any(ln.startswith("INFO") and "passed" in ln for ln in mine):
                    return
                if all(ln.startswith("WARN") and "Couldn't find schema" in ln for ln in mine):
                    assert (o.data["apiVersion"], o.kind) in CRDS, f"no schema for {o.data['apiVersion']} {o.kind}: " + mine[0]
                    ops.validate_custom_resource(o.data)
                    return
                raise AssertionError("\n".join(mine))

            self.r.check(f"[{label}] kubernetes-validate --strict -k {KUBE_VERSION} (custom resources: their CRD's schema) "
                         f"{o.kind}/{o.name}", verdict)

    def _yamllint(self, label: str, objs: list[render.Obj], workdir: Path) -> None:
        stream = workdir / f"{label.replace(' ', '_').replace('+', '_')}-stream.yaml"
        # The dashboard ConfigMap holds JSON whose PromQL lines are long: lint it without the line-length rule.
        dashboards = [o for o in objs if "grafana_dashboard" in (o.data.get("metadata") or {}).get("labels", {})
                      or o.name.endswith("-dashboard")]
        stream.write_text("".join(f"---\n{o.text}" for o in objs if o not in dashboards))
        extra = workdir / f"{label.replace(' ', '_').replace('+', '_')}-dashboards.yaml"
        extra.write_text("".join(f"---\n{o.text}" for o in dashboards))

        def run() -> None:
            yamllint(stream)
            if dashboards:
                yamllint(extra, no_line_length=True)

        self.r.check(f"[{label}] yamllint of the rendered stream", run)

    def _config(self, cm: render.Obj | None, stage: str) -> dict[str, Any]:
        assert cm is not None, "missing"
        text = cm.data.get("data", {}).get("config.toml")
        assert isinstance(text, str), "no config.toml key"
        cfg = tomllib.loads(text)
        rust = self.rust
        assert rust is not None
        sections = rust.services[stage]
        unknown = sorted(set(cfg) - set(sections))
        assert not unknown, f"sections {unknown} are not in {rust.service_struct(stage)} ({', '.join(sections)})"
        errors: list[str] = []
        check_value(rust, cfg, ("struct", rust.service_struct(stage)), "", errors)
        if stage == "sink":
            out = cfg.get("output", {})
            if ("dir" in out) == ("bucket" in out):
                errors.append("output: exactly one of output.dir and output.bucket is required")
        assert not errors, "\n".join(errors)
        return cfg

    def _deployment(self, by_kind: dict[str, dict[str, render.Obj]], stage: str, cfg: dict[str, Any],
                    merged: dict[str, Any]) -> None:
        name = f"distillery-{stage}"
        dep = by_kind.get("Deployment", {}).get(name)
        stage_values = merged["stages"][stage]
        if not stage_values.get("enabled", True):
            assert dep is None, "disabled stage deployed"
            return
        assert dep is not None, "missing"
        spec = dep.data["spec"]["template"]["spec"]
        (c,) = [c for c in spec["containers"] if c["name"] == stage]
        assert c["command"] == [f"distillery-{stage}"], f"command {c['command']}"
        assert c["args"] == ["--config", "/etc/distillery/config.toml"], f"args {c['args']}"
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in spec["volumes"]}
        assert mounts["config"]["mountPath"] == "/etc/distillery", "config not mounted at /etc/distillery"
        assert vols["config"]["configMap"]["name"] == name, "config volume is not the stage's ConfigMap"
        listen = cfg.get("ops", {}).get("listen", "0.0.0.0:9100")
        port = int(listen.rsplit(":", 1)[1])
        ports = {p["name"]: p for p in c["ports"]}
        assert ports.get("metrics", {}).get("containerPort") == port, f"port metrics is not {port}"
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path and get["port"] == "metrics", f"{probe} is {get}"
        drain = cfg.get("runtime", {}).get("drain_timeout_secs", 60)
        grace = spec["terminationGracePeriodSeconds"]
        assert grace > drain + 30, f"terminationGracePeriodSeconds {grace} leaves no room after a {drain} s drain and the 30 s flush"
        assert spec.get("enableServiceLinks") is False, "service links would inject variables"
        secret_name = merged["secrets"].get("name") or "distillery"
        rust = self.rust
        assert rust is not None
        for env in c.get("env", []):
            var = env["name"]
            if not var.startswith("DISTILLERY__"):
                continue
            kind = rust.resolve_env(stage, var)
            if kind == ("secret",):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                assert ref and ref["name"] == secret_name and ref.get("optional") is True, f"{var} is not an optional secretKeyRef to {secret_name}"
                assert "value" not in env, f"{var} has a literal value"
        secret_vars = {e["name"] for e in c.get("env", []) if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]}
        want = {f"DISTILLERY__{sec.upper()}__{f.upper()}" for sec, struct in rust.services[stage].items()
                for f in rust.secret_fields(struct)}
        missing = want - secret_vars
        assert not missing, f"no variable for the secret fields {sorted(missing)}"

    @staticmethod
    def _service(by_kind: dict[str, dict[str, render.Obj]], stage: str) -> None:
        svc = by_kind.get("Service", {}).get(f"distillery-{stage}")
        assert svc is not None, "missing"
        ports = {p["name"]: p for p in svc.data["spec"]["ports"]}
        assert ports["metrics"]["targetPort"] == "metrics", "does not target the metrics port"
        sel = svc.data["spec"]["selector"]
        dep = by_kind["Deployment"][f"distillery-{stage}"].data
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in sel.items()), f"selector {sel} does not match the pods {labels}"

    def _autoscaling(self, by_kind: dict[str, dict[str, render.Obj]], stage: str, cfg: dict[str, Any],
                     merged: dict[str, Any]) -> None:
        name = f"distillery-{stage}"
        sv = merged["stages"][stage]
        mode = (sv.get("autoscaling") or {}).get("mode") or merged["autoscaling"]["mode"]
        so = by_kind.get("ScaledObject", {}).get(name)
        hpa = by_kind.get("HorizontalPodAutoscaler", {}).get(name)
        dep = by_kind["Deployment"][name].data
        kafka = cfg.get("kafka", {})
        partitions = kafka.get("partitions", 6)
        max_wanted = (sv.get("autoscaling") or {}).get("maxReplicas") or partitions
        if mode == "none":
            assert so is None and hpa is None, "autoscaler without autoscaling"
            assert dep["spec"].get("replicas") == sv.get("replicas", 1), "replicas not set"
            return
        assert "replicas" not in dep["spec"], "the Deployment sets replicas while an autoscaler owns them"
        rust = self.rust
        assert rust is not None
        if mode == "keda":
            assert so is not None and hpa is None, f"mode keda: ScaledObject {so is not None}, HPA {hpa is not None}"
            spec = so.data["spec"]
            assert spec["scaleTargetRef"]["name"] == name
            assert spec["maxReplicaCount"] == max_wanted, f"maxReplicaCount {spec['maxReplicaCount']}, want {max_wanted}"
            prefix = kafka.get("topic_prefix", "distillery.")
            want_topics = []
            for base in rust.stages()[stage]:
                want_topics.append(kafka["events_topic"] if base == "events" and kafka.get("events_topic") else prefix + base)
            got = [t["metadata"]["topic"] for t in spec["triggers"]]
            assert sorted(got) == sorted(want_topics), f"triggers on {got}, want {want_topics}"
            for t in spec["triggers"]:
                assert t["type"] == "kafka"
                md = t["metadata"]
                assert md["consumerGroup"] == kafka.get("group_prefix", "distillery-") + stage, f"group {md['consumerGroup']}"
                assert md["bootstrapServers"] == kafka.get("brokers", "127.0.0.1:9092")
                assert int(md["lagThreshold"]) >= 1
                auth = (t.get("authenticationRef") or {}).get("name")
                if auth:
                    assert auth in by_kind.get("TriggerAuthentication", {}) or \
                        auth == merged["autoscaling"]["keda"]["authentication"]["existingTriggerAuthentication"], f"no TriggerAuthentication {auth}"
        else:
            assert hpa is not None and so is None, f"mode hpa: HPA {hpa is not None}, ScaledObject {so is not None}"
            spec = hpa.data["spec"]
            assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
            assert spec["maxReplicas"] == max_wanted and spec["minReplicas"] >= 1
            (m,) = spec["metrics"]
            assert m["type"] == "External" and m["external"]["metric"]["name"] == "distillery_consumer_lag"
            assert m["external"]["metric"]["selector"]["matchLabels"] == {"stage": stage}

    # -- the HTTP API -------------------------------------------------------------------------------------------

    def _api_config(self, by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> dict[str, Any] | None:
        name = "distillery-api"
        api = merged["api"]
        if not api.get("enabled", True):
            for kind in ("ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject"):
                assert name not in by_kind.get(kind, {}), f"api.enabled=false but {kind}/{name} is rendered"
            return None
        cm = by_kind.get("ConfigMap", {}).get(name)
        assert cm is not None, "missing"
        text = cm.data.get("data", {}).get("config.toml")
        assert isinstance(text, str), "no config.toml key"
        cfg = tomllib.loads(text)
        rust = self.rust
        assert rust is not None
        want = set(rust.service_sections(API))
        assert want == {"ops", "llm", "tabular", "api"}, f"{API_STRUCT} now has {sorted(want)}: update the chart"
        # [api] (the dataset API) is there only when configured; the other three always are.
        assert {"ops", "llm", "tabular"} <= set(cfg) <= want, f"sections {sorted(cfg)}, want {sorted(want)}"
        assert "kafka" not in cfg and "runtime" not in cfg, "a [kafka] or [runtime] section would stop the API at startup"
        errors: list[str] = []
        check_value(rust, cfg, ("struct", API_STRUCT), "", errors)
        assert not errors, "\n".join(errors)
        tab = cfg["tabular"]
        own_dir = ((api.get("config") or {}).get("tabular") or {}).get("cache_dir") or \
            (merged["config"].get("tabular") or {}).get("cache_dir")
        want_dir = own_dir or api["schemaCache"]["mountPath"]
        assert tab.get("cache_dir") == want_dir, f"tabular.cache_dir {tab.get('cache_dir')!r}, want {want_dir!r}"
        assert tab.get("default_rows", 1000) <= tab.get("max_rows", 100_000_000), "tabular.default_rows > max_rows"
        return cfg

    def _api_deployment(self, by_kind: dict[str, dict[str, render.Obj]], cfg: dict[str, Any], merged: dict[str, Any]) -> None:
        name = "distillery-api"
        api = merged["api"]
        dep = by_kind.get("Deployment", {}).get(name)
        assert dep is not None, "missing"
        spec = dep.data["spec"]["template"]["spec"]
        (c,) = [c for c in spec["containers"] if c["name"] == API]
        assert c["command"] == ["distillery-api"], f"command {c['command']}"
        assert c["args"] == ["--config", "/etc/distillery/config.toml"], f"args {c['args']}"
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in spec["volumes"]}
        assert mounts["config"]["mountPath"] == "/etc/distillery", "config not mounted at /etc/distillery"
        assert vols["config"]["configMap"]["name"] == name, "config volume is not the API's ConfigMap"
        cache = mounts.get("schema-cache")
        assert cache is not None and cache["mountPath"] == api["schemaCache"]["mountPath"], "no schema-cache mount"
        assert "emptyDir" in vols["schema-cache"], "the schema cache is not an emptyDir"
        tab = cfg["tabular"]
        if not tab.get("no_cache"):
            d = tab["cache_dir"].rstrip("/") + "/"
            assert any(d.startswith(m["mountPath"].rstrip("/") + "/") for m in c["volumeMounts"] if not m.get("readOnly")), \
                f"tabular.cache_dir {tab['cache_dir']} is on the read-only root filesystem"
        listen = cfg.get("ops", {}).get("listen", "0.0.0.0:9100")
        port = int(listen.rsplit(":", 1)[1])
        ports = {p["name"]: p for p in c["ports"]}
        assert ports.get("metrics", {}).get("containerPort") == port, f"port metrics is not {port}"
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path and get["port"] == "metrics", f"{probe} is {get}"
        req = (c.get("resources") or {}).get("requests") or {}
        assert req.get("cpu"), "no CPU request (the HPA's utilization is relative to it)"
        sleep = api.get("preStopSleepSeconds") or 0
        if sleep:
            assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(sleep)], c.get("lifecycle")
        assert spec["terminationGracePeriodSeconds"] > sleep, "the grace period ends within the preStop pause"
        assert spec.get("enableServiceLinks") is False, "service links would inject variables"
        rust = self.rust
        assert rust is not None
        secret_name = merged["secrets"].get("name") or "distillery"
        names = [e["name"] for e in c.get("env", [])]
        bad = [n for n in names if n.startswith(("DISTILLERY__KAFKA__", "DISTILLERY__RUNTIME__"))]
        assert not bad, f"variables {bad} would make the API fail at startup (no such section)"
        for env in c.get("env", []):
            var = env["name"]
            if not var.startswith("DISTILLERY__"):
                continue
            kind = rust.resolve_env(API, var)
            if kind == ("secret",):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                assert ref and ref["name"] == secret_name and ref.get("optional") is True, f"{var} is not an optional secretKeyRef to {secret_name}"
        secret_vars = {e["name"] for e in c.get("env", []) if "secretKeyRef" in (e.get("valueFrom") or {})}
        want = {f"DISTILLERY__{sec.upper()}__{f.upper()}" for sec, struct in rust.service_sections(API).items()
                for f in rust.secret_fields(struct)}
        assert want == {"DISTILLERY__LLM__API_KEY", "DISTILLERY__API__TOKEN", "DISTILLERY__API__STORE"}, \
            f"{API_STRUCT}'s secrets are now {sorted(want)}"
        missing = want - secret_vars
        assert not missing, f"no variable for the secret fields {sorted(missing)}"

    @staticmethod
    def _api_service(by_kind: dict[str, dict[str, render.Obj]], cfg: dict[str, Any], merged: dict[str, Any]) -> None:
        name = "distillery-api"
        svc = by_kind.get("Service", {}).get(name)
        assert svc is not None, "missing"
        (p,) = svc.data["spec"]["ports"]
        assert p["name"] == "metrics" and p["targetPort"] == "metrics", f"port {p}"
        want = (merged["api"].get("service") or {}).get("port") or 9100
        assert p["port"] == want, f"Service port {p['port']}, want {want}"
        assert svc.data["spec"].get("type", "ClusterIP") == ((merged["api"].get("service") or {}).get("type") or "ClusterIP")
        sel = svc.data["spec"]["selector"]
        labels = by_kind["Deployment"][name].data["spec"]["template"]["metadata"]["labels"]
        assert sel.get("app.kubernetes.io/component") == API, f"selector {sel}"
        assert all(labels.get(k) == v for k, v in sel.items()), f"selector {sel} does not match the pods {labels}"
        for other, o in by_kind["Deployment"].items():
            if other != name:
                pod = o.data["spec"]["template"]["metadata"]["labels"]
                assert not all(pod.get(k) == v for k, v in sel.items()), f"the selector also matches {other}"

    @staticmethod
    def _api_autoscaling(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        name = "distillery-api"
        assert name not in by_kind.get("ScaledObject", {}), "a KEDA ScaledObject for the API (it consumes no topic)"
        for so in by_kind.get("ScaledObject", {}).values():
            target = so.data["spec"]["scaleTargetRef"]["name"]
            assert target != name, f"ScaledObject {so.name} targets the API"
        api = merged["api"]
        hpa = by_kind.get("HorizontalPodAutoscaler", {}).get(name)
        if not api.get("enabled", True):
            assert hpa is None
            return
        dep = by_kind["Deployment"][name].data
        a = api["autoscaling"]
        if not a.get("enabled"):
            assert hpa is None, "an HPA while api.autoscaling.enabled is false"
            assert dep["spec"].get("replicas") == api.get("replicas", 1), "replicas not set"
            return
        assert hpa is not None, "no HPA while api.autoscaling.enabled"
        assert "replicas" not in dep["spec"], "the Deployment sets replicas while the HPA owns them"
        spec = hpa.data["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert spec["minReplicas"] == a["minReplicas"] >= 1 and spec["maxReplicas"] == a["maxReplicas"], spec
        want = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": a["targetCPUUtilizationPercentage"]}}}]
        assert spec["metrics"] == want, f"metrics {spec['metrics']}, want CPU only: {want}"
        if a.get("behavior"):
            assert spec.get("behavior") == a["behavior"], "behavior not passed through"

    @staticmethod
    def _topics_job(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        job = by_kind.get("Job", {}).get("distillery-topics")
        if not merged["topicsJob"]["enabled"]:
            assert job is None
            return
        assert job is not None, "missing"
        ann = job.data["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade", ann
        kafka = merged["config"]["kafka"]
        (c,) = job.data["spec"]["template"]["spec"]["containers"]
        want = ["distillery", "topics", "--brokers", kafka["brokers"], "--prefix", kafka["topic_prefix"],
                "--partitions", str(kafka["partitions"]), "--replication-factor", str(kafka["replication_factor"])]
        assert c["command"] == want, f"{c['command']} != {want}"
        assert "serviceAccountName" not in job.data["spec"]["template"]["spec"], "a pre-install hook cannot use the release's ServiceAccount"

    @staticmethod
    def _monitoring(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        sm = by_kind.get("ServiceMonitor", {})
        if not merged["metrics"]["serviceMonitor"]["enabled"]:
            assert not sm, "ServiceMonitor while disabled"
        else:
            llm_mon = sm.get("distillery-llm")
            assert (llm_mon is not None) == bool(merged["llmServer"]["enabled"]), "the LLM server's ServiceMonitor"
            if llm_mon is not None:
                sel = llm_mon.data["spec"]["selector"]["matchLabels"]
                svc = by_kind["Service"]["distillery-llm"].data["metadata"]["labels"]
                assert all(svc.get(k) == v for k, v in sel.items()), "the LLM ServiceMonitor does not select its Service"
                stage_svcs = [s for n, s in by_kind["Service"].items() if n != "distillery-llm"]
                assert not any(all(s.data["metadata"]["labels"].get(k) == v for k, v in sel.items()) for s in stage_svcs)
                (ep,) = llm_mon.data["spec"]["endpoints"]
                assert ep["port"] == "http" and ep["path"] == "/metrics", ep
            (mon,) = [m for n, m in sm.items() if n != "distillery-llm"]
            sel = mon.data["spec"]["selector"]["matchLabels"]
            stage_svcs = [s for n, s in by_kind["Service"].items() if n != "distillery-llm"]
            for svc in stage_svcs:
                labels = svc.data["metadata"]["labels"]
                assert all(labels.get(k) == v for k, v in sel.items()), f"does not select {svc.name}"
            llm = by_kind["Service"].get("distillery-llm")
            if llm:
                assert not all(llm.data["metadata"]["labels"].get(k) == v for k, v in sel.items()), "selects the LLM server"
            (ep,) = mon.data["spec"]["endpoints"]
            assert ep["port"] == "metrics" and ep["path"] == "/metrics"
        for name, dep in by_kind["Deployment"].items():
            if name == "distillery-llm":
                continue
            ann = dep.data["spec"]["template"]["metadata"].get("annotations", {})
            if merged["metrics"]["podAnnotations"]:
                assert ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics", name

    @staticmethod
    def _llm(by_kind: dict[str, dict[str, render.Obj]], configs: dict[str, dict[str, Any]], merged: dict[str, Any]) -> None:
        l = merged["llmServer"]
        dep = by_kind.get("Deployment", {}).get("distillery-llm")
        if not l["enabled"]:
            assert dep is None and "distillery-llm" not in by_kind.get("Service", {})
            return
        assert dep is not None, "no LLM server Deployment"
        spec = dep.data["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        assert str(c["resources"]["limits"].get("nvidia.com/gpu")) == "1", "no nvidia.com/gpu limit"
        assert spec.get("nodeSelector"), "no nodeSelector"
        assert any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", [])), "no nvidia.com/gpu toleration"
        svc = by_kind["Service"]["distillery-llm"].data
        port = svc["spec"]["ports"][0]["port"]
        url = f"http://distillery-llm:{port}/v1"
        users = ["generate", "judge"] + ([API] if merged["api"].get("enabled", True) else [])
        for stage in users:
            values = merged["api"] if stage == API else merged["stages"][stage]
            own = ((values.get("config") or {}).get("llm") or {}).get("base_url")
            shared = (merged["config"].get("llm") or {}).get("base_url")
            want = own or shared or url
            assert stage in configs, f"no rendered configuration of {stage}"
            got = configs[stage]["llm"]["base_url"]
            assert got == want, f"{stage} llm.base_url is {got}, want {want}"
            if not (own or shared):
                want_model = ((values.get("config") or {}).get("llm") or {}).get("model") or l["servedModelName"]
                assert configs[stage]["llm"]["model"] == want_model, f"{stage} llm.model"
                want_conc = ((values.get("config") or {}).get("llm") or {}).get("max_concurrency") or l["parallel"]
                assert configs[stage]["llm"]["max_concurrency"] == want_conc, f"{stage} llm.max_concurrency"
        args = " ".join(c.get("command", []) + c.get("args", []))
        assert l["servedModelName"] in args and str(l["parallel"]) in args, f"server args {args}"

    @staticmethod
    def _prometheus_rule(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        pr = by_kind.get("PrometheusRule", {})
        cfg = merged["metrics"]["prometheusRule"]
        if not cfg["enabled"]:
            assert not pr, "a PrometheusRule while disabled"
            return
        (rule,) = pr.values()
        want = yaml.safe_load(ops.RULES.read_text())
        extra = cfg.get("additionalAlertLabels") or {}
        for g in want["groups"]:
            for r in g["rules"]:
                if "alert" in r and extra:
                    r["labels"] = {**extra, **r.get("labels", {})}
        assert rule.data["spec"] == want, "the PrometheusRule's groups differ from files/prometheus-rules.yaml"
        labels = rule.data["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in (cfg.get("labels") or {}).items()), f"labels {labels}"

    @staticmethod
    def _dashboard(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        cm = by_kind.get("ConfigMap", {}).get("distillery-dashboard")
        cfg = merged["metrics"]["grafanaDashboard"]
        if not cfg["enabled"]:
            assert cm is None, "a dashboard ConfigMap while disabled"
            return
        assert cm is not None, "no dashboard ConfigMap"
        assert json.loads(cm.data["data"]["distillery.json"]) == json.loads(ops.DASHBOARD.read_text()), \
            "the ConfigMap's dashboard differs from files/grafana-dashboard.json"
        labels = cm.data["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in (cfg.get("labels") or {}).items()), f"labels {labels}"

    @staticmethod
    def _pdbs(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        pdbs = by_kind.get("PodDisruptionBudget", {})
        if not merged["podDisruptionBudget"]["enabled"]:
            assert not pdbs, "PodDisruptionBudgets while disabled"
            return
        deployments = by_kind["Deployment"]
        for name, dep in deployments.items():
            if name == "distillery-llm":
                continue
            component = name.removeprefix("distillery-")
            spec = dep.data["spec"]
            if "replicas" in spec:
                most = spec["replicas"]
            else:
                scaler = by_kind.get("ScaledObject", {}).get(name) or by_kind.get("HorizontalPodAutoscaler", {}).get(name)
                assert scaler is not None, f"{name} has neither replicas nor an autoscaler"
                most = scaler.data["spec"].get("maxReplicaCount", scaler.data["spec"].get("maxReplicas"))
            pdb = pdbs.get(name)
            if most <= 1:
                assert pdb is None, f"{name} runs one pod at most but has a PodDisruptionBudget (it would block drains)"
                continue
            assert pdb is not None, f"{name} may run {most} pods but has no PodDisruptionBudget"
            sel = pdb.data["spec"]["selector"]["matchLabels"]
            assert sel.get("app.kubernetes.io/component") == component, f"{name}: selector {sel}"
            for other, o in deployments.items():
                pod = o.data["spec"]["template"]["metadata"]["labels"]
                assert all(pod.get(k) == v for k, v in sel.items()) == (other == name), f"{name}'s PDB vs {other}'s pods"
            assert pdb.data["spec"]["maxUnavailable"] == merged["podDisruptionBudget"]["maxUnavailable"]
        assert set(pdbs) <= set(deployments), f"PDBs without a Deployment: {sorted(set(pdbs) - set(deployments))}"

    def _kafka_topics(self, by_kind: dict[str, dict[str, render.Obj]], configs: dict[str, dict[str, Any]],
                      merged: dict[str, Any]) -> None:
        topics = by_kind.get("KafkaTopic", {})
        kt = merged["kafkaTopics"]
        if not kt["enabled"]:
            assert not topics, "KafkaTopics while disabled"
            return
        assert not by_kind.get("Job", {}).get("distillery-topics"), "the topics Job and KafkaTopics together"
        rust = self.rust
        assert rust is not None
        kafka = merged["config"].get("kafka") or {}
        prefix = kafka.get("topic_prefix", "distillery.")
        bases = list(rust.topics().values())
        want = {kafka["events_topic"] if b == "events" and kafka.get("events_topic") else prefix + b: b for b in bases}
        got = {o.data["spec"]["topicName"]: o for o in topics.values()}
        assert set(got) == set(want), f"KafkaTopics for {sorted(got)}, want {sorted(want)}"
        # Every topic a stage consumes or a service writes to is among them.
        for stage, cfg in configs.items():
            if stage == API:
                continue
            k = cfg.get("kafka") or {}
            for b in rust.stages()[stage]:
                name = k["events_topic"] if b == "events" and k.get("events_topic") else k.get("topic_prefix", "distillery.") + b
                assert name in got, f"{stage} consumes {name}, which has no KafkaTopic"
        for name, o in got.items():
            spec = o.data["spec"]
            own = (kt.get("topics") or {}).get(want[name]) or {}
            assert o.data["apiVersion"] == kt["apiVersion"]
            assert o.data["metadata"]["labels"]["strimzi.io/cluster"] == kt["clusterName"]
            assert spec["partitions"] == (own.get("partitions") or kt.get("partitions") or kafka.get("partitions", 6))
            replicas = own.get("replicas") or kt.get("replicas") or kafka.get("replication_factor", 1)
            assert spec["replicas"] == replicas, f"{name}: replicas {spec['replicas']}, want {replicas}"
            want_cfg = {**(kt.get("config") or {}), **(own.get("config") or {})}
            assert (spec.get("config") or {}) == want_cfg, f"{name}: config {spec.get('config')}, want {want_cfg}"
            isr = int((spec.get("config") or {}).get("min.insync.replicas", 1))
            assert isr <= spec["replicas"], f"{name}: min.insync.replicas {isr} > replicas {spec['replicas']}"

    @staticmethod
    def _minio_job(by_kind: dict[str, dict[str, render.Obj]], configs: dict[str, dict[str, Any]],
                   merged: dict[str, Any]) -> None:
        job = by_kind.get("Job", {}).get("distillery-minio-notify")
        m = merged["minioNotifications"]
        if not m["enabled"]:
            assert job is None and "distillery-minio-notify" not in by_kind.get("ConfigMap", {})
            return
        assert job is not None, "no Job"
        assert job.data["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
        cm = by_kind["ConfigMap"]["distillery-minio-notify"]
        assert cm.data["data"]["minio-notify.sh"] == ops.MINIO_SCRIPT.read_text().rstrip("\n"), "script differs from files/"
        pod = job.data["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["TARGET"]["value"] == m["target"]
        lines = env["BUCKETS"]["value"].split("\n")
        assert [ln.split("|")[0] for ln in lines] == [b["name"] for b in m["buckets"]]
        for var in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
            assert "secretKeyRef" in env[var]["valueFrom"], f"{var} is not from the Secret"
        ingest = configs["ingest"]
        if m["target"] == "kafka":
            k = ingest.get("kafka") or {}
            events = k.get("events_topic") or k.get("topic_prefix", "distillery.") + "events"
            assert env["KAFKA_TOPIC"]["value"] == events, f"MinIO publishes to {env['KAFKA_TOPIC']['value']}, ingest reads {events}"
            if m["kafka"]["sasl"]:
                assert "secretKeyRef" in env["KAFKA_SASL_PASSWORD"]["valueFrom"]
        else:
            svc = by_kind["Service"]["distillery-ingest"].data
            port = svc["spec"]["ports"][0]["port"]
            url = m["webhook"].get("endpoint") or f"http://distillery-ingest.distillery.svc:{port}/events"
            assert env["WEBHOOK_ENDPOINT"]["value"] == url, env["WEBHOOK_ENDPOINT"]
            assert (ingest.get("webhook") or {}).get("enabled", True), "ingest's webhook is off"
        mounts = {v["mountPath"] for v in c["volumeMounts"]}
        assert "/scripts" in mounts and c["command"] == ["/bin/sh", "/scripts/minio-notify.sh"]

    @staticmethod
    def _llm_autoscaling(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        lsrv = merged["llmServer"]
        so = by_kind.get("ScaledObject", {}).get("distillery-llm")
        if not (lsrv["enabled"] and lsrv["autoscaling"]["enabled"]):
            assert so is None, "an LLM ScaledObject without llmServer.autoscaling"
            if lsrv["enabled"]:
                assert by_kind["Deployment"]["distillery-llm"].data["spec"]["replicas"] == lsrv["replicas"]
            return
        a = lsrv["autoscaling"]
        assert so is not None, "no ScaledObject for the LLM server"
        assert "replicas" not in by_kind["Deployment"]["distillery-llm"].data["spec"], "fixed replicas while KEDA scales"
        spec = so.data["spec"]
        assert spec["scaleTargetRef"]["name"] == "distillery-llm"
        assert spec["minReplicaCount"] == a["minReplicas"] >= 1 and spec["maxReplicaCount"] == a["maxReplicas"]
        (trig,) = spec["triggers"]
        assert trig["type"] == "prometheus", trig
        md = trig["metadata"]
        assert md["serverAddress"] == a["prometheus"]["serverAddress"]
        assert md["threshold"] == str(a.get("targetQueueDepth") or lsrv["parallel"]), md
        if not a.get("query"):
            want = (["vllm:num_requests_running", "vllm:num_requests_waiting"] if lsrv["engine"] == "vllm"
                    else ["llamacpp:requests_processing", "llamacpp:requests_deferred"])
            for metric in want:
                assert f'{metric}{{namespace="distillery",service="distillery-llm"}}' in md["query"], md["query"]

    @staticmethod
    def _extra_volumes(by_kind: dict[str, dict[str, render.Obj]], merged: dict[str, Any]) -> None:
        vols = merged.get("extraVolumes") or []
        mounts = merged.get("extraVolumeMounts") or []
        for name, dep in by_kind["Deployment"].items():
            if name == "distillery-llm":
                continue
            spec = dep.data["spec"]["template"]["spec"]
            have = [v["name"] for v in spec["volumes"]]
            assert all(v["name"] in have for v in vols), f"{name} lacks extraVolumes"
            (c,) = spec["containers"]
            have_m = [(m["name"], m["mountPath"]) for m in c["volumeMounts"]]
            assert all((m["name"], m["mountPath"]) in have_m for m in mounts), f"{name} lacks extraVolumeMounts"

    @staticmethod
    def _no_leaks(objs: list[render.Obj], merged: dict[str, Any]) -> None:
        # Every value of secrets.create but user names (which also appear in kafka.properties, legitimately).
        values = [str(v) for k, v in (merged["secrets"].get("create") or {}).items()
                  if v not in (None, "") and "username" not in k]
        values = [v for v in values if len(v) >= 8]
        secrets = [o for o in objs if o.kind == "Secret"]
        if values:
            assert secrets, "secrets.create is set but no Secret was rendered"
            data = {k: base64.b64decode(v).decode() for s in secrets for k, v in (s.data.get("data") or {}).items()}
            for k, v in (merged["secrets"]["create"] or {}).items():
                if v not in (None, ""):
                    assert data.get(k) == str(v), f"Secret key {k} does not hold its value"
        for o in objs:
            if o.kind == "Secret":
                continue
            for v in values:
                assert v not in o.text, f"a secret value appears in {o.kind}/{o.name}"

    @staticmethod
    def _unique(objs: list[render.Obj]) -> None:
        seen: set[tuple[str, str]] = set()
        for o in objs:
            key = (o.kind, o.name)
            assert key not in seen, f"{o.kind}/{o.name} twice"
            seen.add(key)

    # -- files --------------------------------------------------------------------------------------------------

    def files(self) -> None:
        def lint_sources() -> None:
            yamllint(CHART / "Chart.yaml", CHART / "values.yaml", CHART / "values-production.yaml", TESTS / "values-all.yaml",
                     TESTS / "alerts.test.yaml", CHART / "files" / "prometheus-rules.yaml", *sorted(K8S.glob("*.yaml")))

        self.r.check("yamllint of Chart.yaml, values.yaml, values-production.yaml, values-all.yaml, the alert rules "
                     "and their tests, and k8s/", lint_sources)

        def plain_manifests() -> None:
            files = sorted(f for f in K8S.glob("*.yaml") if f.name != "kustomization.yaml")
            assert files, "no manifests in k8s/"
            exe = Path(sys.executable).parent / "kubernetes-validate"
            proc = subprocess.run([str(exe), "--strict", "-k", KUBE_VERSION, *map(str, files)],
                                  capture_output=True, text=True, check=False)
            lines = (proc.stdout + proc.stderr).splitlines()
            bad = [ln for ln in lines if not (ln.startswith("INFO") and "passed" in ln)]
            passed = [ln for ln in lines if ln.startswith("INFO") and "passed" in ln]
            assert not bad and len(passed) == len(files), "\n".join(bad) or f"{len(passed)} of {len(files)} passed"

        self.r.check(f"k8s/: kubernetes-validate --strict -k {KUBE_VERSION} of every plain manifest file", plain_manifests)

        def schema_is_json() -> None:
            json.loads((CHART / "values.schema.json").read_text())

        self.r.check("values.schema.json is JSON", schema_is_json)

        def values_documented() -> None:
            lines = (CHART / "values.yaml").read_text().splitlines()
            undocumented = []
            for i, line in enumerate(lines):
                m = re.match(r"^(\s*)([A-Za-z_][\w.-]*):", line)
                if not m or line.lstrip().startswith("-"):
                    continue
                prev = lines[i - 1].strip() if i else ""
                if not prev.startswith("#") and not self._inside_documented_map(lines, i):
                    undocumented.append(f"line {i + 1}: {line.strip()}")
            assert not undocumented, "keys without a comment above them:\n" + "\n".join(undocumented)

        self.r.check("values.yaml documents every key", values_documented)

        def in_sync() -> None:
            want = render.expected_k8s(CHART)
            have = {p.name: p.read_text() for p in K8S.glob("*.yaml")}
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            differ = sorted(n for n in set(want) & set(have) if want[n] != have[n])
            assert not (missing or extra or differ), (
                f"k8s/ is out of date (run k8s/render.sh): missing {missing or '-'}, stale {extra or '-'}, "
                f"different {differ or '-'}")

        self.r.check("k8s/ is in sync with the chart's default render (k8s/render.sh)", in_sync)

        def kustomization() -> None:
            k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
            assert k["kind"] == "Kustomization"
            for f in k["resources"]:
                assert (K8S / f).is_file(), f"{f} listed but absent"
            kinds = {yaml.safe_load((K8S / f).read_text())["kind"] for f in k["resources"]}
            assert {"Deployment", "ConfigMap", "Service"} <= kinds, kinds

        self.r.check("k8s/kustomization.yaml lists existing Deployments, ConfigMaps and Services", kustomization)

    @staticmethod
    def _inside_documented_map(lines: list[str], i: int) -> bool:
        """Keys nested in a documented map of plain data (resources, nodeSelector, secret env, ...) pass."""
        indent = len(lines[i]) - len(lines[i].lstrip())
        for j in range(i - 1, -1, -1):
            line = lines[j]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            ind = len(line) - len(line.lstrip())
            if ind < indent:
                key = line.strip().split(":")[0]
                plain = {"resources", "requests", "limits", "secretEnv", "env", "nodeSelector", "seccompProfile",
                         "capabilities", "scaleDown", "behavior", "podSecurityContext", "securityContext"}
                return key in plain and (j == 0 or lines[j - 1].strip().startswith("#") or
                                         Suite._inside_documented_map(lines, j))
        return False


def yamllint(*paths: Path, no_line_length: bool = False) -> None:
    exe = Path(sys.executable).parent / "yamllint"
    config = ["-c", str(TESTS / "yamllint.yaml")]
    if no_line_length:
        base = yaml.safe_load((TESTS / "yamllint.yaml").read_text())
        base["rules"]["line-length"] = "disable"
        config = ["-d", json.dumps(base)]
    proc = subprocess.run([str(exe), "-f", "parsable", *config, *map(str, paths)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    a = p.parse_args()
    results = Results(a.verbose)
    try:
        suite = Suite(results)
        suite.static()
        if suite.rust is not None:
            suite.observability()
            suite.lint_and_schema()
            vllm = copy.deepcopy(suite.values_all)
            render.deep_merge(vllm, {"llmServer": {"engine": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct"}})
            # The API with fixed replicas, its own port and LLM server, no cache, behind a NodePort.
            api_fixed = {"api": {"replicas": 2, "autoscaling": {"enabled": False}, "preStopSleepSeconds": 0,
                                 "config": {"ops": {"listen": "0.0.0.0:8080"},
                                            "llm": {"base_url": "http://llm.example:8000/v1", "model": "m"},
                                            "tabular": {"no_cache": True, "max_rows": 1000, "default_rows": 10}},
                                 "service": {"type": "NodePort", "port": 8080, "nodePort": 31910}}}
            with tempfile.TemporaryDirectory(prefix="distillery-helm-") as tmp:
                suite.scenario("defaults", {}, Path(tmp))
                suite.scenario("values-all", suite.values_all, Path(tmp))
                suite.scenario("values-all+vllm", vllm, Path(tmp))
                suite.scenario("api-fixed", api_fixed, Path(tmp))
                suite.scenario("production", suite.values_production, Path(tmp))
        suite.files()
    except Exception:  # noqa: BLE001 - a crash of the suite itself is one more failure
        results.fail("the test suite itself", traceback.format_exc())
    print(f"helm: {results.passed} passed, {results.failed} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
