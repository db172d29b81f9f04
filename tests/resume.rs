//! `distillery run` killed mid-way (SIGKILL) and run again on the same `--out`, against the real llama.cpp
//! server: the second run continues where the first stopped (only calls that never completed are made
//! again), no line appears twice in any file, the summary and `distillery status` count the whole
//! dataset, and a third run on the finished folder makes no LLM call and changes no byte. A fourth run after
//! an edit of one section and the removal of another regenerates only the edited section's chunk (chunk ids
//! are content-based): every call it makes is about the edited text, the unchanged chunks keep their records,
//! and the exports leave out the records of the chunks the edit removed.
//!
//! LLM calls are counted by a forwarding proxy between the runs and the real server (every request goes
//! to llama.cpp unchanged; the proxy only counts them and hashes their bodies), because the server is
//! shared with the rest of the suite.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use common::{Servers, binary, jsonl};

/// Counts chat completions and remembers each one's body hash with the run that made it.
#[derive(Default)]
struct Counter {
    run: AtomicU64,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
    /// (run, body hash, whether the body mentions [`EDIT_MARK`]) of every completed call.
    done: Mutex<Vec<(u64, u64, bool)>>,
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    counter: Arc<Counter>,
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

async fn forward(State(p): State<Arc<Proxy>>, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let call = parts.method == axum::http::Method::POST && path.contains("chat/completions");
    let run = p.counter.run.load(Ordering::SeqCst);
    if call {
        let now = p.counter.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        p.counter.most_in_flight.fetch_max(now, Ordering::SeqCst);
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
    if call {
        p.counter.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    match result {
        Ok((status, bytes)) => {
            if call && status == 200 {
                let edited = String::from_utf8_lossy(&body).contains(EDIT_MARK);
                p.counter.done.lock().unwrap().push((run, hash(&body), edited));
            }
            let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Starts the proxy in front of `upstream` (the server's root, without `/v1`); returns its `/v1` URL.
async fn start_proxy(upstream: String, counter: Arc<Counter>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();
    let app = axum::Router::new().fallback(forward).with_state(Arc::new(Proxy { upstream, client, counter }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

/// What the edit of run 4 writes into the on-call section (in place of "350 euros").
const EDIT_MARK: &str = "410 euros";

/// A document with several sections (several chunks), facts a small model can ask about.
const HANDBOOK: &str = "# Field Service Handbook\n\n\
## Travel\n\nTechnicians book travel through the Wayfarer portal at least 10 days before a trip. \
Economy class is required for flights shorter than 6 hours. Hotel stays are capped at 180 euros per night \
in capital cities and 120 euros elsewhere. Receipts are uploaded within 5 working days of returning.\n\n\
## Safety equipment\n\nEvery technician receives a helmet, insulated gloves rated to 1000 volts and a \
gas detector. The gas detector is calibrated every 90 days by the depot in Lyon. A detector past its \
calibration date must not be taken on site. Lost equipment is reported to the safety officer within 24 hours.\n\n\
## On-call duty\n\nOn-call weeks start on Monday at 08:00 and end the next Monday at 08:00. An on-call \
technician answers a pager alert within 15 minutes and reaches a priority-one site within 2 hours. Each \
on-call week is paid a flat allowance of 350 euros, plus overtime for hours worked on site.\n\n\
## Vehicles\n\nService vans are leased for 4 years and serviced every 30000 kilometres. Fuel cards have a \
monthly limit of 600 euros. Damage to a van is photographed and reported in the fleet app the same day. \
Private use of a service van is not allowed, except for commuting during on-call weeks.\n";

fn run_args(input: &Path, out: &Path, llm: &str, model: &str) -> Vec<String> {
    [
        "run",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--llm-base-url",
        llm,
        "--llm-model",
        model,
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Every dataset file of a folder and its bytes (the store file and its journal aside).
fn dataset_files(dir: &Path) -> HashMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            (name.ends_with(".jsonl") || name.ends_with(".parquet")).then(|| (name, std::fs::read(e.path()).unwrap()))
        })
        .collect()
}

fn calls_of(counter: &Counter, run: u64) -> Vec<u64> {
    counter.done.lock().unwrap().iter().filter(|(r, ..)| *r == run).map(|(_, h, _)| *h).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_without_repeating_calls_or_lines() {
    let servers = Servers::from_env();
    let counter = Arc::new(Counter::default());
    let upstream = servers.llm.trim_end_matches('/').trim_end_matches("/v1").to_string();
    let llm = start_proxy(upstream, counter.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("field-service.md"), HANDBOOK).unwrap();
    let out = dir.path().join("out");
    // QA pairs only: fewer calls per chunk, so the test stays short on a small CPU.
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[generate]\nmodes = [\"qa\"]\n").unwrap();
    let mut args = run_args(&input, &out, &llm, &servers.llm_model);
    args.extend(["--config".to_string(), config.to_str().unwrap().to_string()]);

    // Run 1: killed (SIGKILL: no drain, nothing flushed) once a few calls have completed.
    counter.run.store(1, Ordering::SeqCst);
    let mut first = Command::new(binary()).args(&args).spawn().unwrap();
    let t0 = Instant::now();
    let finished_early = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break Some(status);
        }
        if calls_of(&counter, 1).len() >= 3 {
            first.kill().unwrap();
            first.wait().unwrap();
            break None;
        }
        assert!(t0.elapsed() < Duration::from_secs(900), "run 1 made fewer than 3 calls in 15 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(finished_early.is_none(), "run 1 finished before it could be killed: {finished_early:?}");
    let in_flight_at_kill = counter.in_flight.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first_calls: HashSet<u64> = calls_of(&counter, 1).into_iter().collect();

    // Run 2: the same command on the same --out.
    counter.run.store(2, Ordering::SeqCst);
    let second = Command::new(binary()).args(&args).output().unwrap();
    assert!(second.status.success(), "run 2 failed: {}", String::from_utf8_lossy(&second.stderr));
    let second_calls = calls_of(&counter, 2);
    let repeated = second_calls.iter().filter(|h| first_calls.contains(h)).count();
    // A call is made again only if its answer never reached the store: those in flight at the kill, and
    // those whose answer arrived but whose outputs were not yet recorded (at most one per stage slot).
    let slots = counter.most_in_flight.load(Ordering::SeqCst);
    assert!(
        repeated as u64 <= in_flight_at_kill + slots,
        "run 2 repeated {repeated} of run 1's {} completed calls (in flight at the kill: {in_flight_at_kill}, slots {slots})",
        first_calls.len()
    );

    let accepted = jsonl(&out.join("accepted.jsonl"));
    let ids: HashSet<&str> = accepted.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), accepted.len(), "an accepted record appears twice");
    let rejected = jsonl(&out.join("rejected.jsonl"));
    let subjects: HashSet<String> = rejected.iter().map(|v| v["id"].to_string()).collect();
    assert_eq!(subjects.len(), rejected.len(), "a rejected subject appears twice");
    let qa = accepted.iter().filter(|v| v["kind"] == "qa").count();
    assert_eq!(jsonl(&out.join("alpaca.jsonl")).len(), qa, "one Alpaca line per accepted QA pair");
    assert_eq!(jsonl(&out.join("sharegpt.jsonl")).len(), accepted.len(), "one ShareGPT line per accepted record");
    assert_eq!(jsonl(&out.join("documents.jsonl")).len(), 1, "the document is listed once");

    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let resumed = &summary["resumed"];
    let continued = resumed["chunks_skipped"].as_u64().unwrap() + resumed["chunks_continued"].as_u64().unwrap();
    assert!(continued > 0, "run 2 took nothing from the store: {resumed}");
    let dataset = &summary["dataset"];
    assert_eq!(dataset["accepted"].as_u64().unwrap() as usize, accepted.len(), "the summary counts the whole dataset");
    assert_eq!(dataset["rejected"].as_u64().unwrap() as usize, rejected.len());
    assert_eq!(dataset["chunks_pending"], 0, "every chunk is done after run 2: {dataset}");
    assert_eq!(dataset["runs"], 2, "both runs are recorded: {dataset}");
    assert!(
        dataset["llm_calls"].as_u64().unwrap() >= second_calls.len() as u64,
        "the store counts every run's calls: {dataset}"
    );

    let status = Command::new(binary()).args(["status", out.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let docs: Vec<serde_json::Value> =
        String::from_utf8(status.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["name"], "field-service.md");
    assert!(docs[0]["chunks"].as_u64().unwrap() >= 1, "{}", docs[0]);
    assert_eq!(docs[0]["chunks_pending"], 0, "{}", docs[0]);
    assert_eq!(docs[0]["accepted"].as_u64().unwrap() as usize, accepted.len());
    assert!(docs[0]["tokens"].as_u64().unwrap() > 0, "{}", docs[0]);

    // Run 3 on the finished folder: no call, not a byte changed.
    let before = dataset_files(&out);
    counter.run.store(3, Ordering::SeqCst);
    let third = Command::new(binary()).args(&args).output().unwrap();
    assert!(third.status.success(), "run 3 failed: {}", String::from_utf8_lossy(&third.stderr));
    assert_eq!(calls_of(&counter, 3).len(), 0, "a finished dataset makes no LLM call");
    let after = dataset_files(&out);
    assert_eq!(before.keys().collect::<HashSet<_>>(), after.keys().collect::<HashSet<_>>());
    for (name, bytes) in &before {
        assert!(after[name] == *bytes, "{name} changed on a rerun of a finished dataset");
    }

    // Run 4: one section edited, one removed. Only the edited chunk is generated and judged again.
    let doc_v1 = jsonl(&out.join("documents.jsonl"));
    let chunks_v1: Vec<String> =
        doc_v1[0]["chunk_ids"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert!(chunks_v1.len() >= 3, "the handbook is several chunks: {:?}", doc_v1[0]);
    let vehicles = HANDBOOK.find("## Vehicles").unwrap();
    let edited = HANDBOOK[..vehicles].replace("350 euros", EDIT_MARK);
    assert_ne!(edited, HANDBOOK[..vehicles]);
    std::fs::write(input.join("field-service.md"), &edited).unwrap();
    counter.run.store(4, Ordering::SeqCst);
    let fourth = Command::new(binary()).args(&args).output().unwrap();
    assert!(fourth.status.success(), "run 4 failed: {}", String::from_utf8_lossy(&fourth.stderr));
    let fourth_calls: Vec<bool> =
        counter.done.lock().unwrap().iter().filter(|(r, ..)| *r == 4).map(|(.., edited)| *edited).collect();
    assert!(!fourth_calls.is_empty(), "the edited section was generated again");
    assert!(
        fourth_calls.iter().all(|e| *e),
        "{} of run 4's {} calls were about text the edit did not touch",
        fourth_calls.iter().filter(|e| !**e).count(),
        fourth_calls.len()
    );
    let docs_v2 = jsonl(&out.join("documents.jsonl"));
    let v2 = docs_v2.iter().find(|d| d["supersedes"] == doc_v1[0]["id"]).expect("the new version is listed");
    let chunks_v2: HashSet<String> =
        v2["chunk_ids"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    let kept = chunks_v1.iter().filter(|c| chunks_v2.contains(*c)).count();
    assert!(
        kept + 2 >= chunks_v1.len() && kept >= 1,
        "only the edited and the removed section's chunks change ids: {kept} of {} kept",
        chunks_v1.len()
    );
    let accepted_all = jsonl(&out.join("accepted.jsonl"));
    let mut current_ids = HashSet::new();
    let mut dropped = 0;
    for a in &accepted_all {
        if chunks_v2.contains(a["chunk_id"].as_str().unwrap()) {
            current_ids.insert(a["id"].as_str().unwrap().to_string());
        } else {
            dropped += 1;
        }
    }
    assert_eq!(
        jsonl(&out.join("alpaca.jsonl")).len(),
        current_ids.len(),
        "the export holds exactly the accepted records of the current chunks (kept and regenerated)"
    );
    let status = Command::new(binary()).args(["status", out.to_str().unwrap(), "--json"]).output().unwrap();
    let docs: Vec<serde_json::Value> =
        String::from_utf8(status.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let current = docs.iter().find(|d| d["document_id"] == v2["id"]).expect("status lists the new version");
    assert_eq!(current["accepted"].as_u64().unwrap() as usize, current_ids.len(), "{current}");
    // Nothing pending after the edit: the chunks the new version took over are not left pending under the
    // old one.
    for d in &docs {
        assert_eq!(d["chunks_pending"], 0, "{d}");
    }

    common::report(&format!(
        "resume (SIGKILL after {} calls): run 2 made {} calls, repeated {repeated} (in flight at the kill {in_flight_at_kill}); \
         run 3 made 0 calls; {} accepted, {} rejected, duplicate lines 0; after an edit of 1 section and the removal \
         of 1: run 4 made {} calls (all about the edited text), {kept} of {} chunks kept their ids, {} records current, \
         {dropped} left out",
        first_calls.len(),
        second_calls.len(),
        accepted.len(),
        rejected.len(),
        fourth_calls.len(),
        chunks_v1.len(),
        current_ids.len()
    ));
}
