//! Monitoring end to end: every pipeline stage and the HTTP API run as their own `distillery service`
//! processes against the suite's real servers (Kafka-protocol broker, S3, llama.cpp), and a real Prometheus
//! (the Debian package) scrapes them and the llama.cpp server, with the chart's alert rules
//! (helm/distillery/files/prometheus-rules.yaml) loaded, while a small document with contact details to redact
//! (two chunks), a blank one (rejected by extract), a garbage notification (dead-lettered by ingest) and a
//! synthetic-table request go through.
//!
//! Checked: Prometheus scrapes every service (`up`) and answers a query on a pipeline metric with what the
//! service itself reports; the garbage event fires the DistilleryDeadLetters alert; every rule evaluates
//! without error; every query of the Grafana dashboard
//! (helm/distillery/files/grafana-dashboard.json) and every rule reads only metric names that the running
//! binaries export (collected from their /metrics, not from a list), and every dashboard query runs in
//! Prometheus; every family the services export is documented in the README's Metrics table.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use distillery_core::codec::fixtures;
use distillery_core::{Draft, Message, Record, Role, Topic, ids};
use distillery_runtime::Publisher;
use distillery_store::ObjectStore;
use serde_json::Value;

const STAGES: [&str; 6] = ["ingest", "extract", "generate", "judge", "dedup", "sink"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A stage's configuration. The LLM timeout is long: the suite's llama.cpp server is shared and slow on a busy
/// machine, and a call that times out starts over.
fn service_config(stage: &str, scope: &Scope, servers: &Servers, port: u16) -> String {
    let mut c = scope.service_toml(servers, port);
    match stage {
        "ingest" => {
            c += &servers.s3_toml();
            c += &format!("[claims]\nbucket = \"{}\"\n[webhook]\nenabled = false\n", scope.bucket);
        }
        "extract" => c += &servers.s3_toml(),
        "generate" => {
            c += &format!(
                "[llm]\nbase_url = \"{}\"\nmodel = \"{}\"\nmax_tokens = 600\ntemperature = 0.5\ntimeout_secs = 1200\n",
                servers.llm, servers.llm_model
            );
            c += "[generate]\npairs_per_chunk = 2\n[generate.quality]\nmin_grounding = 0.3\n";
        }
        "judge" => {
            c += &format!(
                "[llm]\nbase_url = \"{}\"\nmodel = \"{}\"\nmax_tokens = 200\ntemperature = 0.1\ntimeout_secs = 1200\n",
                servers.llm, servers.llm_model
            );
            c += "[judge]\nthreshold = 3\nmax_attempts = 2\n";
        }
        "dedup" => c += &format!("[embedder]\nmodel_dir = \"{}\"\n", servers.embed_dir),
        "sink" => c += &format!("[output]\ndir = \"{}\"\nlinger_ms = 50\n", scope.path("dataset").display()),
        _ => unreachable!(),
    }
    c
}

/// A right, grounded question/answer pair about the FAQ (`faq` is its text, the draft's context).
fn sound_draft(faq: &[u8]) -> Draft {
    let mut d = fixtures::draft();
    let context = String::from_utf8_lossy(faq).into_owned();
    d.id = ids::hash_parts(&["prometheus-test-draft", &context]);
    d.document_id = ids::hash_parts(&["prometheus-test-document", &context]);
    d.chunk_id = ids::hash_parts(&["prometheus-test-chunk", &context]);
    d.context_id = d.chunk_id.clone();
    d.context_text = context;
    let mut q = Message::new(Role::User, "Which pipe diameters is the FM-400 made for?");
    q.chunk_ids = vec![d.chunk_id.clone()];
    let mut a = Message::new(Role::Assistant, "Closed pipes with a nominal diameter from DN50 to DN600.");
    a.chunk_ids = vec![d.chunk_id.clone()];
    d.messages = vec![q, a];
    d.reasoning = None;
    d.evidence = Some("closed pipes with a nominal diameter from\nDN50 to DN600".into());
    d.attempt = 1;
    d.parent_ids = vec![d.chunk_id.clone()];
    d.previous = None;
    d.superseded_by = None;
    d.batch = None;
    d
}

/// The API has no Kafka: [ops], [llm] and [tabular] only.
/// The API's bearer token in this test (the tables API spends LLM calls and is never served without one).
const API_TOKEN: &str = "prometheus-test-token";

/// The services' `RUST_LOG`: the LLM stages' and client's debug lines too.
const STALL_LOG: &str = "info,rdkafka=warn,distillery_generate=debug,distillery_judge=debug,distillery_llm=debug";

fn api_config(scope: &Scope, servers: &Servers, port: u16) -> String {
    format!(
        "[ops]\nlisten = \"127.0.0.1:{port}\"\n[api]\ntoken = \"{API_TOKEN}\"\n[llm]\nbase_url = \"{}\"\nmodel = \"{}\"\n\
         [tabular]\ncache_dir = \"{}\"\n",
        servers.llm,
        servers.llm_model,
        scope.path("schemas").display()
    )
}

/// `host:port` of the llama.cpp server from its OpenAI base URL (`http://127.0.0.1:18090/v1`).
fn llm_host(base_url: &str) -> String {
    let rest = base_url.split("://").nth(1).unwrap_or(base_url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A Prometheus server of this test's own, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(bin: &str, config: &Path, dir: &Path) -> Prometheus {
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("prometheus log"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        Prometheus { child, url: format!("http://127.0.0.1:{port}"), log }
    }

    async fn ready(&self, http: &reqwest::Client) {
        for _ in 0..300 {
            if http.get(format!("{}/-/ready", self.url)).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not become ready:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    /// An instant query: the `data.result` vector, or the error Prometheus gave.
    async fn query(&self, http: &reqwest::Client, q: &str) -> Result<Vec<Value>, String> {
        let resp = http
            .post(format!("{}/api/v1/query", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("query={}", form_encode(q)))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    async fn get(&self, http: &reqwest::Client, path: &str) -> Value {
        http.get(format!("{}{path}", self.url)).send().await.expect("prometheus").json().await.expect("JSON")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `application/x-www-form-urlencoded` encoding of a value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Metric families of a Prometheus text exposition: name -> type, from its `# TYPE` lines.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// The metric names an expression reads: `distillery_*` and `llamacpp:*` identifiers, the series of a
/// histogram (`_bucket`, `_sum`, `_count`) folded into its family.
fn metric_names(expr: &str, histograms: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &expr[i..];
        let starts = (rest.starts_with("distillery_") || rest.starts_with("llamacpp:"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':'));
        if starts {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            let name = &rest[..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|base| histograms.contains(*base)))
                .unwrap_or(name);
            out.insert(family.to_string());
            i += end;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// Grafana's variables, as the dashboard's queries use them.
fn grafana(expr: &str) -> String {
    [
        ("$__rate_interval", "1m"),
        ("$__range", "1h"),
        ("$__interval", "1m"),
        ("${stage}", ".*"),
        ("$stage", ".*"),
        ("${dataset}", ".*"),
        ("$dataset", ".*"),
    ]
    .iter()
    .fold(expr.to_string(), |e, (k, v)| e.replace(k, v))
}

/// (panel title, query) of every query of the dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = repo().join("helm/distillery/files/grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard")).expect("JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push((
                p["title"].as_str().unwrap_or_default().to_string(),
                t["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    assert!(out.len() >= 20, "the dashboard has {} queries", out.len());
    out
}

fn sample_value(v: &Value) -> f64 {
    v["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// Sum of a counter's samples in a text exposition whose labels include every `want` pair.
fn counter_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| want.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_the_running_services_and_every_dashboard_query_reads_what_they_export() {
    let servers = Servers::from_env();
    let prometheus_bin = std::env::var("DISTILLERY_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let scope = Scope::new("prom");
    let kafka = scope.kafka(&servers);
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    // The documents: a small one with contact details (which extract redacts) and a blank one.
    let s3 = distillery_store::S3Store::connect(&servers.s3_config()).await;
    s3.ensure_bucket(&scope.bucket).await.expect("bucket");
    let examples = repo().join("examples/docs");
    let mut faq = std::fs::read(examples.join("flowmeter-faq.txt")).expect("flowmeter-faq.txt");
    faq.extend_from_slice(
        b"\nQuestions about an order: write to orders@flowmeter-support.example or call +44 20 7946 0958.\n",
    );
    let docs: Vec<(String, Vec<u8>)> =
        vec![("flowmeter-faq.txt".into(), faq), ("blank.md".into(), b"\n   \n\n".to_vec())];
    for (key, bytes) in &docs {
        s3.put(&scope.bucket, &format!("inbox/{key}"), Bytes::from(bytes.clone()), "application/octet-stream")
            .await
            .expect("put");
    }

    // Every stage and the API as its own process.
    distillery_kafka::ensure_topics(&kafka, &Topic::ALL).await.expect("topics");
    let mut services: Vec<Service> = Vec::new();
    for stage in STAGES {
        let port = free_port();
        let cfg = scope.path(&format!("{stage}.toml"));
        std::fs::write(&cfg, service_config(stage, &scope, &servers, port)).unwrap();
        // Debug lines of the LLM stages: a stall (a chunk never turned into drafts) shows where it stopped.
        services.push(Service::start_logging(stage, &cfg, port, &logs, STALL_LOG));
    }
    let api_port = free_port();
    let api_cfg = scope.path("api.toml");
    std::fs::write(&api_cfg, api_config(&scope, &servers, api_port)).unwrap();
    services.push(Service::start("api", &api_cfg, api_port, &logs));

    // Prometheus scrapes them every second, and llama.cpp's own metrics, with the chart's rules.
    let rules = repo().join("helm/distillery/files/prometheus-rules.yaml").canonicalize().unwrap();
    let targets: Vec<String> = services.iter().map(|s| format!("'127.0.0.1:{}'", s.port)).collect();
    let prom_dir = scope.path("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom_cfg = prom_dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - '{}'\n\
             scrape_configs:\n  - job_name: distillery\n    static_configs:\n      - targets: [{}]\n\
             \x20 - job_name: llm\n    static_configs:\n      - targets: ['{}']\n",
            rules.display(),
            targets.join(", "),
            llm_host(&servers.llm)
        ),
    )
    .unwrap();
    let prometheus = Prometheus::start(&prometheus_bin, &prom_cfg, &prom_dir);
    prometheus.ready(&http).await;

    // The store's notifications as MinIO publishes them to Kafka, and one that is not.
    let publisher = distillery_kafka::KafkaPublisher::new(&kafka).expect("producer");
    for (i, (key, bytes)) in docs.iter().enumerate() {
        let object_key = format!("inbox/{key}");
        let event = minio_event(
            &scope.bucket,
            &object_key,
            bytes.len(),
            &format!("{:032x}", i + 1),
            &format!("17A0B0F1F2F3F4F{i}"),
        );
        publisher
            .publish_raw(Topic::Events, &format!("{}/{object_key}", scope.bucket), event.to_string().as_bytes())
            .await
            .expect("publish event");
    }
    publisher.publish_raw(Topic::Events, "garbage", b"{not an event").await.unwrap();
    // The judge's families appear with its first verdict. The small generator's drafts of this one document
    // can all fail generate's checks (then no draft reaches the judge and the judge exports none of them), so
    // a sound draft about the document is put on `drafts` too.
    publisher.publish(vec![Record::Draft(sound_draft(&docs[0].1))]).await.expect("publish a draft");

    // The garbage event fires the chart's DistilleryDeadLetters alert in this Prometheus.
    let mut fired = None;
    for _ in 0..120 {
        let alerts = prometheus.get(&http, "/api/v1/alerts").await;
        fired = alerts["data"]["alerts"].as_array().into_iter().flatten().find_map(|a| {
            let l = &a["labels"];
            (l["alertname"] == "DistilleryDeadLetters" && l["stage"] == "ingest" && l["kind"] == "bad_event")
                .then(|| a.clone())
        });
        if fired.as_ref().is_some_and(|a| a["state"] == "firing") {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let fired = fired.unwrap_or_else(|| panic!("DistilleryDeadLetters did not fire for the garbage event"));
    assert_eq!(fired["state"], "firing", "{fired}");
    assert_eq!(fired["labels"]["severity"], "warning");
    assert!(fired["annotations"]["summary"].as_str().is_some_and(|s| s.contains("ingest")), "{fired}");

    // A synthetic table from a given schema (no LLM call).
    let api = services.last().unwrap();
    let mut api_ready = false;
    for _ in 0..300 {
        if http.get(format!("http://127.0.0.1:{}/readyz", api.port)).send().await.is_ok_and(|r| r.status().is_success())
        {
            api_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api_ready, "the API did not become ready:\n{}", api.log_text());
    let schema = serde_json::json!({"name": "orders", "locale": "en", "columns": [
        {"name": "order_id", "kind": "id"},
        {"name": "quantity", "kind": "integer", "min": 1, "max": 10}]});
    let table = http
        .post(format!("http://127.0.0.1:{}/v1/tabular", api.port))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"schema": schema, "rows": 200, "format": "csv", "seed": 1}))
        .send()
        .await
        .expect("POST /v1/tabular");
    assert_eq!(table.status(), 200);
    assert_eq!(table.text().await.unwrap().lines().count(), 201, "a header and 200 rows");

    // What the dashboard and the rules read.
    let queries = dashboard_queries();
    let rules_text = std::fs::read_to_string(&rules).unwrap();

    // Run until the running binaries export every family those read (the judge's appear with its first
    // verdict, the LLM's with the first answer).
    let started = Instant::now();
    let deadline = Duration::from_secs(900);
    let (exported, texts) = loop {
        let mut exported: BTreeMap<String, String> = BTreeMap::new();
        let mut texts = Vec::new();
        for s in &services {
            let text = s.metrics().await;
            exported.extend(families(&text));
            texts.push((s.stage, text));
        }
        let llm_text = http
            .get(format!("http://{}/metrics", llm_host(&servers.llm)))
            .send()
            .await
            .expect("llama.cpp /metrics")
            .text()
            .await
            .unwrap_or_default();
        exported.extend(families(&llm_text));
        let histograms: BTreeSet<String> =
            exported.iter().filter(|(_, t)| *t == "histogram").map(|(n, _)| n.clone()).collect();
        let mut wanted = metric_names(&rules_text, &histograms);
        for (_, q) in &queries {
            wanted.extend(metric_names(q, &histograms));
        }
        let missing: Vec<&String> = wanted.iter().filter(|n| !exported.contains_key(*n)).collect();
        if missing.is_empty() {
            break (exported, texts);
        }
        if started.elapsed() > deadline {
            // What each process had done (its counters and gauges) and what the LLM server was doing.
            for (s, (_, text)) in services.iter().zip(&texts) {
                let samples: Vec<&str> = text
                    .lines()
                    .filter(|l| l.starts_with("distillery_") && !l.contains("_bucket{"))
                    .filter(|l| l.rsplit(' ').next().is_some_and(|v| v != "0"))
                    .collect();
                eprintln!(
                    "==== {} ====\n{}\n---- its non-zero samples ----\n{}",
                    s.stage,
                    s.log_text(),
                    samples.join("\n")
                );
            }
            let llm_samples: Vec<&str> = llm_text.lines().filter(|l| l.starts_with("llamacpp:")).collect();
            eprintln!("==== llama.cpp ====\n{}", llm_samples.join("\n"));
            panic!(
                "after {deadline:?} the services still export none of {missing:?} (they export {:?})",
                exported.keys().collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    let histograms: BTreeSet<String> =
        exported.iter().filter(|(_, t)| *t == "histogram").map(|(n, _)| n.clone()).collect();

    // Every service is a healthy scrape target.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let up = prometheus.query(&http, r#"up{job="distillery"}"#).await.expect("up");
    assert_eq!(up.len(), services.len(), "targets: {up:?}");
    assert!(up.iter().all(|s| sample_value(s) == 1.0), "a service is not scraped: {up:?}");
    let llm_up = prometheus.query(&http, r#"up{job="llm"}"#).await.expect("up");
    assert!(llm_up.len() == 1 && sample_value(&llm_up[0]) == 1.0, "llama.cpp is not scraped: {llm_up:?}");

    // A pipeline metric: the chunks extract published, as Prometheus has it, between what extract reported
    // before and after the query.
    let extract = services.iter().find(|s| s.stage == "extract").unwrap();
    let chunks = [("stage", "extract"), ("topic", "chunks")];
    let before = counter_sum(&extract.metrics().await, "distillery_records_out_total", &chunks);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answer = prometheus
        .query(&http, r#"sum(distillery_records_out_total{stage="extract",topic="chunks"})"#)
        .await
        .expect("query");
    let after = counter_sum(&extract.metrics().await, "distillery_records_out_total", &chunks);
    assert_eq!(answer.len(), 1, "{answer:?}");
    let in_prometheus = sample_value(&answer[0]);
    assert!(before >= 1.0, "extract published no chunk");
    assert!(
        before <= in_prometheus && in_prometheus <= after,
        "Prometheus says {in_prometheus}, extract {before}..{after}"
    );
    let verdicts = prometheus.query(&http, "sum(distillery_judge_verdicts_total)").await.expect("query");
    assert!(verdicts.len() == 1 && sample_value(&verdicts[0]) >= 1.0, "judge verdicts in Prometheus: {verdicts:?}");
    let dead = prometheus
        .query(&http, r#"sum(distillery_dead_letters_total{stage="ingest",kind="bad_event"})"#)
        .await
        .expect("query");
    assert!(dead.len() == 1 && sample_value(&dead[0]) == 1.0, "the garbage event: {dead:?}");

    // Every dashboard query reads exported names only, and runs.
    let mut with_data = 0;
    for (title, q) in &queries {
        let names = metric_names(q, &histograms);
        assert!(!names.is_empty(), "{title}: reads no metric: {q}");
        for n in &names {
            assert!(exported.contains_key(n), "{title}: {n} is not exported by the running services ({q})");
        }
        let result = prometheus.query(&http, &grafana(q)).await.unwrap_or_else(|e| panic!("{title}: {e}\n{q}"));
        if !result.is_empty() {
            with_data += 1;
        }
    }
    // Every rule reads exported names and evaluates without error.
    for n in metric_names(&rules_text, &histograms) {
        assert!(exported.contains_key(&n), "the rules read {n}, which the running services do not export");
    }
    let mut evaluated = false;
    for _ in 0..20 {
        let groups = prometheus.get(&http, "/api/v1/rules").await;
        let rules: Vec<&Value> = groups["data"]["groups"]
            .as_array()
            .expect("rule groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .collect();
        assert!(rules.len() >= 10, "rules loaded: {}", rules.len());
        for r in &rules {
            assert_eq!(r["health"], "ok", "rule {} failed: {}", r["name"], r["lastError"]);
        }
        if rules.iter().all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001"))) {
            evaluated = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(evaluated, "the rules were never evaluated");

    // Every family the services export is in the README's Metrics table.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme.split("\n## Metrics\n").nth(1).expect("README has a Metrics section");
    let section = section.split("\n## ").next().unwrap();
    for (stage, text) in &texts {
        for name in families(text).keys().filter(|n| n.starts_with("distillery_")) {
            assert!(
                section.contains(&format!("| `{name}` |")),
                "{stage} exports {name}, which the README does not document"
            );
        }
    }
    report(&format!(
        "prometheus: {} services scraped, {} families exported (llama.cpp included), {} of {} dashboard queries \
         with data after {:.0?}\n",
        services.len(),
        exported.len(),
        with_data,
        queries.len(),
        started.elapsed()
    ));
    drop(prometheus);
    for s in &mut services {
        let status = s.stop(90);
        assert!(status.is_some_and(|st| st.success()), "{} did not stop cleanly:\n{}", s.stage, s.log_text());
    }
}

#[test]
fn metric_names_fold_histogram_series_and_ignore_lookalikes() {
    let hist: BTreeSet<String> = ["distillery_llm_latency_seconds".to_string()].into();
    let names = metric_names(
        r#"histogram_quantile(0.9, sum by (le) (rate(distillery_llm_latency_seconds_bucket[5m])))
           / sum(llamacpp:requests_deferred) + distillery:rejection_ratio:1h + x_distillery_nope + distillery_a_total"#,
        &hist,
    );
    let want: BTreeSet<String> =
        ["distillery_llm_latency_seconds", "llamacpp:requests_deferred", "distillery_a_total"].map(String::from).into();
    assert_eq!(names, want);
    assert_eq!(grafana("rate(x{stage=~\"$stage\"}[$__rate_interval])"), "rate(x{stage=~\".*\"}[1m])");
    assert_eq!(llm_host("http://127.0.0.1:18090/v1"), "127.0.0.1:18090");
    assert_eq!(form_encode("sum(x{a=\"b c\"})"), "sum%28x%7Ba%3D%22b%20c%22%7D%29");
}
