//! The chaos suite (issue 14): the pipeline under faults, against real servers, with an oracle.
//!
//! Every stage runs as its own `distillery service` process against servers of this test's own: a tansu
//! broker started here (behind a TCP proxy: see [`Broker`]), the suite's Ceph RGW and llama.cpp reached through
//! proxies this test controls (a TCP proxy that can refuse every connection: "the server is down"; an HTTP
//! proxy in front of llama.cpp that counts calls and can answer 429), and a PostgreSQL database of its own
//! for the sink's dataset store. The shared servers themselves are never stopped.
//!
//! Scenario after scenario a small batch of documents goes in and one fault hits mid-batch: kill -9 of each
//! service in turn (restarted at once), the broker unreachable for 20 s, the S3 server and the LLM server down for two
//! minutes each, a 429 storm, a full disk under the sink (a tmpfs), two replicas of generate with a scale step up
//! and down. Then the oracle: every document of the batch ends in chunks or a rejection; every chunk in
//! drafts or a rejection; every draft accepted, rejected with a reason, regenerated (and its regeneration
//! ended) or dead-lettered; and every outcome exactly once in each file and export. The embedded run is
//! interrupted (SIGINT) and killed (SIGKILL) mid-run and run again, under the same oracle.
//!
//! Outages last two minutes, as the issue asks: far past the LLM client's own retries (~15 s, what used to
//! dead-letter the backlog), so the circuit breaker opens after 3 transient failures in a row, probes at 1,
//! 2, 4, 8 then every 10 s through the outage, and resumes when the dependency answers.
//!
//! Printed per scenario (and collected into the suite's figures): records in, accepted, rejected,
//! dead-lettered, duplicates (must be 0), lost (must be 0), LLM calls repeated (the same request body
//! answered twice: work done again after a crash; no correctness claim, a cost).

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::{Broker, TcpProxy};
use bytes::Bytes;
use common::*;
use distillery_core::{Codec, Record, Topic};
use distillery_store::ObjectStore;
use tokio::net::TcpListener;

/// How long the S3 server and the LLM server stay down.
const OUTAGE: Duration = Duration::from_secs(120);

/// How long a scenario may take, from its notifications to its last outcome (the longest, an outage, takes
/// about 250 s here): past it the scenario is reported timed out with the services' last warnings, and
/// every service is restarted so the next scenario starts clean.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

const STAGES: [&str; 6] = ["ingest", "extract", "generate", "judge", "dedup", "sink"];

// ---------------------------------------------------------------------------------------------------------
// The LLM proxy (the TCP proxy and the broker: common/broker.rs)

/// What the LLM proxy does with a chat call.
const PASS: u8 = 0;
const RATE_LIMIT: u8 = 1;

/// An HTTP proxy in front of llama.cpp: forwards every request, remembers the body of every answered chat
/// call (by scenario), and answers 429 (Retry-After: 2) while in rate-limit mode.
struct LlmProxy {
    upstream: String,
    client: reqwest::Client,
    mode: AtomicU8,
    scenario: Mutex<String>,
    /// (scenario, body hash) of every chat call answered 200.
    answered: Mutex<Vec<(String, u64)>>,
    limited: std::sync::atomic::AtomicU64,
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

async fn llm_forward(
    axum::extract::State(p): axum::extract::State<Arc<LlmProxy>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let call = parts.method == axum::http::Method::POST && path.contains("chat/completions");
    if call && p.mode.load(Ordering::SeqCst) == RATE_LIMIT {
        p.limited.fetch_add(1, Ordering::SeqCst);
        return (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")], "slow down").into_response();
    }
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("method");
    let mut up = p.client.request(method, format!("{}{path}", p.upstream)).body(body.to_vec());
    if let Some(ct) = parts.headers.get("content-type").and_then(|v| v.to_str().ok()) {
        up = up.header("content-type", ct);
    }
    let result = async {
        let resp = up.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    }
    .await;
    match result {
        Ok((status, bytes)) => {
            if call && status == 200 {
                let scenario = p.scenario.lock().unwrap().clone();
                p.answered.lock().unwrap().push((scenario, hash(&body)));
            }
            let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

impl LlmProxy {
    /// Starts the counting proxy in front of `upstream` (the server's root); returns it and its address.
    async fn start(upstream: String) -> (Arc<LlmProxy>, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Arc::new(LlmProxy {
            upstream,
            client: reqwest::Client::builder().timeout(Duration::from_secs(900)).build().unwrap(),
            mode: AtomicU8::new(PASS),
            scenario: Mutex::new(String::new()),
            answered: Mutex::new(Vec::new()),
            limited: Default::default(),
        });
        let app = axum::Router::new().fallback(llm_forward).with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (proxy, addr)
    }

    /// Calls of `scenario` answered with a body already answered before (in any scenario).
    fn repeated(&self, scenario: &str) -> usize {
        let answered = self.answered.lock().unwrap();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut repeated = 0;
        for (s, h) in answered.iter() {
            if !seen.insert(*h) && s == scenario {
                repeated += 1;
            }
        }
        repeated
    }

    fn calls(&self, scenario: &str) -> usize {
        self.answered.lock().unwrap().iter().filter(|(s, _)| s == scenario).count()
    }
}

// ---------------------------------------------------------------------------------------------------------
// The pipeline

struct Pipeline {
    servers: Servers,
    scope: Scope,
    kafka: distillery_kafka::KafkaConfig,
    s3: Arc<TcpProxy>,
    llm_front: Arc<TcpProxy>,
    store_url: String,
    dataset: PathBuf,
    logs: PathBuf,
    services: HashMap<&'static str, Vec<Service>>,
}

fn store_db(scope: &Scope) -> String {
    scope.name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

impl Pipeline {
    fn config(&self, stage: &str, port: u16) -> String {
        let s3 = format!(
            "[s3]\nendpoint = \"{}\"\nregion = \"default\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\ntimeout_secs = 20\n",
            self.s3.url(),
            self.servers.s3_key,
            self.servers.s3_secret
        );
        let llm = self.llm_front.url();
        let mut c = format!(
            "[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\ngroup_prefix = \"{}-\"\nsession_timeout_ms = 6000\npartitions = 3\nstatistics_interval_ms = 1000\n\
             [runtime]\ndrain_timeout_secs = 20\n[runtime.retry]\nmax_attempts = 4\ninitial_backoff_ms = 200\nmax_backoff_ms = 2000\n\
             [runtime.breaker]\nfailures_to_open = 3\nprobe_interval_ms = 1000\nmax_probe_interval_ms = 10000\n\
             [ops]\nlisten = \"127.0.0.1:{port}\"\n",
            self.kafka.brokers, self.kafka.topic_prefix, self.scope.name
        );
        match stage {
            "ingest" => {
                c += &s3;
                c += &format!("[claims]\nbucket = \"{}\"\n", self.scope.bucket);
            }
            "extract" => c += &s3,
            "generate" => {
                c += &format!(
                    "[llm]\nbase_url = \"{llm}/v1\"\nmodel = \"{}\"\nmax_tokens = 400\ntemperature = 0.5\nmax_concurrency = 2\n",
                    self.servers.llm_model
                );
                c += "[generate]\nmodes = [\"qa\"]\npairs_per_chunk = 2\n[generate.quality]\nmin_grounding = 0.3\n";
            }
            "judge" => {
                c += &format!(
                    "[llm]\nbase_url = \"{llm}/v1\"\nmodel = \"{}\"\nmax_tokens = 200\ntemperature = 0.1\nmax_concurrency = 2\n",
                    self.servers.llm_model
                );
                c += "[judge]\nthreshold = 3\nmax_attempts = 2\nanswer_check = false\nverify_preference = false\n";
            }
            "dedup" => c += &format!("[embedder]\nmodel_dir = \"{}\"\n", self.servers.embed_dir),
            "sink" => {
                c += &format!("[store]\nurl = \"{}\"\n", self.store_url);
                c += &format!("[output]\ndir = \"{}\"\nlinger_ms = 50\n", self.dataset.display());
            }
            _ => unreachable!(),
        }
        c
    }

    fn start_service(&mut self, stage: &'static str) {
        let port = free_port();
        let n = self.services.get(stage).map_or(0, Vec::len);
        let cfg = self.scope.path(&format!("{stage}-{n}.toml"));
        std::fs::write(&cfg, self.config(stage, port)).unwrap();
        let service = Service::start(stage, &cfg, port, &self.logs);
        self.services.entry(stage).or_default().push(service);
    }

    fn kill9_and_restart(&mut self, stage: &str) {
        let s = &mut self.services.get_mut(stage).unwrap()[0];
        s.signal("KILL");
        let _ = s.child.wait();
        s.restart(&self.logs);
    }

    /// Every service killed (-9) and started again.
    fn kill9_and_restart_all(&mut self) {
        for list in self.services.values_mut() {
            for s in list.iter_mut() {
                let _ = s.child.kill();
                let _ = s.child.wait();
                s.restart(&self.logs);
            }
        }
    }

    /// The last `n` warnings and errors of each service's current log.
    fn warnings(&self, n: usize) -> String {
        let mut out = String::new();
        for list in self.services.values() {
            for s in list {
                let text = s.log_text();
                let lines: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
                out += &format!("--- {} ({}):\n", s.stage, s.log.display());
                for l in &lines[lines.len().saturating_sub(n)..] {
                    out += l;
                    out.push('\n');
                }
            }
        }
        out
    }

    fn restart_all(&mut self) {
        for list in self.services.values_mut() {
            for s in list.iter_mut() {
                if s.child.try_wait().ok().flatten().is_some() {
                    s.restart(&self.logs);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The oracle

/// Every record of the topics the oracle reads, from the start, deduplicated by id.
struct Watch {
    tap: Tap,
}

impl Watch {
    fn ids(&self, topic: Topic) -> impl Iterator<Item = &Record> {
        self.tap.records(topic).iter()
    }
}

/// One scenario's figures.
#[derive(Debug, Default, Clone)]
struct Figures {
    scenario: String,
    documents: usize,
    chunks: usize,
    accepted: usize,
    rejected: usize,
    dead_lettered: usize,
    duplicates: usize,
    lost: usize,
    llm_calls: usize,
    llm_repeated: usize,
    note: String,
}

/// The dataset's files as lines.
struct Files {
    accepted: Vec<serde_json::Value>,
    rejected: Vec<serde_json::Value>,
    dead: Vec<serde_json::Value>,
    exports: BTreeMap<&'static str, Vec<String>>,
}

impl Files {
    fn read(dir: &Path) -> Files {
        let lines = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let parse = |f: &str| {
            lines(f)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{f}: invalid line {l:?}: {e}")))
                .collect::<Vec<serde_json::Value>>()
        };
        let mut exports = BTreeMap::new();
        for f in ["alpaca.jsonl", "sharegpt.jsonl", "openai.jsonl"] {
            exports.insert(f, lines(f).lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect());
        }
        Files {
            accepted: parse("accepted.jsonl"),
            rejected: parse("rejected.jsonl"),
            dead: parse("dead-letter.jsonl"),
            exports,
        }
    }
}

/// Whether an export line (JSON) holds one of `answers` as a string value anywhere.
fn mentions_any(line: &str, answers: &HashSet<&str>) -> bool {
    fn walk(v: &serde_json::Value, answers: &HashSet<&str>) -> bool {
        match v {
            serde_json::Value::String(s) => answers.contains(s.as_str()),
            serde_json::Value::Array(a) => a.iter().any(|x| walk(x, answers)),
            serde_json::Value::Object(o) => o.values().any(|x| walk(x, answers)),
            _ => false,
        }
    }
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| walk(&v, answers))
}

/// The record a dead letter carried, when it decodes.
fn dead_payload(v: &serde_json::Value) -> Option<Record> {
    use base64::Engine;
    let b64 = v["payload_base64"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Codec::global().decode(&bytes, None).ok()
}

/// Where the batch of `docs` stands: the figures, and whether everything has ended.
fn judge_batch(scenario: &str, docs: &HashSet<String>, watch: &Watch, files: &Files) -> (Figures, bool) {
    let mut chunks: HashMap<String, String> = HashMap::new(); // chunk -> document
    for r in watch.ids(Topic::Chunks) {
        if let Record::Chunk(c) = r
            && docs.contains(&c.document_id)
        {
            chunks.insert(c.id.clone(), c.document_id.clone());
        }
    }
    let mut drafts: HashMap<String, String> = HashMap::new(); // draft -> chunk
    for r in watch.ids(Topic::Drafts) {
        if let Record::Draft(d) = r
            && chunks.contains_key(&d.chunk_id)
        {
            drafts.insert(d.id.clone(), d.chunk_id.clone());
        }
    }
    let regenerated: HashSet<String> = watch
        .ids(Topic::Regenerate)
        .filter_map(|r| if let Record::Regenerate(g) = r { Some(g.draft.id.clone()) } else { None })
        .filter(|d| drafts.contains_key(d))
        .collect();
    let in_batch = |v: &serde_json::Value| {
        let doc = v["document_id"].as_str().unwrap_or_default();
        docs.contains(doc) || v["chunk_id"].as_str().is_some_and(|c| chunks.contains_key(c))
    };
    let accepted: Vec<&serde_json::Value> = files.accepted.iter().filter(|v| in_batch(v)).collect();
    let rejected: Vec<&serde_json::Value> =
        files.rejected.iter().filter(|v| in_batch(v) || v["id"].as_str().is_some_and(|id| docs.contains(id))).collect();
    // Dead letters of this batch: their payload names a document, chunk or draft of it.
    let mut dead_subjects: HashSet<String> = HashSet::new();
    let mut dead = 0;
    for v in &files.dead {
        let Some(record) = dead_payload(v) else { continue };
        let subject: Vec<String> = match &record {
            Record::Document(d) => vec![d.id.clone()],
            Record::Chunk(c) => vec![c.id.clone(), c.document_id.clone()],
            Record::Draft(d) => vec![d.id.clone(), d.chunk_id.clone()],
            Record::Judged(j) => vec![j.draft.id.clone(), j.draft.chunk_id.clone()],
            Record::Regenerate(g) => vec![g.draft.id.clone(), g.draft.chunk_id.clone()],
            other => vec![other.id().to_string()],
        };
        if subject.iter().any(|s| docs.contains(s) || chunks.contains_key(s) || drafts.contains_key(s)) {
            dead += 1;
            dead_subjects.extend(subject);
        }
    }
    // Duplicates: an id twice in a file, an example both accepted and rejected, an export line twice.
    let mut duplicates = 0;
    let mut count = |ids: Vec<&str>| {
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(id.to_string()) {
                duplicates += 1;
            }
        }
    };
    count(accepted.iter().filter_map(|v| v["id"].as_str()).collect());
    count(rejected.iter().filter_map(|v| v["id"].as_str()).collect());
    let accepted_ids: HashSet<&str> = accepted.iter().filter_map(|v| v["id"].as_str()).collect();
    duplicates += rejected.iter().filter(|v| v["id"].as_str().is_some_and(|id| accepted_ids.contains(id))).count();
    let answers: HashSet<&str> = accepted.iter().filter_map(|v| v["answer"].as_str()).collect();
    for lines in files.exports.values() {
        let mut seen = HashSet::new();
        for l in lines.iter().filter(|l| mentions_any(l, &answers)) {
            if !seen.insert(l.as_str()) {
                duplicates += 1;
            }
        }
    }
    // Lost: what has no outcome yet.
    let ended: HashSet<&str> = accepted
        .iter()
        .chain(rejected.iter())
        .filter_map(|v| v["id"].as_str())
        .chain(regenerated.iter().map(String::as_str))
        .chain(dead_subjects.iter().map(String::as_str))
        .collect();
    let open_drafts = drafts.keys().filter(|d| !ended.contains(d.as_str())).count();
    let spoken: HashSet<&str> = drafts
        .values()
        .map(String::as_str)
        .chain(rejected.iter().filter_map(|v| v["chunk_id"].as_str()))
        .chain(dead_subjects.iter().map(String::as_str))
        .collect();
    let silent_chunks = chunks.keys().filter(|c| !spoken.contains(c.as_str())).count();
    let chunked: HashSet<&str> = chunks.values().map(String::as_str).collect();
    let silent_docs = docs
        .iter()
        .filter(|d| {
            !chunked.contains(d.as_str())
                && !rejected
                    .iter()
                    .any(|v| v["id"].as_str() == Some(d.as_str()) || v["document_id"].as_str() == Some(d.as_str()))
                && !dead_subjects.contains(*d)
        })
        .count();
    let lost = open_drafts + silent_chunks + silent_docs;
    let figures = Figures {
        scenario: scenario.into(),
        documents: docs.len(),
        chunks: chunks.len(),
        accepted: accepted.len(),
        rejected: rejected.len(),
        dead_lettered: dead,
        duplicates,
        lost,
        ..Figures::default()
    };
    (figures, lost == 0)
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios

/// A small document for a scenario: its own facts (so its content hash and chunks are its own), one short
/// section: one chunk, two pairs, a few LLM calls.
fn document(scenario: &str, n: usize) -> String {
    let code = distillery_core::ids::hash_parts(&[scenario, &n.to_string()]);
    let days = 10 + (code.as_bytes()[0] as usize % 20);
    format!(
        "# Policy {scenario} {n}\n\nRequests under policy {code8} are answered within {days} working days. \
         The desk of policy {code8} is in building {b} and opens at {h} o'clock. Questions about it go to the \
         policy office, which keeps a record of every request for {y} years.\n",
        code8 = &code[..8],
        b = code.as_bytes()[1] % 9 + 1,
        h = code.as_bytes()[2] % 3 + 7,
        y = code.as_bytes()[3] % 5 + 2,
    )
}

/// A document of three sections (three chunks), for the scale step (both replicas get work).
fn long_document(scenario: &str) -> String {
    (0..3)
        .map(|i| document(&format!("{scenario}-part"), i).replacen("# Policy", "## Policy", 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What has to happen before a scenario's fault fires.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// Right after the batch's notifications are published.
    Published,
    /// The batch's documents are on the documents topic (ingest done, extract working).
    Discovered,
    /// The batch has chunks (generate working).
    Chunked,
    /// The batch has drafts (judge working).
    Drafted,
    /// The batch has verdicts (dedup working).
    Judged,
    /// The batch has outcomes on the accepted/rejected topics (the sink writing).
    Outcomes,
}

async fn triggered(trigger: Trigger, docs: &HashSet<String>, watch: &Watch) -> bool {
    let chunk_ids: HashSet<String> = watch
        .ids(Topic::Chunks)
        .filter_map(
            |r| if let Record::Chunk(c) = r { docs.contains(&c.document_id).then(|| c.id.clone()) } else { None },
        )
        .collect();
    let batch_draft = |chunk: &str| chunk_ids.contains(chunk);
    match trigger {
        Trigger::Published => true,
        Trigger::Discovered => watch.ids(Topic::Documents).any(|r| docs.contains(r.id())),
        Trigger::Chunked => !chunk_ids.is_empty(),
        Trigger::Drafted => watch.ids(Topic::Drafts).any(|r| matches!(r, Record::Draft(d) if batch_draft(&d.chunk_id))),
        Trigger::Judged => {
            watch.ids(Topic::Judged).any(|r| matches!(r, Record::Judged(j) if batch_draft(&j.draft.chunk_id)))
        }
        Trigger::Outcomes => watch.ids(Topic::Accepted).chain(watch.ids(Topic::Rejected)).any(|r| match r {
            Record::Accepted(a) => batch_draft(&a.judged.draft.chunk_id),
            Record::Rejected(x) => x.chunk_id.as_deref().is_some_and(batch_draft),
            _ => false,
        }),
    }
}

/// The faults.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill(&'static str),
    BrokerRestart,
    S3Down,
    LlmDown,
    RateLimitStorm,
    DiskFull,
    ScaleStep,
}

impl Fault {
    fn name(&self) -> String {
        match self {
            Fault::Kill(s) => format!("kill -9 {s}"),
            Fault::BrokerRestart => "broker unreachable 20 s".into(),
            Fault::S3Down => format!("S3 down {} s", OUTAGE.as_secs()),
            Fault::LlmDown => format!("LLM down {} s", OUTAGE.as_secs()),
            Fault::RateLimitStorm => "429 storm 20 s".into(),
            Fault::DiskFull => "sink disk full".into(),
            Fault::ScaleStep => "generate 1->2->1".into(),
        }
    }

    fn trigger(&self) -> Trigger {
        match self {
            Fault::Kill("ingest") | Fault::S3Down => Trigger::Published,
            Fault::Kill("extract") => Trigger::Discovered,
            Fault::Kill("generate")
            | Fault::BrokerRestart
            | Fault::LlmDown
            | Fault::RateLimitStorm
            | Fault::ScaleStep => Trigger::Chunked,
            Fault::Kill("judge") => Trigger::Drafted,
            Fault::Kill("dedup") => Trigger::Judged,
            Fault::Kill(_) | Fault::DiskFull => Trigger::Outcomes,
        }
    }
}

/// The sink's output folder on a small tmpfs, to fill it.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "distillery-chaos", dir.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk { dir: dir.to_path_buf() })
    }

    /// Fills every free byte.
    fn fill(&self) {
        let filler = self.dir.join(".filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=64k"])
            .stderr(Stdio::null())
            .status();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.dir.join(".filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn print_table(rows: &[Figures]) -> String {
    let mut out = String::from(
        "chaos (Kafka services and the embedded run; real tansu, Ceph RGW, llama.cpp, PostgreSQL):\n\
         | scenario | docs | chunks | accepted | rejected | dead-lettered | duplicates | lost | LLM calls | LLM calls repeated |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for f in rows {
        out += &format!(
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.scenario,
            if f.note.is_empty() { String::new() } else { format!(" ({})", f.note) },
            f.documents,
            f.chunks,
            f.accepted,
            f.rejected,
            f.dead_lettered,
            f.duplicates,
            f.lost,
            f.llm_calls,
            f.llm_repeated
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_kafka_services_lose_nothing_and_repeat_nothing() {
    let servers = Servers::from_env();
    let scope = Scope::new("chaos");
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let rgw = distillery_store::S3Store::connect(&servers.s3_config()).await;
    rgw.ensure_bucket(&scope.bucket).await.expect("bucket");

    // Servers of this test's own, and proxies in front of the shared ones.
    let broker = Broker::start(&logs).await;
    let s3_addr: SocketAddr = servers.s3.trim_start_matches("http://").parse().expect("S3 endpoint host:port");
    let s3 = TcpProxy::start(s3_addr).await;
    let llm_root = servers.llm.trim_end_matches('/').trim_end_matches("/v1").to_string();
    let (llm, llm_addr) = LlmProxy::start(llm_root).await;
    let llm_front = TcpProxy::start(llm_addr).await;
    let pg = std::env::var("DISTILLERY_TEST_POSTGRES").expect("DISTILLERY_TEST_POSTGRES (scripts/test-servers)");
    // A database of this test's own, created over a plain connection (opening the suite's database as a
    // store would run its migrations there).
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&pg).await.expect("the suite's PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {}", store_db(&scope))).execute(&mut admin).await.expect("database");
    let store_url = format!("{}/{}", pg.rsplit_once('/').unwrap().0, store_db(&scope));

    let dataset = scope.path("dataset");
    let disk = SmallDisk::mount(&dataset);
    let kafka = distillery_kafka::KafkaConfig {
        brokers: broker.brokers(),
        topic_prefix: scope.prefix.clone(),
        group_prefix: format!("{}-", scope.name),
        session_timeout_ms: 6000,
        partitions: 3,
        ..Default::default()
    };
    distillery_kafka::ensure_topics(&kafka, &Topic::ALL).await.expect("topics");
    let mut pipeline = Pipeline {
        servers: servers.clone(),
        scope,
        kafka: kafka.clone(),
        s3: s3.clone(),
        llm_front: llm_front.clone(),
        store_url,
        dataset: dataset.clone(),
        logs: logs.clone(),
        services: HashMap::new(),
    };
    for stage in STAGES {
        pipeline.start_service(stage);
    }
    let mut watch = Watch {
        tap: Tap::new(
            &kafka,
            &[
                Topic::Documents,
                Topic::Chunks,
                Topic::Drafts,
                Topic::Regenerate,
                Topic::Judged,
                Topic::Accepted,
                Topic::Rejected,
            ],
        ),
    };
    let publisher = distillery_kafka::KafkaPublisher::new(&kafka).expect("producer");

    let mut faults = vec![
        Fault::Kill("ingest"),
        Fault::Kill("extract"),
        Fault::Kill("generate"),
        Fault::Kill("judge"),
        Fault::Kill("dedup"),
        Fault::Kill("sink"),
        Fault::BrokerRestart,
        Fault::S3Down,
        Fault::LlmDown,
        Fault::RateLimitStorm,
        Fault::ScaleStep,
    ];
    if disk.is_some() {
        faults.push(Fault::DiskFull);
    } else {
        assert!(
            Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() != "0"),
            "root could not mount a tmpfs for the full-disk scenario"
        );
    }

    let mut rows = Vec::new();
    let mut diagnoses: Vec<String> = Vec::new();
    for (n, fault) in faults.iter().enumerate() {
        let name = fault.name();
        *llm.scenario.lock().unwrap() = name.clone();
        let tag = format!("s{n}");
        let texts: Vec<(String, String)> = match fault {
            Fault::ScaleStep => vec![(format!("inbox/{tag}-long.md"), long_document(&name))],
            _ => (0..2).map(|i| (format!("inbox/{tag}-{i}.md"), document(&name, i))).collect(),
        };
        let docs: HashSet<String> = texts.iter().map(|(_, t)| distillery_core::ids::hash_bytes(t.as_bytes())).collect();
        for (key, text) in &texts {
            rgw.put(&pipeline.scope.bucket, key, Bytes::from(text.clone()), "text/markdown").await.expect("put");
        }
        if let Fault::DiskFull = fault {
            disk.as_ref().unwrap().fill();
        }
        for (i, (key, text)) in texts.iter().enumerate() {
            let event = minio_event(
                &pipeline.scope.bucket,
                key,
                text.len(),
                &format!("{:032x}", n * 10 + i),
                &format!("{n:08}{i:08}"),
            );
            publisher
                .publish_raw(Topic::Events, &format!("{}/{key}", pipeline.scope.bucket), event.to_string().as_bytes())
                .await
                .expect("event");
        }
        let started = Instant::now();
        let mut note = String::new();
        // Mid-batch: once the trigger holds, the fault. A batch can end before it (the small model's drafts of
        // both documents all refused by generate's checks: no verdict ever comes): the fault then hits an
        // idle stage, which the row says, and the oracle runs as for any other.
        loop {
            watch.tap.poll(Duration::from_millis(500)).await;
            if triggered(fault.trigger(), &docs, &watch).await {
                break;
            }
            if judge_batch(&name, &docs, &watch, &Files::read(&dataset)).1 {
                note = format!("batch ended before {:?}", fault.trigger());
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{name}: the batch never reached {:?}; the services' last warnings:\n{}",
                fault.trigger(),
                pipeline.warnings(30)
            );
        }
        match fault {
            Fault::Kill(stage) => pipeline.kill9_and_restart(stage),
            Fault::BrokerRestart => {
                broker.front.down();
                tokio::time::sleep(Duration::from_secs(20)).await;
                broker.front.up().await;
            }
            Fault::S3Down => {
                s3.down();
                tokio::time::sleep(OUTAGE).await;
                s3.up().await;
            }
            Fault::LlmDown => {
                llm_front.down();
                tokio::time::sleep(OUTAGE).await;
                llm_front.up().await;
            }
            Fault::RateLimitStorm => {
                llm.mode.store(RATE_LIMIT, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(20)).await;
                llm.mode.store(PASS, Ordering::SeqCst);
                note += &format!("{} calls answered 429", llm.limited.load(Ordering::SeqCst));
            }
            Fault::DiskFull => {
                // The sink's writes fail while the disk is full; the rest of the pipeline goes on.
                tokio::time::sleep(Duration::from_secs(20)).await;
                disk.as_ref().unwrap().free();
            }
            Fault::ScaleStep => {
                pipeline.start_service("generate");
                loop {
                    watch.tap.poll(Duration::from_millis(500)).await;
                    if triggered(Trigger::Drafted, &docs, &watch).await {
                        break;
                    }
                    // As before a trigger: the small model's drafts of every chunk may all be refused by
                    // generate's checks, and then no draft ever comes; the scale-down runs all the same.
                    if judge_batch(&name, &docs, &watch, &Files::read(&dataset)).1 {
                        note += "batch ended before a draft; ";
                        break;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(600),
                        "{name}: no draft after the scale-up; the services' last warnings:\n{}",
                        pipeline.warnings(30)
                    );
                }
                // Scale down: the first replica drains and leaves (SIGTERM).
                let mut first = pipeline.services.get_mut("generate").unwrap().remove(0);
                let stopped = first.stop(60);
                note += &format!("first replica stopped: {}", stopped.map_or("killed".into(), |s| s.to_string()));
            }
        }
        pipeline.restart_all();
        // Until every document, chunk and draft of the batch has ended (and stays so for a few seconds).
        let mut figures;
        let mut settled_since: Option<Instant> = None;
        loop {
            watch.tap.poll(Duration::from_secs(2)).await;
            let files = Files::read(&dataset);
            let (f, done) = judge_batch(&name, &docs, &watch, &files);
            figures = f;
            if done {
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(6) {
                    break;
                }
            } else {
                settled_since = None;
            }
            if started.elapsed() > SCENARIO_LIMIT {
                note += " TIMED OUT";
                let diagnosis = format!("{name}: timed out; the services' last warnings:\n{}", pipeline.warnings(30));
                println!("{diagnosis}");
                diagnoses.push(diagnosis);
                pipeline.kill9_and_restart_all();
                break;
            }
        }
        figures.llm_calls = llm.calls(&name);
        figures.llm_repeated = llm.repeated(&name);
        figures.note = note;
        println!("{}", print_table(std::slice::from_ref(&figures)));
        rows.push(figures);
    }
    common::report(&print_table(&rows));
    for r in &rows {
        assert_eq!(
            (r.lost, r.duplicates),
            (0, 0),
            "{}: lost {} duplicated {}\n{}\n{}",
            r.scenario,
            r.lost,
            r.duplicates,
            print_table(&rows),
            diagnoses.join("\n")
        );
        assert!(r.documents > 0 && r.chunks > 0, "{}: the batch produced chunks", r.scenario);
    }
    // Nothing stays paused.
    for list in pipeline.services.values() {
        for s in list {
            let metrics = s.metrics().await;
            for l in metrics.lines().filter(|l| l.starts_with("distillery_breaker_open{")) {
                assert!(l.ends_with(" 0"), "{}: a breaker stayed open: {l}", s.stage);
            }
        }
    }
    drop(disk);
}

// ---------------------------------------------------------------------------------------------------------
// The embedded run

/// The embedded run's settings: few, short LLM calls (the suite's server is small and shared).
const EMBEDDED_CONFIG: &str = "parquet = false\n[llm.generator]\nmax_tokens = 400\n\
    [generate]\nmodes = [\"qa\"]\npairs_per_chunk = 2\n\
    [judge]\nthreshold = 3\nanswer_check = false\nverify_preference = false\n";

/// `distillery run` on `docs` into `out` through the LLM proxy.
fn embedded_run(docs: &Path, out: &Path, llm: &str, model: &str) -> Child {
    let config = docs.with_extension("toml");
    std::fs::write(&config, EMBEDDED_CONFIG).unwrap();
    Command::new(binary())
        .arg("run")
        .arg(docs)
        .arg("--out")
        .arg(out)
        .arg("--config")
        .arg(&config)
        .args(["--llm-base-url", llm, "--llm-model", model, "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("distillery run starts")
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(started.elapsed() < limit, "the run did not end within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The embedded run's oracle: every document's chunks ended (the store's status), every id once per file,
/// no example both accepted and rejected, every export line once.
fn embedded_figures(scenario: &str, out: &Path) -> Figures {
    let status = Command::new(binary()).arg("status").arg(out).arg("--json").output().expect("status");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let docs: Vec<serde_json::Value> =
        String::from_utf8_lossy(&status.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let files = Files::read(out);
    let mut duplicates = 0;
    for ids in [
        files.accepted.iter().filter_map(|v| v["id"].as_str()).collect::<Vec<_>>(),
        files.rejected.iter().filter_map(|v| v["id"].as_str()).collect(),
    ] {
        let unique: HashSet<&str> = ids.iter().copied().collect();
        duplicates += ids.len() - unique.len();
    }
    let accepted: HashSet<&str> = files.accepted.iter().filter_map(|v| v["id"].as_str()).collect();
    duplicates += files.rejected.iter().filter(|v| v["id"].as_str().is_some_and(|id| accepted.contains(id))).count();
    for lines in files.exports.values() {
        let unique: HashSet<&String> = lines.iter().collect();
        duplicates += lines.len() - unique.len();
    }
    Figures {
        scenario: scenario.into(),
        documents: docs.len(),
        chunks: docs.iter().map(|d| d["chunks"].as_u64().unwrap_or(0) as usize).sum(),
        accepted: files.accepted.len(),
        rejected: files.rejected.len(),
        dead_lettered: files.dead.len(),
        duplicates,
        lost: docs.iter().map(|d| d["chunks_pending"].as_u64().unwrap_or(0) as usize).sum(),
        ..Figures::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_embedded_run_interrupted_or_killed_then_rerun() {
    let servers = Servers::from_env();
    let dir = tempfile::tempdir().unwrap();
    let llm_root = servers.llm.trim_end_matches('/').trim_end_matches("/v1").to_string();
    let (llm, llm_addr) = LlmProxy::start(llm_root).await;
    let base = format!("http://{llm_addr}/v1");
    let mut rows = Vec::new();
    for (signal, name) in [("INT", "embedded: SIGINT, rerun"), ("KILL", "embedded: SIGKILL, rerun")] {
        let docs = dir.path().join(format!("docs-{signal}"));
        std::fs::create_dir_all(&docs).unwrap();
        for i in 0..2 {
            std::fs::write(docs.join(format!("policy-{i}.md")), document(name, i)).unwrap();
        }
        let out = dir.path().join(format!("out-{signal}"));
        *llm.scenario.lock().unwrap() = name.to_string();
        let mut first = embedded_run(&docs, &out, &base, &servers.llm_model);
        let started = Instant::now();
        while llm.calls(name) < 1 {
            assert!(first.try_wait().unwrap().is_none(), "the first run ended before its first LLM call");
            assert!(started.elapsed() < Duration::from_secs(600), "no LLM call answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = Command::new("kill").args([&format!("-{signal}"), &first.id().to_string()]).status().unwrap();
        assert!(status.success());
        let ended = wait_exit(&mut first, Duration::from_secs(180));
        let note = format!("first run: {} after {} LLM calls", ended, llm.calls(name));
        let mut second = embedded_run(&docs, &out, &base, &servers.llm_model);
        let status = wait_exit(&mut second, Duration::from_secs(900));
        let mut err = String::new();
        use std::io::Read;
        second.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "the rerun finishes: {err}");
        let mut f = embedded_figures(name, &out);
        f.llm_calls = llm.calls(name);
        f.llm_repeated = llm.repeated(name);
        f.note = note;
        rows.push(f);
    }
    common::report(&print_table(&rows));
    for r in &rows {
        assert_eq!((r.lost, r.duplicates), (0, 0), "{}\n{}", r.scenario, print_table(&rows));
        assert!(r.chunks > 0);
    }
}
