//! The LLM budget across replicas: two `distillery service generate` processes call one real llama.cpp
//! server through a proxy that answers every fourth request with 429 (Retry-After: 1) and counts the
//! requests it has in flight. The configured budget (`max_concurrency = 3`) is the endpoint's: the two
//! workers share it over the control topic, so the proxy must never see more than 3 requests at once,
//! though each worker alone would keep 3 in flight (runtime concurrency 4). The 429s must shrink a worker's
//! congestion window (AIMD), and the pair must finish every chunk.
//!
//! And the share outlives a broker outage: two members on a broker of this test's own (tansu behind a proxy
//! that cuts every connection) stop using their parts while their heartbeats cannot come back, and take
//! them up again, still counting each other, once the broker is back.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::*;
use distillery_core::{Record, Topic};
use distillery_kafka::llm_budget::{KafkaBudgetShare, Timing};
use distillery_llm::{BudgetGroup, BudgetShare, BudgetUsage, Limits, Share};
use tokio::sync::watch;

/// The budget the two workers share.
const BUDGET: usize = 3;
/// Chunks to generate from (one short call each, plus retries).
const CHUNKS: usize = 8;

#[derive(Default)]
struct Counts {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    requests: AtomicUsize,
    injected: AtomicUsize,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    counts: Counts,
}

/// Forwards to the LLM server; every fourth chat request gets a 429 instead.
async fn forward(State(p): State<Arc<Proxy>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let chat = uri.path().ends_with("/chat/completions");
    if chat {
        let now = p.counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        p.counts.peak.fetch_max(now, Ordering::SeqCst);
    }
    let response = if chat && p.counts.requests.fetch_add(1, Ordering::SeqCst) % 4 == 3 {
        p.counts.injected.fetch_add(1, Ordering::SeqCst);
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "{\"error\":{\"message\":\"slow down\"}}")
            .into_response()
    } else {
        let url = format!("{}{}", p.upstream, uri.path_and_query().map_or("", |q| q.as_str()));
        let mut req = p.http.request(method, url).body(body);
        if let Some(ct) = headers.get("content-type") {
            req = req.header("content-type", ct);
        }
        match req.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let bytes = r.bytes().await.unwrap_or_default();
                (status, [("content-type", "application/json")], bytes).into_response()
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    };
    if chat {
        p.counts.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    response
}

fn chunk(i: usize) -> Record {
    let topics = [
        "Employees get 25 days of paid leave per year. Up to 5 unused days carry over to the next year.",
        "Expense claims need itemised receipts and are paid within 10 working days of approval.",
        "The office opens at 8:00 and closes at 19:00 from Monday to Friday.",
        "Fire drills take place twice a year; the assembly point is the north car park.",
    ];
    let mut c = distillery_core::codec::fixtures::chunk();
    c.id = format!("chunk-{i}");
    c.document_id = format!("doc-{i}");
    c.context_id = format!("ctx-{i}");
    c.context_chunk_ids = vec![c.id.clone()];
    c.text = topics[i % topics.len()].to_string();
    c.context_text = c.text.clone();
    c.heading_path = vec![format!("Policy {i}")];
    Record::Chunk(c)
}

/// The partitions a worker was last assigned, from its log's last `partitions assigned` line.
fn assigned(log: &str) -> Vec<String> {
    log.lines()
        .rfind(|l| l.contains("partitions assigned"))
        .map(|l| l.split('"').filter(|p| p.contains(".") && p.contains('/')).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Both workers hold partitions, and neither log has changed its assignment for two seconds.
async fn wait_for_both(workers: &[Service]) {
    let started = Instant::now();
    let mut last = (Vec::new(), Vec::new());
    let mut stable_since = Instant::now();
    loop {
        let now = (assigned(&workers[0].log_text()), assigned(&workers[1].log_text()));
        if now != last {
            last = now.clone();
            stable_since = Instant::now();
        }
        if !now.0.is_empty() && !now.1.is_empty() && stable_since.elapsed() > Duration::from_secs(2) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the two workers did not both get partitions ({now:?}); logs:\n{}\n{}",
            workers[0].log_text(),
            workers[1].log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_generate_workers_share_one_budget_and_back_off_on_429() {
    let servers = Servers::from_env();
    let scope = Scope::new("budget2");
    let kafka = scope.kafka(&servers);
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    distillery_kafka::ensure_topics(&kafka, &Topic::ALL).await.expect("topics");

    let proxy = Arc::new(Proxy {
        upstream: servers.llm.trim_end_matches('/').trim_end_matches("/v1").to_string(),
        http: reqwest::Client::new(),
        counts: Counts::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut workers = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let cfg = scope.path(&format!("generate-{i}.toml"));
        let mut toml = scope.service_toml(&servers, port).replace("[runtime]\n", "[runtime]\nconcurrency = 4\n");
        toml += &format!(
            "[llm]\nbase_url = \"{proxy_url}\"\nmodel = \"{}\"\nmax_tokens = 160\ntemperature = 0.3\n\
             max_concurrency = {BUDGET}\nmax_retries = 6\ninitial_backoff_ms = 200\nmax_backoff_ms = 2000\n\
             [generate]\nmodes = [\"qa\"]\npairs_per_chunk = 1\nrepair = false\n[generate.quality]\nmin_grounding = 0.3\n",
            servers.llm_model
        );
        std::fs::write(&cfg, toml).unwrap();
        workers.push(Service::start("generate", &cfg, port, &logs));
    }
    wait_for_both(&workers).await;

    let publisher = distillery_kafka::KafkaPublisher::new(&kafka).expect("producer");
    let started = Instant::now();
    for i in 0..CHUNKS {
        let r = chunk(i);
        let bytes = distillery_core::Codec::global().encode(&r).expect("encode");
        publisher.publish_raw(Topic::Chunks, r.key(), &bytes).await.expect("publish chunk");
    }

    // Every chunk ends in drafts or a rejection.
    let mut tap = Tap::new(&kafka, &[Topic::Drafts, Topic::Rejected, Topic::DeadLetter]);
    loop {
        tap.poll(Duration::from_secs(2)).await;
        let mut done: HashSet<String> = HashSet::new();
        for r in tap.records(Topic::Drafts) {
            if let Record::Draft(d) = r {
                done.insert(d.chunk_id.clone());
            }
        }
        for r in tap.records(Topic::Rejected) {
            if let Record::Rejected(x) = r
                && let Some(c) = &x.chunk_id
            {
                done.insert(c.clone());
            }
        }
        assert!(tap.records(Topic::DeadLetter).is_empty(), "dead letters: {:?}", tap.records(Topic::DeadLetter));
        if done.len() >= CHUNKS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{} of {CHUNKS} chunks done after 600 s (proxy peak {}); logs:\n{}\n{}",
            done.len(),
            proxy.counts.peak.load(Ordering::SeqCst),
            workers[0].log_text(),
            workers[1].log_text()
        );
    }
    let finished = started.elapsed();

    let (m0, m1) = (workers[0].metrics().await, workers[1].metrics().await);
    let peak = proxy.counts.peak.load(Ordering::SeqCst);
    let requests = proxy.counts.requests.load(Ordering::SeqCst);
    let injected = proxy.counts.injected.load(Ordering::SeqCst);
    assert!((1..=BUDGET).contains(&peak), "{peak} requests in flight at once at the server, budget {BUDGET}");
    assert!(injected >= 1, "no 429 was injected ({requests} requests)");
    // Both workers called the model, both counted two members, and the 429s halved a window.
    for m in [&m0, &m1] {
        assert!(metric_sum(m, "distillery_llm_calls_total") > 0.0, "a worker made no LLM call:\n{m}");
        assert_eq!(metric_sum(m, "distillery_llm_budget_members"), 2.0, "members:\n{m}");
    }
    let backoffs = metric_sum(&m0, "distillery_llm_backoffs_total") + metric_sum(&m1, "distillery_llm_backoffs_total");
    assert!(backoffs >= 1.0, "429s did not shrink any congestion window");
    let line = format!(
        "LLM budget with two generate workers: {CHUNKS} chunks in {:.1} s, {requests} requests ({injected} answered 429 by the proxy), at most {peak} in flight at the server (shared budget {BUDGET}), {backoffs} window halvings",
        finished.as_secs_f64()
    );
    report(&format!("{line}\n"));
    for w in &mut workers {
        assert!(w.stop(60).is_some_and(|s| s.success()), "a worker did not stop cleanly: {}", w.log_text());
    }
}

/// Waits until `pred` holds for the member's share, or fails after `limit` naming `what`.
async fn share_until(rx: &mut watch::Receiver<Share>, limit: Duration, what: &str, pred: impl Fn(&Share) -> bool) {
    let held = matches!(tokio::time::timeout(limit, rx.wait_for(|s| pred(s))).await, Ok(Ok(_)));
    assert!(held, "{what} within {limit:?}: share now {:?}", *rx.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_members_cut_off_by_a_broker_outage_take_their_parts_up_again() {
    let scope = Scope::new("budgetout");
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let broker = broker::Broker::start(&logs).await;
    let kafka = distillery_kafka::KafkaConfig {
        brokers: broker.brokers(),
        topic_prefix: scope.prefix.clone(),
        group_prefix: format!("{}-", scope.name),
        ..Default::default()
    };
    let timing = Timing { lease: Duration::from_secs(6), heartbeat: Duration::from_secs(1) };
    let group = BudgetGroup { key: "http://llm|model".into(), model: "model".into() };
    let limits = Limits { concurrency: 4, requests_per_second: None, tokens_per_minute: None };
    // Two replicas: each its own share (its own clients), as two processes.
    let shares = [KafkaBudgetShare::new(&kafka, timing), KafkaBudgetShare::new(&kafka, timing)];
    let mut members = Vec::new();
    for share in &shares {
        members.push(share.join(&group, limits, Arc::new(BudgetUsage::default())).await);
    }
    let both = |s: &Share| s.active && s.members == 2;
    for rx in &mut members {
        share_until(rx, Duration::from_secs(90), "both members active, counting two", both).await;
    }
    let parts: usize = members.iter().map(|rx| rx.borrow().concurrency()).sum();
    assert_eq!(parts, 4, "the parts add up to the limit");

    // The broker unreachable for 20 s: no heartbeat comes back, so neither may go on using its part.
    broker.front.down();
    let cut = Instant::now();
    for rx in &mut members {
        share_until(rx, Duration::from_secs(20), "a member cut off from the control topic stopped", |s| !s.active)
            .await;
    }
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(cut.elapsed())).await;
    broker.front.up().await;
    let back = Instant::now();
    for rx in &mut members {
        share_until(rx, Duration::from_secs(120), "after the outage, both members active again, counting two", both)
            .await;
    }
    let parts: usize = members.iter().map(|rx| rx.borrow().concurrency()).sum();
    assert_eq!(parts, 4, "after the outage the parts add up to the limit");
    report(&format!(
        "LLM budget after a 20 s broker outage: both members active again {:.1} s after the broker came back\n",
        back.elapsed().as_secs_f64()
    ));
    for share in &shares {
        share.leave().await;
    }
}
