{{/*
Names, labels, stage metadata, per-stage configuration and its TOML rendering.
*/}}

{{/* The chart name. */}}
{{- define "distillery.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-qualified name every object starts with. */}}
{{- define "distillery.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: dict "root" $ "component" "ingest". */}}
{{- define "distillery.componentName" -}}
{{- printf "%s-%s" (include "distillery.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "distillery.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "distillery.selectorLabels" -}}
app.kubernetes.io/name: {{ include "distillery.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "distillery.labels" -}}
helm.sh/chart: {{ include "distillery.chart" . }}
{{ include "distillery.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: distillery
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* dict "root" $ "component" NAME */}}
{{- define "distillery.componentSelectorLabels" -}}
{{ include "distillery.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "distillery.componentLabels" -}}
{{ include "distillery.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "distillery.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "distillery.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the pods read their secret settings from. */}}
{{- define "distillery.secretName" -}}
{{- default (include "distillery.fullname" .) .Values.secrets.name -}}
{{- end -}}

{{- define "distillery.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The deployable stages, in pipeline order: the Kafka services. */}}
{{- define "distillery.stageNames" -}}
ingest extract generate judge dedup sink
{{- end -}}

{{/*
Every deployable service with a ConfigMap, a Deployment and a Service: the stages, then the HTTP API
(values under `api`, not `stages`: it has no Kafka, so no consumer group, no lag to scale on, no drain).
*/}}
{{- define "distillery.serviceNames" -}}
{{- include "distillery.stageNames" . }} api
{{- end -}}

{{/*
What the chart knows of each service, mirroring the Rust code:
  sections: the top-level tables of its configuration struct (`service_config!` in
            services/<stage>/src/service.rs: kafka, runtime and ops from the macro in
            crates/distillery-kafka/src/service.rs, plus the stage's own);
  inputs:   the topics the stage consumes (`Stage::inputs` in services/<stage>/src/lib.rs), as base names.
helm/tests/check.py compares this (and distillery.secretFields) with the Rust source.
*/}}
{{- define "distillery.stageMeta" -}}
ingest:
  sections: [kafka, runtime, ops, s3, ingest, claims, webhook, scan]
  inputs: [events]
extract:
  sections: [kafka, runtime, ops, s3, extract, claims]
  inputs: [documents]
generate:
  sections: [kafka, runtime, ops, llm, generate, embedder, store]
  inputs: [chunks, regenerate]
judge:
  sections: [kafka, runtime, ops, llm, judge, store]
  inputs: [drafts]
dedup:
  sections: [kafka, runtime, ops, dedup, embedder, vectors]
  inputs: [judged]
sink:
  sections: [kafka, runtime, ops, s3, output, sink, claims, store]
  inputs: [accepted, rejected, dead-letter, documents]
{{- end -}}

{{/*
The HTTP API (`distillery-api`, ApiServiceConfig in services/api/src/tabular.rs): the top-level tables
of its configuration. No [kafka] and no [runtime]: the service rejects unknown sections.
helm/tests/check.py compares this with the Rust struct.
*/}}
{{- define "distillery.apiMeta" -}}
sections: [ops, llm, tabular, api]
inputs: []
{{- end -}}

{{/* stageMeta plus the API under the name "api". */}}
{{- define "distillery.serviceMeta" -}}
{{- $m := include "distillery.stageMeta" . | fromYaml -}}
{{- $_ := set $m "api" (include "distillery.apiMeta" . | fromYaml) -}}
{{- toYaml $m -}}
{{- end -}}

{{/* A service's values: dict "root" $ "stage" NAME -> `stages.<stage>`, or `api` for the API (as JSON). */}}
{{- define "distillery.serviceValues" -}}
{{- if eq .stage "api" -}}
{{- toJson (.root.Values.api | default dict) -}}
{{- else -}}
{{- toJson (get .root.Values.stages .stage | default dict) -}}
{{- end -}}
{{- end -}}

{{/* Where a service's values live, for messages: stages.<stage> or api. */}}
{{- define "distillery.valuesPath" -}}
{{- eq . "api" | ternary "api" (printf "stages.%s" .) -}}
{{- end -}}

{{/* Fields typed `Secret` in the Rust configuration: they come from the Kubernetes Secret, never the ConfigMap. */}}
{{- define "distillery.secretFields" -}}
kafka: [sasl_password]
s3: [secret_access_key]
llm: [api_key]
embedder: [api_key]
vectors: [qdrant_api_key]
webhook: [token]
store: [url]
api: [token, store]
{{- end -}}

{{/* Every section any service accepts. */}}
{{- define "distillery.allSections" -}}
{{- $all := list -}}
{{- range $stage, $m := include "distillery.serviceMeta" . | fromYaml -}}
{{- range $m.sections -}}
{{- $all = append $all . -}}
{{- end -}}
{{- end -}}
{{- $all | uniq | sortAlpha | join " " -}}
{{- end -}}

{{/* The in-chart LLM server's OpenAI-compatible base URL. */}}
{{- define "distillery.llmServerUrl" -}}
{{- printf "http://%s:%d/v1" (include "distillery.componentName" (dict "root" . "component" "llm")) (int .Values.llmServer.service.port) -}}
{{- end -}}

{{/*
One service's configuration as JSON: the shared `config` deep-merged with `stages.<stage>.config` (`api.config`
for the API), the in-chart LLM server filled in where the [llm] section leaves it open, the API's schema cache
directory, and only the sections the service accepts.
Args: dict "root" $ "stage" NAME (a stage or "api").
*/}}
{{- define "distillery.stageConfig" -}}
{{- $root := .root -}}
{{- $stage := .stage -}}
{{- $meta := get (include "distillery.serviceMeta" $root | fromYaml) $stage -}}
{{- $values := include "distillery.serviceValues" . | fromJson -}}
{{- $allSections := splitList " " (include "distillery.allSections" $root) -}}
{{- range $k, $_ := ($root.Values.config | default dict) -}}
{{- if not (has $k $allSections) -}}
{{- fail (printf "config.%s: no Distillery service has a [%s] section (known: %s)" $k $k (join ", " $allSections)) -}}
{{- end -}}
{{- end -}}
{{- range $k, $_ := ($values.config | default dict) -}}
{{- if not (has $k $meta.sections) -}}
{{- fail (printf "%s.config.%s: the %s service has no [%s] section (it has %s)" (include "distillery.valuesPath" $stage) $k $stage $k (join ", " $meta.sections)) -}}
{{- end -}}
{{- end -}}
{{- $merged := mergeOverwrite (deepCopy ($root.Values.config | default dict)) (deepCopy ($values.config | default dict)) -}}
{{- range $section, $fields := include "distillery.secretFields" $root | fromYaml -}}
{{- $t := get $merged $section -}}
{{- if kindIs "map" $t -}}
{{- range $fields -}}
{{- if hasKey $t . -}}
{{- fail (printf "%s.%s is a secret: put it in the Secret %q (see `secrets` in values.yaml), not in the configuration of %s" $section . (include "distillery.secretName" $root) $stage) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $kafka := get $merged "kafka" -}}
{{- if and (kindIs "map" $kafka) (kindIs "map" (get $kafka "properties")) -}}
{{- range $k, $_ := get $kafka "properties" -}}
{{- if regexMatch "(?i)(password|secret|key\\.pem|keystore)" $k -}}
{{- fail (printf "kafka.properties.%s looks like a secret: pass the SASL password as the kafka-sasl-password Secret key (DISTILLERY__KAFKA__SASL_PASSWORD) instead" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (has "llm" $meta.sections) $root.Values.llmServer.enabled -}}
{{- $llm := get $merged "llm" | default dict -}}
{{- if not (hasKey $llm "base_url") -}}
{{- $_ := set $llm "base_url" (include "distillery.llmServerUrl" $root) -}}
{{- end -}}
{{- if not (hasKey $llm "model") -}}
{{- $_ := set $llm "model" $root.Values.llmServer.servedModelName -}}
{{- end -}}
{{- if not (hasKey $llm "max_concurrency") -}}
{{- $_ := set $llm "max_concurrency" $root.Values.llmServer.parallel -}}
{{- end -}}
{{- $_ := set $merged "llm" $llm -}}
{{- end -}}
{{- if eq $stage "api" -}}
{{- $tabular := get $merged "tabular" | default dict -}}
{{- if not (hasKey $tabular "cache_dir") -}}
{{- $_ := set $tabular "cache_dir" (include "distillery.apiCacheDir" $root) -}}
{{- end -}}
{{- $_ := set $merged "tabular" $tabular -}}
{{- end -}}
{{- if eq $stage "sink" -}}
{{- $output := get $merged "output" | default dict -}}
{{- if eq (empty (get $output "dir")) (empty (get $output "bucket")) -}}
{{- fail "sink: set exactly one of output.dir and output.bucket (stages.sink.config.output)" -}}
{{- end -}}
{{- end -}}
{{- $out := dict -}}
{{- range $meta.sections -}}
{{- if hasKey $merged . -}}
{{- $_ := set $out . (get $merged .) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* A TOML key: bare when it can be, else quoted. */}}
{{- define "distillery.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}
{{- . -}}
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end -}}

{{/*
A TOML value. Helm reads every YAML number as a float, so integral numbers are written as integers (Rust's
integer fields reject `6.0`; its float fields accept `6`).
*/}}
{{- define "distillery.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{- toJson $v -}}
{{- else if kindIs "bool" $v -}}
{{- ternary "true" "false" $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if and (lt (float64 $v) 9.0e15) (gt (float64 $v) -9.0e15) (eq (float64 (int64 $v)) (float64 $v)) -}}
{{- int64 $v -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}
{{- $v -}}
{{- else if kindIs "slice" $v -}}
{{- $items := list -}}
{{- range $v -}}
{{- $items = append $items (include "distillery.tomlValue" .) -}}
{{- end -}}
{{- printf "[%s]" (join ", " $items) -}}
{{- else if kindIs "map" $v -}}
{{- $items := list -}}
{{- range $k := keys $v | sortAlpha -}}
{{- $e := get $v $k -}}
{{- if not (kindIs "invalid" $e) -}}
{{- $items = append $items (printf "%s = %s" (include "distillery.tomlKey" $k) (include "distillery.tomlValue" $e)) -}}
{{- end -}}
{{- end -}}
{{- printf "{ %s }" (join ", " $items) -}}
{{- else -}}
{{- fail (printf "cannot write %v (%s) as TOML" $v (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{/*
A TOML table and its sub-tables: dict "path" (list "runtime") "table" MAP. Scalars and arrays go under the
table's header, maps become sub-tables, null values are left out (the service's default applies).
*/}}
{{- define "distillery.tomlTable" -}}
{{- $path := .path -}}
{{- $t := .table -}}
{{- $header := list -}}
{{- range $path -}}
{{- $header = append $header (include "distillery.tomlKey" .) -}}
{{- end -}}
{{- $lines := list -}}
{{- $subtables := list -}}
{{- range $k := keys $t | sortAlpha -}}
{{- $v := get $t $k -}}
{{- if kindIs "map" $v -}}
{{- $subtables = append $subtables $k -}}
{{- else if not (kindIs "invalid" $v) -}}
{{- $lines = append $lines (printf "%s = %s" (include "distillery.tomlKey" $k) (include "distillery.tomlValue" $v)) -}}
{{- end -}}
{{- end -}}
{{- if $lines -}}
{{- printf "[%s]\n%s\n\n" (join "." $header) (join "\n" $lines) -}}
{{- end -}}
{{- range $subtables -}}
{{- include "distillery.tomlTable" (dict "path" (append $path .) "table" (get $t .)) -}}
{{- end -}}
{{- end -}}

{{/* One service's config.toml: dict "root" $ "stage" NAME. */}}
{{- define "distillery.configToml" -}}
{{- $cfg := include "distillery.stageConfig" . | fromJson -}}
{{- $meta := get (include "distillery.serviceMeta" .root | fromYaml) .stage -}}
{{- printf "# The %s service's configuration, rendered by the distillery Helm chart from its values.\n" .stage -}}
{{- printf "# Secrets come from DISTILLERY__SECTION__FIELD variables (Secret %s), never from this file.\n\n" (include "distillery.secretName" .root) -}}
{{- range $meta.sections -}}
{{- $t := get $cfg . -}}
{{- if kindIs "map" $t -}}
{{- include "distillery.tomlTable" (dict "path" (list .) "table" $t) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Every pipeline topic's base name, in `Topic::ALL` order (crates/distillery-core/src/topic.rs; helm/tests/check.py
compares the two): the topics Job and the Strimzi KafkaTopics create these.
*/}}
{{- define "distillery.topicBases" -}}
events documents chunks drafts judged accepted rejected regenerate dead-letter
{{- end -}}

{{/* A Kafka topic's name for a stage's configuration: dict "cfg" CONFIG "base" BASE. */}}
{{- define "distillery.topicName" -}}
{{- $kafka := get .cfg "kafka" | default dict -}}
{{- if and (eq .base "events") (get $kafka "events_topic") -}}
{{- get $kafka "events_topic" -}}
{{- else -}}
{{- printf "%s%s" (hasKey $kafka "topic_prefix" | ternary (get $kafka "topic_prefix") "distillery.") .base -}}
{{- end -}}
{{- end -}}

{{/* The Kafka fields the chart itself needs (defaults as in KafkaConfig::default), from CONFIG. */}}
{{- define "distillery.kafkaFacts" -}}
{{- $kafka := get . "kafka" | default dict -}}
brokers: {{ hasKey $kafka "brokers" | ternary (get $kafka "brokers") "127.0.0.1:9092" | quote }}
topicPrefix: {{ hasKey $kafka "topic_prefix" | ternary (get $kafka "topic_prefix") "distillery." | quote }}
groupPrefix: {{ hasKey $kafka "group_prefix" | ternary (get $kafka "group_prefix") "distillery-" | quote }}
partitions: {{ hasKey $kafka "partitions" | ternary (get $kafka "partitions") 6 | int }}
replicationFactor: {{ hasKey $kafka "replication_factor" | ternary (get $kafka "replication_factor") 1 | int }}
{{- end -}}

{{/* The ops endpoint's port, from CONFIG (`ops.listen`, default 0.0.0.0:9100). */}}
{{- define "distillery.opsPort" -}}
{{- $ops := get . "ops" | default dict -}}
{{- $listen := hasKey $ops "listen" | ternary (get $ops "listen") "0.0.0.0:9100" -}}
{{- splitList ":" $listen | last | int -}}
{{- end -}}

{{/* How long a stage drains on SIGTERM, from CONFIG (`runtime.drain_timeout_secs`, default 60). */}}
{{- define "distillery.drainSecs" -}}
{{- $runtime := get . "runtime" | default dict -}}
{{- hasKey $runtime "drain_timeout_secs" | ternary (get $runtime "drain_timeout_secs") 60 | int -}}
{{- end -}}

{{/*
A stage's scaling: dict "root" $ "stage" NAME -> YAML with mode (none, keda or hpa), replicas, minReplicas,
maxReplicas (default: the topics' partition count) and lagThreshold. Fails on settings the service cannot run
with (state kept in one process while more than one replica may run).
*/}}
{{- define "distillery.scaling" -}}
{{- $root := .root -}}
{{- $stage := .stage -}}
{{- $s := get $root.Values.stages $stage -}}
{{- $cfg := include "distillery.stageConfig" . | fromJson -}}
{{- $kafka := include "distillery.kafkaFacts" $cfg | fromYaml -}}
{{- $as := $s.autoscaling | default dict -}}
{{- $mode := default $root.Values.autoscaling.mode $as.mode -}}
{{- if not (has $mode (list "none" "keda" "hpa")) -}}
{{- fail (printf "stages.%s.autoscaling.mode must be none, keda or hpa (got %s)" $stage $mode) -}}
{{- end -}}
{{- $min := hasKey $as "minReplicas" | ternary $as.minReplicas 1 | int -}}
{{- $max := (and (hasKey $as "maxReplicas") (not (kindIs "invalid" $as.maxReplicas))) | ternary $as.maxReplicas $kafka.partitions | int -}}
{{- if and (eq $mode "hpa") (lt $min 1) -}}
{{- fail (printf "stages.%s.autoscaling.minReplicas must be >= 1 with an HPA (scale to zero needs KEDA)" $stage) -}}
{{- end -}}
{{- if lt $max (max $min 1 | int) -}}
{{- fail (printf "stages.%s.autoscaling.maxReplicas (%d) must be >= minReplicas (%d) and >= 1" $stage $max $min) -}}
{{- end -}}
{{- $replicas := int (default 1 $s.replicas) -}}
{{- if hasKey $s "replicas" -}}{{- $replicas = int $s.replicas -}}{{- end -}}
{{- $most := eq $mode "none" | ternary $replicas $max | int -}}
{{- if gt $most 1 -}}
{{- if eq $stage "ingest" -}}
{{- if not (get (get $cfg "claims" | default dict) "bucket") -}}
{{- fail "ingest: more than one replica needs claims.bucket (content claims kept in memory only work in one process)" -}}
{{- end -}}
{{- end -}}
{{- if eq $stage "dedup" -}}
{{- if not (get (get $cfg "vectors" | default dict) "qdrant_url") -}}
{{- fail "dedup: more than one replica needs vectors.qdrant_url (the in-memory vector index is per process)" -}}
{{- end -}}
{{- end -}}
{{- if eq $stage "sink" -}}
{{- if get (get $cfg "output" | default dict) "dir" -}}
{{- fail "sink: more than one replica needs output.bucket (replicas write part objects side by side); output.dir is for one replica" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq $stage "ingest") (ne $mode "none") (lt $min 1) -}}
{{- $webhook := get $cfg "webhook" | default dict -}}
{{- if or (not (hasKey $webhook "enabled")) (get $webhook "enabled") -}}
{{- fail "ingest: autoscaling.minReplicas must be >= 1 while the webhook is enabled (nothing would answer POST /events at zero replicas)" -}}
{{- end -}}
{{- end -}}
mode: {{ $mode }}
replicas: {{ $replicas }}
minReplicas: {{ $min }}
maxReplicas: {{ $max }}
lagThreshold: {{ hasKey $as "lagThreshold" | ternary $as.lagThreshold 100 | int }}
{{- end -}}

{{/* Where the API's schema cache volume (an emptyDir) is mounted; tabular.cache_dir defaults to it. */}}
{{- define "distillery.apiCacheDir" -}}
{{- (.Values.api.schemaCache | default dict).mountPath | default "/var/cache/distillery/schemas" -}}
{{- end -}}

{{/*
The API's scaling -> YAML with mode (none or hpa), replicas, minReplicas, maxReplicas and
targetCPUUtilizationPercentage. It scales on CPU (an autoscaling/v2 HPA on the pods' CPU requests): table
generation is CPU-bound, and the API consumes no Kafka topic, so there is no lag to scale on and no KEDA.
*/}}
{{- define "distillery.apiScaling" -}}
{{- $a := .Values.api -}}
{{- $as := $a.autoscaling | default dict -}}
{{- $min := hasKey $as "minReplicas" | ternary $as.minReplicas 1 | int -}}
{{- $max := hasKey $as "maxReplicas" | ternary $as.maxReplicas 4 | int -}}
{{- if $as.enabled -}}
{{- if lt $min 1 -}}
{{- fail "api.autoscaling.minReplicas must be >= 1 (a CPU-based HPA cannot scale to zero)" -}}
{{- end -}}
{{- if lt $max $min -}}
{{- fail (printf "api.autoscaling.maxReplicas (%d) must be >= minReplicas (%d)" $max $min) -}}
{{- end -}}
{{- if not (get (get ($a.resources | default dict) "requests" | default dict) "cpu") -}}
{{- fail "api.autoscaling needs api.resources.requests.cpu (the HPA's utilization is relative to it)" -}}
{{- end -}}
{{- end -}}
mode: {{ $as.enabled | ternary "hpa" "none" }}
replicas: {{ hasKey $a "replicas" | ternary $a.replicas 1 | int }}
minReplicas: {{ $min }}
maxReplicas: {{ $max }}
targetCPUUtilizationPercentage: {{ hasKey $as "targetCPUUtilizationPercentage" | ternary $as.targetCPUUtilizationPercentage 70 | int }}
{{- end -}}

{{/*
A service's secret variables: dict "root" $ "stage" NAME -> JSON {VARIABLE: Secret key}. `secrets.env` (every
service) keeps only the variables of sections the service has: the API has no [kafka], and a
DISTILLERY__KAFKA__* variable would make it fail at startup (unknown section). The service's own `secretEnv`
wins and must name its sections.
*/}}
{{- define "distillery.secretEnv" -}}
{{- $meta := get (include "distillery.serviceMeta" .root | fromYaml) .stage -}}
{{- $values := include "distillery.serviceValues" . | fromJson -}}
{{- $out := dict -}}
{{- range $name, $key := (.root.Values.secrets.env | default dict) -}}
{{- $section := regexReplaceAll "^DISTILLERY__([A-Za-z0-9_]+?)__.*$" $name "${1}" | lower -}}
{{- if or (not (hasPrefix "DISTILLERY__" $name)) (has $section $meta.sections) -}}
{{- $_ := set $out $name $key -}}
{{- end -}}
{{- end -}}
{{- range $name, $key := ($values.secretEnv | default dict) -}}
{{- if hasPrefix "DISTILLERY__" $name -}}
{{- $section := regexReplaceAll "^DISTILLERY__([A-Za-z0-9_]+?)__.*$" $name "${1}" | lower -}}
{{- if not (has $section $meta.sections) -}}
{{- fail (printf "%s.secretEnv.%s: the %s service has no [%s] section (it has %s); it would refuse to start" (include "distillery.valuesPath" $.stage) $name $.stage $section (join ", " $meta.sections)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out $name $key -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
