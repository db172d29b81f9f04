//! The foundation's end-to-end test: three documents in a real S3 server, their ObjectCreated events (in
//! MinIO's JSON shape) delivered to the events topic of a real Kafka-protocol broker, every stage running as
//! its own `distillery service` process against a real llama.cpp server with a small real model. Every
//! draft must end accepted or rejected with a reason, accepted must not be empty, the Alpaca export must
//! parse; a stage killed mid-run and restarted must lose and duplicate nothing. The sink writes the dataset
//! to a real PostgreSQL (a database of its own) as well as its files; status and exports read it back.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use distillery_core::{Record, Topic};
use distillery_store::ObjectStore;

const STAGES: [&str; 6] = ["ingest", "extract", "generate", "judge", "dedup", "sink"];

/// The sink's dataset store: a database of this test's own on the suite's PostgreSQL.
fn store_url(scope: &Scope) -> String {
    let server = std::env::var("DISTILLERY_TEST_POSTGRES").expect("DISTILLERY_TEST_POSTGRES (scripts/test-servers)");
    let (base, _) = server.rsplit_once('/').expect("postgres://.../db");
    format!("{base}/{}", store_db(scope))
}

fn store_db(scope: &Scope) -> String {
    scope.name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

async fn create_store_db(scope: &Scope) {
    let server = std::env::var("DISTILLERY_TEST_POSTGRES").expect("DISTILLERY_TEST_POSTGRES (scripts/test-servers)");
    let admin = distillery_dataset::SqlStore::open(&server).await.expect("the suite's PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {}", store_db(scope))).execute(admin.pool()).await.expect("create database");
}

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
                "[llm]\nbase_url = \"{}\"\nmodel = \"{}\"\nmax_tokens = 600\ntemperature = 0.5\n",
                servers.llm, servers.llm_model
            );
            c += "[generate]\npairs_per_chunk = 2\n[generate.quality]\nmin_grounding = 0.3\n";
            // The sink's store: a chunk whose examples all have an outcome there is not generated again.
            c += &format!("[store]\nurl = \"{}\"\n", store_url(scope));
        }
        "judge" => {
            c += &format!(
                "[llm]\nbase_url = \"{}\"\nmodel = \"{}\"\nmax_tokens = 200\ntemperature = 0.1\n",
                servers.llm, servers.llm_model
            );
            c += "[judge]\nthreshold = 3\nmax_attempts = 2\n";
            c += &format!("[store]\nurl = \"{}\"\n", store_url(scope));
        }
        "dedup" => c += &format!("[embedder]\nmodel_dir = \"{}\"\n", servers.embed_dir),
        "sink" => {
            c += &format!("[store]\nurl = \"{}\"\n", store_url(scope));
            c += &format!("[output]\ndir = \"{}\"\nlinger_ms = 50\n", scope.path("dataset").display());
        }
        _ => unreachable!(),
    }
    c
}

/// What the topics and the dataset say so far.
struct Ledger {
    chunks: HashMap<String, String>, // chunk id -> document id
    drafts: HashSet<String>,
    regenerated: HashSet<String>, // draft ids sent back for regeneration
    accepted: Vec<String>,
    rejected: Vec<serde_json::Value>,
}

impl Ledger {
    fn read(tap: &Tap, dataset: &std::path::Path) -> Ledger {
        let mut chunks = HashMap::new();
        for r in tap.records(Topic::Chunks) {
            if let Record::Chunk(c) = r {
                chunks.insert(c.id.clone(), c.document_id.clone());
            }
        }
        let drafts = tap.records(Topic::Drafts).iter().map(|r| r.id().to_string()).collect();
        let regenerated = tap
            .records(Topic::Regenerate)
            .iter()
            .filter_map(|r| if let Record::Regenerate(g) = r { Some(g.draft.id.clone()) } else { None })
            .collect();
        let accepted =
            jsonl(&dataset.join("accepted.jsonl")).iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
        let rejected = jsonl(&dataset.join("rejected.jsonl"));
        Ledger { chunks, drafts, regenerated, accepted, rejected }
    }

    fn rejected_ids(&self) -> HashSet<String> {
        self.rejected.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
    }

    /// Drafts with no outcome yet.
    fn open_drafts(&self) -> Vec<String> {
        let accepted: HashSet<&String> = self.accepted.iter().collect();
        let rejected = self.rejected_ids();
        self.drafts
            .iter()
            .filter(|d| !accepted.contains(d) && !rejected.contains(*d) && !self.regenerated.contains(*d))
            .cloned()
            .collect()
    }

    /// Chunks with neither a draft nor a rejection.
    fn silent_chunks(&self, tap: &Tap) -> Vec<String> {
        let mut spoken: HashSet<String> = HashSet::new();
        for r in tap.records(Topic::Drafts) {
            if let Record::Draft(d) = r {
                spoken.insert(d.chunk_id.clone());
            }
        }
        for v in &self.rejected {
            if let Some(c) = v["chunk_id"].as_str() {
                spoken.insert(c.to_string());
            }
        }
        self.chunks.keys().filter(|c| !spoken.contains(*c)).cloned().collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_documents_flow_through_kafka_and_survive_a_stage_restart() {
    let servers = Servers::from_env();
    let scope = Scope::new("e2e");
    let kafka = scope.kafka(&servers);
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();

    // The documents, in a real S3 bucket.
    let s3 = distillery_store::S3Store::connect(&servers.s3_config()).await;
    s3.ensure_bucket(&scope.bucket).await.expect("bucket");
    let docs = example_docs();
    assert_eq!(docs.len(), 3);
    for (key, bytes) in &docs {
        s3.put(&scope.bucket, &format!("inbox/{key}"), Bytes::from(bytes.clone()), "application/octet-stream")
            .await
            .expect("put");
    }

    // Every stage as its own process.
    create_store_db(&scope).await;
    distillery_kafka::ensure_topics(&kafka, &Topic::ALL).await.expect("topics");
    let mut services: HashMap<&str, Service> = HashMap::new();
    for stage in STAGES {
        let port = free_port();
        let cfg = scope.path(&format!("{stage}.toml"));
        std::fs::write(&cfg, service_config(stage, &scope, &servers, port)).unwrap();
        services.insert(stage, Service::start(stage, &cfg, port, &logs));
    }

    // The store's notifications, as MinIO publishes them to Kafka.
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
    // A garbage notification must end in the dead-letter topic, not stop ingest.
    publisher.publish_raw(Topic::Events, "garbage", b"{not an event").await.unwrap();

    let mut tap = Tap::new(&kafka, &[Topic::Chunks, Topic::Drafts, Topic::Regenerate, Topic::DeadLetter]);
    let dataset = scope.path("dataset");
    let started = Instant::now();
    let deadline = Duration::from_secs(900);
    let mut restarted = false;
    let ledger = loop {
        tap.poll(Duration::from_secs(2)).await;
        let ledger = Ledger::read(&tap, &dataset);
        // Kill the judge (no chance to drain) as soon as it has work, then start it again.
        if !restarted && !ledger.drafts.is_empty() {
            let judge = services.get_mut("judge").unwrap();
            judge.signal("KILL");
            let _ = judge.child.wait();
            tokio::time::sleep(Duration::from_secs(2)).await;
            judge.restart(&logs);
            restarted = true;
        }
        let documents: HashSet<&String> = ledger.chunks.values().collect();
        if restarted
            && documents.len() == 3
            && !ledger.drafts.is_empty()
            && ledger.open_drafts().is_empty()
            && ledger.silent_chunks(&tap).is_empty()
        {
            break ledger;
        }
        if started.elapsed() > deadline {
            for s in services.values() {
                eprintln!("==== {} ====\n{}", s.stage, s.log_text());
            }
            panic!(
                "pipeline did not settle in {deadline:?}: {} documents, {} chunks, {} drafts, {} open, {} silent chunks",
                documents.len(),
                ledger.chunks.len(),
                ledger.drafts.len(),
                ledger.open_drafts().len(),
                ledger.silent_chunks(&tap).len()
            );
        }
    };

    // Every draft ended accepted, rejected (with a reason) or regenerated; every chunk said something.
    assert!(ledger.open_drafts().is_empty());
    assert!(!ledger.accepted.is_empty(), "nothing was accepted: {:?}", ledger.rejected);
    for r in &ledger.rejected {
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "rejection without a reason: {r}");
        assert!(r["detail"].as_str().is_some(), "rejection without detail: {r}");
    }
    // Nothing duplicated by the crash and replay: one dataset line per id.
    let unique: HashSet<&String> = ledger.accepted.iter().collect();
    assert_eq!(unique.len(), ledger.accepted.len(), "duplicate accepted ids: {:?}", ledger.accepted);
    assert_eq!(ledger.rejected_ids().len(), ledger.rejected.len(), "duplicate rejected ids");
    for id in &ledger.accepted {
        assert!(ledger.drafts.contains(id), "accepted {id} is not a draft");
    }
    // The Alpaca export parses and holds every accepted QA pair (a conversation has no single instruction);
    // ShareGPT holds every accepted record.
    let kinds: Vec<String> = jsonl(&dataset.join("accepted.jsonl"))
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    let qa = kinds.iter().filter(|k| *k == "qa").count();
    assert_eq!(qa + kinds.iter().filter(|k| *k == "conversation").count(), kinds.len(), "kinds: {kinds:?}");
    let alpaca = jsonl(&dataset.join("alpaca.jsonl"));
    assert_eq!(alpaca.len(), qa, "alpaca lines vs accepted QA pairs ({kinds:?})");
    assert_eq!(jsonl(&dataset.join("sharegpt.jsonl")).len(), ledger.accepted.len(), "sharegpt lines vs accepted");
    for a in &alpaca {
        assert!(a["instruction"].as_str().is_some_and(|s| s.ends_with('?')), "{a}");
        assert!(a["output"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
        assert_eq!(a["input"], "");
    }
    // The store holds what the files hold: status lists the three documents, an export from the store
    // has the files' Alpaca lines.
    let url = store_url(&scope);
    let status = std::process::Command::new(binary()).args(["status", "--store", &url, "--json"]).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let docs: Vec<serde_json::Value> =
        String::from_utf8(status.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 3, "{docs:?}");
    let stored_accepted: u64 = docs.iter().map(|d| d["accepted"].as_u64().unwrap()).sum();
    assert_eq!(stored_accepted as usize, ledger.accepted.len(), "the store's accepted vs the dataset files'");
    let from_store = scope.path("alpaca-from-store.jsonl");
    let export = std::process::Command::new(binary())
        .args(["export", "--store", &url, "--format", "alpaca", "--out", from_store.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    assert_eq!(jsonl(&from_store).len(), alpaca.len(), "alpaca from the PostgreSQL store vs the sink's file");

    // The garbage event was dead-lettered whole, with its reason.
    tap.poll(Duration::from_secs(1)).await;
    let dead: Vec<&Record> = tap.records(Topic::DeadLetter).iter().collect();
    assert!(
        dead.iter().any(
            |r| matches!(r, Record::DeadLetter(d) if d.payload == b"{not an event" && d.error_kind == "bad_event")
        ),
        "garbage event not dead-lettered: {dead:?}"
    );
    let dead_lines = jsonl(&dataset.join("dead-letter.jsonl"));
    assert!(dead_lines.iter().any(|d| d["error_kind"] == "bad_event"));

    // Metrics are served and count the work.
    let metrics = services["generate"].metrics().await;
    assert!(metrics.contains("distillery_llm_calls_total{model="), "{metrics}");
    assert!(metrics.contains("distillery_records_out_total{stage=\"generate\",topic=\"drafts\"}"), "{metrics}");
    let ingest_metrics = services["ingest"].metrics().await;
    assert!(
        ingest_metrics.contains("distillery_dead_letters_total{kind=\"bad_event\",stage=\"ingest\"} 1"),
        "{ingest_metrics}"
    );

    // Incremental: one section of the handbook edited, the FAQ deleted, both as the store notifies them.
    // Only the edited section is generated again (the unchanged ones keep their content-based ids and the
    // store has their outcomes); the exports leave out the deleted document and the edited section's old
    // records.
    // Regenerations of the first run can still be in flight once every draft has an outcome: wait for them.
    quiet(&kafka, &services, deadline).await;
    tap.poll(Duration::from_secs(2)).await;
    let calls_before = metric_sum(&services["generate"].metrics().await, "distillery_llm_calls_total{");
    let drafts_before: HashSet<String> = Ledger::read(&tap, &dataset).drafts;
    let old_docs: HashSet<String> = ledger.chunks.values().cloned().collect();
    let sources = example_docs();
    let (handbook_key, handbook) = sources.iter().find(|(k, _)| k.starts_with("employee-handbook")).unwrap();
    let (faq_key, _) = sources.iter().find(|(k, _)| k.starts_with("flowmeter-faq")).unwrap();
    let old_chunk_of = |needle: &str| {
        tap.records(Topic::Chunks).iter().find_map(|r| match r {
            Record::Chunk(c) if c.text.contains(needle) => Some((c.id.clone(), c.document_id.clone())),
            _ => None,
        })
    };
    let (edited_old_chunk, handbook_id) = old_chunk_of("up to 2,000 NOK").expect("the expenses section's chunk");
    let faq_id = {
        let text = String::from_utf8_lossy(&sources.iter().find(|(k, _)| k == faq_key).unwrap().1).to_string();
        let first_line = text.lines().find(|l| l.trim().len() > 20).unwrap().trim().to_string();
        tap.records(Topic::Chunks)
            .iter()
            .find_map(|r| match r {
                Record::Chunk(c) if c.document_id != handbook_id && c.text.contains(first_line.as_str()) => {
                    Some(c.document_id.clone())
                }
                _ => None,
            })
            .expect("the FAQ's chunks")
    };
    let old_handbook_chunks: HashSet<String> =
        ledger.chunks.iter().filter(|(_, d)| **d == handbook_id).map(|(c, _)| c.clone()).collect();
    assert!(old_handbook_chunks.len() >= 3, "the handbook is chunked by section: {old_handbook_chunks:?}");
    let edited = String::from_utf8(handbook.clone()).unwrap().replace("up to 2,000 NOK", "up to 3,500 NOK");
    let handbook_object = format!("inbox/{handbook_key}");
    s3.put(&scope.bucket, &handbook_object, Bytes::from(edited.clone()), "application/octet-stream").await.unwrap();
    let event = minio_event(&scope.bucket, &handbook_object, edited.len(), &format!("{:032x}", 99), "17A0B0F1F2F3F4FF");
    publisher
        .publish_raw(Topic::Events, &format!("{}/{handbook_object}", scope.bucket), event.to_string().as_bytes())
        .await
        .unwrap();
    let faq_object = format!("inbox/{faq_key}");
    s3.client().delete_object().bucket(&scope.bucket).key(&faq_object).send().await.unwrap();
    let removed = minio_removed_event(&scope.bucket, &faq_object, "17A0B0F1F2F3F500");
    publisher
        .publish_raw(Topic::Events, &format!("{}/{faq_object}", scope.bucket), removed.to_string().as_bytes())
        .await
        .unwrap();
    let edit_started = Instant::now();
    let (ledger2, new_handbook) = loop {
        tap.poll(Duration::from_secs(2)).await;
        let l = Ledger::read(&tap, &dataset);
        let new_doc = l.chunks.values().find(|d| !old_docs.contains(*d)).cloned();
        // Settled: the new version's chunks are out, and every chunk has a draft or a rejection (the edited
        // section's drafts may all be refused by generate's checks), every draft an outcome.
        if let Some(new_doc) = new_doc
            && l.open_drafts().is_empty()
            && l.silent_chunks(&tap).is_empty()
        {
            break (l, new_doc);
        }
        if edit_started.elapsed() > deadline {
            for s in services.values() {
                eprintln!("==== {} ====\n{}", s.stage, s.log_text());
            }
            panic!(
                "the edit did not settle in {deadline:?}: {} drafts, {} open",
                l.drafts.len(),
                l.open_drafts().len()
            );
        }
    };
    let new_chunks: HashSet<String> =
        ledger2.chunks.iter().filter(|(_, d)| **d == new_handbook).map(|(c, _)| c.clone()).collect();
    let kept: HashSet<&String> = new_chunks.intersection(&old_handbook_chunks).collect();
    let changed: HashSet<&String> = new_chunks.difference(&old_handbook_chunks).collect();
    assert_eq!(changed.len(), 1, "one section changed: {new_chunks:?} vs {old_handbook_chunks:?}");
    assert_eq!(kept.len(), new_chunks.len() - 1, "every other section keeps its chunk id");
    assert!(!new_chunks.contains(&edited_old_chunk), "the edited section got a new id");
    // No draft of an unchanged section: every new draft is of the edited one, and generate skipped the rest.
    let new_drafts: Vec<&Record> =
        tap.records(Topic::Drafts).iter().filter(|r| !drafts_before.contains(r.id())).collect();
    for r in &new_drafts {
        let Record::Draft(d) = r else { continue };
        assert!(changed.contains(&d.chunk_id), "a draft of an unchanged chunk was generated again: {}", d.chunk_id);
    }
    let generate_metrics = services["generate"].metrics().await;
    let skipped = metric_sum(&generate_metrics, "distillery_resumed_total{outcome=\"skipped\",stage=\"generate\"}");
    assert_eq!(skipped as usize, kept.len(), "generate skipped the unchanged chunks:\n{generate_metrics}");
    let calls_for_edit = metric_sum(&generate_metrics, "distillery_llm_calls_total{") - calls_before;
    assert!(calls_for_edit >= 1.0, "the edited section was generated");
    // The deleted document is shown as deleted, and no export has its records or the edited section's old ones.
    let mut deleted_seen = false;
    for _ in 0..60 {
        let out = std::process::Command::new(binary()).args(["status", "--store", &url, "--json"]).output().unwrap();
        let rows: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if rows.iter().any(|d| d["document_id"] == faq_id.as_str() && d["deleted"] == true) {
            deleted_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(deleted_seen, "status shows the deleted FAQ as deleted");
    let current: HashSet<String> = jsonl(&dataset.join("accepted.jsonl"))
        .iter()
        .filter(|v| {
            let (doc, chunk) = (v["document_id"].as_str().unwrap_or(""), v["chunk_id"].as_str().unwrap_or(""));
            doc != faq_id && (doc != handbook_id || new_chunks.contains(chunk))
        })
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let sharegpt = scope.path("sharegpt-after-edit.jsonl");
    let export = std::process::Command::new(binary())
        .args(["export", "--store", &url, "--format", "sharegpt", "--out", sharegpt.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    assert_eq!(
        jsonl(&sharegpt).len(),
        current.len(),
        "the store's export holds exactly the current documents' records (deleted FAQ and the edited section's \
         old records left out)"
    );
    eprintln!(
        "e2e edit: {} of {} handbook chunks kept (skipped by generate), {} generator calls for the edit, {} new drafts, \
         {} records exported after the edit and the deletion, in {:.0?}",
        kept.len(),
        new_chunks.len(),
        calls_for_edit,
        new_drafts.len(),
        current.len(),
        edit_started.elapsed()
    );

    // Replay judging through Kafka: the retained drafts read again from the drafts topic by a consumer group
    // of the rejudge's own, judged by the real model against a new threshold, while the pipeline runs;
    // nothing is published (no topic grows, the judge service makes no call) and no generator call is made.
    // The pipeline first finishes what the edit set going (a regeneration and its judging can still be in
    // flight once every draft has an outcome).
    let (topics_before, judge_calls_before) = quiet(&kafka, &services, deadline).await;
    let rejudge_config = scope.path("rejudge.toml");
    std::fs::write(&rejudge_config, "[judge]\nanswer_check = false\nmax_attempts = 2\n").unwrap();
    let rejudge = std::process::Command::new(binary())
        .args(["rejudge", "--store", &url, "--threshold", "4", "--llm-base-url", &servers.llm])
        .args(["--judge-model", &servers.llm_model, "--config", rejudge_config.to_str().unwrap()])
        .arg("--kafka-config")
        .arg(scope.path("judge.toml"))
        .output()
        .unwrap();
    assert!(rejudge.status.success(), "rejudge over Kafka failed:\n{}", String::from_utf8_lossy(&rejudge.stderr));
    let report: serde_json::Value = serde_json::from_slice(&rejudge.stdout).expect("the rejudge report is JSON");
    assert!(report["source"].as_str().is_some_and(|s| s.starts_with("kafka:")), "{report}");
    assert!(report["judged"].as_u64().unwrap() >= 1, "retained drafts were judged again: {report}");
    assert_eq!(
        report["not_replayed"],
        0,
        "every retained draft is still on the drafts topic: {report}\n{}",
        String::from_utf8_lossy(&rejudge.stderr)
    );
    assert!(report["replay_read"].as_u64().unwrap() >= report["judged"].as_u64().unwrap(), "{report}");
    assert!(report["llm_calls"].as_u64().unwrap() >= 1, "the real model judged: {report}");
    assert_eq!(report["generator_calls"], 0, "a rejudge never generates: {report}");
    let (before, after) = (report["accepted_before"].as_i64().unwrap(), report["accepted_after"].as_i64().unwrap());
    let (up, down) = (report["newly_accepted"].as_i64().unwrap(), report["newly_rejected"].as_i64().unwrap());
    assert_eq!(after, before + up - down, "{report}");
    assert_eq!(
        high_watermarks(&kafka, &[Topic::Drafts, Topic::Judged, Topic::Regenerate]),
        topics_before,
        "the replay published nothing"
    );
    let judge_calls_after = metric_sum(&services["judge"].metrics().await, "distillery_llm_calls_total{");
    assert_eq!(judge_calls_after, judge_calls_before, "the running judge service was not involved");
    let versions = std::process::Command::new(binary())
        .args([
            "export",
            "--store",
            &url,
            "--format",
            "sharegpt",
            "--out",
            scope.path("after-rejudge.jsonl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(versions.status.success(), "{}", String::from_utf8_lossy(&versions.stderr));
    eprintln!(
        "e2e rejudge over Kafka: {} drafts read from the topic, {} retained judged again at threshold 4 in {} LLM calls, \
         {} newly accepted, {} newly rejected, {} exported after it",
        report["replay_read"],
        report["judged"],
        report["llm_calls"],
        up,
        down,
        jsonl(&scope.path("after-rejudge.jsonl")).len()
    );

    // Graceful shutdown: every service drains and exits cleanly on SIGTERM.
    for stage in STAGES {
        let s = services.get_mut(stage).unwrap();
        let status = s.stop(90).unwrap_or_else(|| panic!("{stage} did not stop on SIGTERM:\n{}", s.log_text()));
        assert!(status.success(), "{stage} exited with {status}:\n{}", s.log_text());
        assert!(s.log_text().contains("stopped"), "{stage} did not drain:\n{}", s.log_text());
    }
    eprintln!(
        "e2e: {} chunks, {} drafts, {} regenerated, {} accepted, {} rejected in {:.0?}",
        ledger.chunks.len(),
        ledger.drafts.len(),
        ledger.regenerated.len(),
        ledger.accepted.len(),
        ledger.rejected.len(),
        started.elapsed()
    );
}

/// The sum of the metric lines starting with `series` (a family and the start of its labels).
fn metric_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Waits until the pipeline is quiet: nothing in flight in generate or judge, and the drafts, judged and
/// regenerate topics and the judge service's LLM calls the same for 30 s. Returns the topics' high watermarks
/// and the judge's calls then.
async fn quiet(
    kafka: &distillery_kafka::KafkaConfig,
    services: &HashMap<&str, Service>,
    deadline: Duration,
) -> (i64, f64) {
    let (mut still_since, mut last) = (Instant::now(), (-1, -1.0));
    let started = Instant::now();
    loop {
        let now = (
            high_watermarks(kafka, &[Topic::Drafts, Topic::Judged, Topic::Regenerate]),
            metric_sum(&services["judge"].metrics().await, "distillery_llm_calls_total{"),
        );
        let mut busy = 0.0;
        for stage in ["generate", "judge"] {
            busy += metric_sum(&services[stage].metrics().await, "distillery_in_flight{");
        }
        if now != last || busy > 0.0 {
            (still_since, last) = (Instant::now(), now);
        } else if still_since.elapsed() >= Duration::from_secs(30) {
            return now;
        }
        assert!(started.elapsed() < deadline, "the pipeline never went quiet: {now:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The sum of the high watermarks of some topics' partitions (what they have ever held).
fn high_watermarks(kafka: &distillery_kafka::KafkaConfig, topics: &[Topic]) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", format!("{}watermarks", kafka.group_prefix))
        .create()
        .expect("a consumer");
    let names = kafka.topic_names();
    let mut sum = 0;
    for t in topics {
        let name = names.name(*t);
        let metadata = consumer.fetch_metadata(Some(&name), Duration::from_secs(30)).expect("metadata");
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            sum += consumer.fetch_watermarks(&name, p.id(), Duration::from_secs(30)).expect("watermarks").1;
        }
    }
    sum
}
