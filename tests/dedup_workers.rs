//! Near-duplicates with two dedup workers: two `distillery service dedup` processes in one consumer group on
//! the real Kafka-protocol broker, the real sentence encoder, groups of near-duplicate judged examples
//! published at once with different keys (so they land on different partitions, so on both workers, at the
//! same time). Of each group exactly one must be accepted and every other one rejected as `duplicate`,
//! naming the accepted record and a similarity at or above the threshold; unrelated examples are all
//! accepted. Both workers must have worked, and their replicas of the claims log must have decided the same
//! claims. Run twice: each worker with an index in its own memory, then both on one Qdrant collection (the
//! stand-in speaking Qdrant's protocol, backed by Qdrant's engine: common/qdrant.rs).

mod common;
#[path = "common/qdrant.rs"]
mod qdrant;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use distillery_core::{Record, RejectReason, Topic};
use distillery_dedup::decide::DuplicateOf;

/// Groups of near-duplicates (question, answer); each group's members must collapse to one.
fn groups() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        // Verbatim repeats but for case, spacing and punctuation.
        vec![
            ("How many days of annual leave do full-time employees get?", "Twenty-five working days per year."),
            ("how many days of annual leave do full time employees get", "twenty-five working days per year"),
            ("How many days of annual leave do full-time employees get ?", "Twenty-five working days per year!"),
            ("HOW MANY DAYS OF ANNUAL LEAVE DO FULL-TIME EMPLOYEES GET?", "Twenty-five working days per year."),
        ],
        // The same answer to the question with the company named (embeddings put these at ~0.8).
        vec![
            ("What is the notice period for resignations?", "One month, given in writing to your manager."),
            (
                "What is the notice period for resignations in Larkspur Instruments?",
                "One month, given in writing to your manager.",
            ),
            (
                "At Larkspur Instruments, what is the notice period for resignations?",
                "One month, given in writing to your manager.",
            ),
            (
                "What is the notice period for resignations at Larkspur Instruments Ltd?",
                "One month, given in writing to your manager.",
            ),
        ],
        // Near-verbatim: a word or two changed in a long example.
        vec![
            (
                "Which documents must accompany an expense claim submitted through the finance portal?",
                "Every expense claim must include the original itemised receipts, the project code the cost is \
                 charged to, and the approval of the budget holder before the finance team reimburses it.",
            ),
            (
                "Which documents must accompany an expense claim submitted via the finance portal?",
                "Every expense claim must include the original itemised receipts, the project code the cost is \
                 charged to, and the approval of the budget holder before the finance team reimburses it.",
            ),
            (
                "Which documents must accompany an expense claim that is submitted through the finance portal?",
                "Every expense claim must include the original itemised receipts, the project code the cost is \
                 charged to, and the approval of the budget holder before the finance team will reimburse it.",
            ),
        ],
        // Paraphrases close in meaning and words.
        vec![
            ("Who approves purchase orders above 10,000 euros?", "The chief financial officer approves them."),
            ("Who approves purchase orders over 10,000 euros?", "The chief financial officer approves them."),
            ("Who approves purchase orders above 10 000 euros?", "They are approved by the chief financial officer."),
        ],
    ]
}

/// Examples unlike each other and the groups: all must be accepted.
fn singles() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Where is the head office of the company?", "In Lyon, at 12 rue de la République."),
        ("What safety shoes are required in the workshop?", "Steel-toe shoes rated S3."),
        ("How often are fire drills held?", "Twice a year, in spring and autumn."),
        ("Which VPN client do remote employees use?", "WireGuard, configured by the IT service desk."),
    ]
}

fn judged(id: &str, question: &str, answer: &str) -> Record {
    let mut j = distillery_core::codec::fixtures::judged();
    j.id = format!("j-{id}");
    j.draft.id = id.to_string();
    // Keys of their own: the records spread over the partitions, so over both workers.
    j.draft.context_id = format!("ctx-{id}");
    j.draft.messages[0].content = question.to_string();
    j.draft.messages[1].content = answer.to_string();
    j.passed = true;
    Record::Judged(j)
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

/// The sum of a metric family's samples matching `filter` in a /metrics text.
fn metric_sum(metrics: &str, name: &str, filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The two runs share the machine's cores: one after the other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dedup_workers_accept_exactly_one_of_concurrent_near_duplicates() {
    let _serial = SERIAL.lock().await;
    let accepted = two_workers("dedup2", "", "each worker's index in its memory").await;
    assert!(accepted > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dedup_workers_on_one_qdrant_collection_accept_exactly_one_of_concurrent_near_duplicates() {
    let _serial = SERIAL.lock().await;
    let qdrant = qdrant::QdrantStandIn::start().await;
    let vectors = format!("[vectors]\nqdrant_url = \"{}\"\ncollection = \"accepted\"\n", qdrant.url);
    let accepted = two_workers("dedup2q", &vectors, "one Qdrant collection (gRPC stand-in on Qdrant's engine)").await;
    // Both workers searched and stored through the protocol; the collection holds each accepted example once.
    // The workers start together: both may try to create the collection, and the one refused finds it.
    assert_eq!(qdrant.collections(), 1, "one collection for both workers");
    assert!((1..=2).contains(&qdrant.served("Collections/create")));
    assert!(qdrant.served("Points/upsert") >= 2 * accepted, "every replica stores what it decides");
    assert!(qdrant.served("Points/query") > 0 && qdrant.served("Points/scroll") > 0);
    let idx = distillery_vector::QdrantIndex::connect(&qdrant.url, None, "accepted", 384).await.expect("connect");
    use distillery_vector::VectorIndex;
    assert_eq!(idx.count("default").await.unwrap(), accepted);
}

/// Two dedup workers with `vectors_toml` on the groups and singles; returns how many were accepted.
async fn two_workers(test: &str, vectors_toml: &str, what: &str) -> usize {
    let servers = Servers::from_env();
    let scope = Scope::new(test);
    let kafka = scope.kafka(&servers);
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    distillery_kafka::ensure_topics(&kafka, &Topic::ALL).await.expect("topics");

    let mut workers = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let cfg = scope.path(&format!("dedup-{i}.toml"));
        let mut toml = scope.service_toml(&servers, port);
        toml += &format!("[embedder]\nmodel_dir = \"{}\"\n[dedup]\nthreshold = 0.95\n", servers.embed_dir);
        toml += vectors_toml;
        std::fs::write(&cfg, toml).unwrap();
        workers.push(Service::start("dedup", &cfg, port, &logs));
    }
    // Both workers in the group, each with partitions of its own, before anything is published.
    wait_for_both(&workers).await;

    // Every group's members and the singles, interleaved, published in one batch.
    let groups = groups();
    let mut records = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    let longest = groups.iter().map(Vec::len).max().unwrap();
    for k in 0..longest {
        for (g, members) in groups.iter().enumerate() {
            if let Some((q, a)) = members.get(k) {
                let id = format!("g{g}-v{k}");
                group_of.insert(id.clone(), g);
                records.push(judged(&id, q, a));
            }
        }
    }
    let single_ids: Vec<String> = (0..singles().len()).map(|i| format!("single-{i}")).collect();
    for (id, (q, a)) in single_ids.iter().zip(singles()) {
        records.push(judged(id, q, a));
    }
    let total = records.len();
    let publisher = distillery_kafka::KafkaPublisher::new(&kafka).expect("producer");
    let sends = records.iter().map(|r| {
        let bytes = distillery_core::Codec::global().encode(r).expect("encode");
        let publisher = &publisher;
        async move { publisher.publish_raw(Topic::Judged, r.key(), &bytes).await.expect("publish judged") }
    });
    futures::future::join_all(sends).await;

    // Every example's outcome.
    let mut tap = Tap::new(&kafka, &[Topic::Accepted, Topic::Rejected]);
    let started = Instant::now();
    let (accepted, rejected) = loop {
        tap.poll(Duration::from_secs(1)).await;
        let accepted: HashSet<String> = tap
            .records(Topic::Accepted)
            .iter()
            .filter_map(|r| if let Record::Accepted(a) = r { Some(a.id.clone()) } else { None })
            .collect();
        let rejected: HashMap<String, distillery_core::Rejected> = tap
            .records(Topic::Rejected)
            .iter()
            .filter_map(|r| if let Record::Rejected(x) = r { Some((x.subject_id.clone(), x.clone())) } else { None })
            .collect();
        if accepted.len() + rejected.len() >= total {
            break (accepted, rejected);
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{} of {total} outcomes after 300 s; logs:\n{}\n{}",
            accepted.len() + rejected.len(),
            workers[0].log_text(),
            workers[1].log_text()
        );
    };
    assert!(accepted.is_disjoint(&rejected.keys().cloned().collect()), "an example both accepted and rejected");

    // Exactly one of each group accepted; the others duplicates of it, with their similarity.
    let threshold_by_method = |d: &DuplicateOf| d.similarity >= d.threshold;
    for (g, members) in groups.iter().enumerate() {
        let ids: Vec<String> = (0..members.len()).map(|k| format!("g{g}-v{k}")).collect();
        let winners: Vec<&String> = ids.iter().filter(|id| accepted.contains(*id)).collect();
        assert_eq!(winners.len(), 1, "group {g}: accepted {winners:?}; rejected {rejected:#?}");
        for id in ids.iter().filter(|id| *id != winners[0]) {
            let r = rejected.get(id).unwrap_or_else(|| panic!("group {g}: {id} has no outcome"));
            assert_eq!(r.reason, RejectReason::Duplicate, "{id}: {}", r.detail);
            let d = DuplicateOf::parse(&r.detail).unwrap_or_else(|| panic!("{id}: detail {}", r.detail));
            assert_eq!(&d.id, winners[0], "{id} duplicates the accepted member: {}", r.detail);
            assert!(threshold_by_method(&d) && d.similarity <= 1.0001, "{id}: {}", r.detail);
            assert_eq!(group_of[&d.id], g);
        }
    }
    for id in &single_ids {
        assert!(accepted.contains(id), "{id} is unlike everything, yet: {:?}", rejected.get(id).map(|r| &r.detail));
    }
    assert_eq!(accepted.len(), groups.len() + single_ids.len());

    // Both workers took inputs (a rebalance may replay some), and both replicas, once at the same log
    // position, decided every claim alike.
    let position = |m: &str| metric_sum(m, "distillery_dedup_claims_position", "");
    let started = Instant::now();
    let (m0, m1) = loop {
        let (m0, m1) = (workers[0].metrics().await, workers[1].metrics().await);
        if position(&m0) > 0.0 && position(&m0) == position(&m1) {
            break (m0, m1);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "replicas at {} and {}", position(&m0), position(&m1));
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let inputs = |m: &str| metric_sum(m, "distillery_records_in_total", "stage=\"dedup\"");
    assert!(inputs(&m0) > 0.0 && inputs(&m1) > 0.0, "worker inputs {} and {}", inputs(&m0), inputs(&m1));
    assert!(inputs(&m0) + inputs(&m1) >= total as f64);
    let decided = |m: &str, outcome: &str| {
        metric_sum(m, "distillery_dedup_claims_decided_total", &format!("outcome=\"{outcome}\""))
    };
    for outcome in ["accepted", "duplicate", "replay"] {
        assert_eq!(decided(&m0, outcome), decided(&m1, outcome), "replicas disagree on {outcome} claims");
    }
    assert_eq!(decided(&m0, "accepted"), accepted.len() as f64);
    let claimed_dups = metric_sum(&m0, "distillery_dedup_duplicates_total", "path=\"claim\"")
        + metric_sum(&m1, "distillery_dedup_duplicates_total", "path=\"claim\"");
    let prechecked = metric_sum(&m0, "distillery_dedup_duplicates_total", "path=\"precheck\"")
        + metric_sum(&m1, "distillery_dedup_duplicates_total", "path=\"precheck\"");
    assert!(claimed_dups + prechecked >= rejected.len() as f64);
    let line = format!(
        "dedup with two workers ({what}): {total} examples, {} accepted, {} duplicates ({claimed_dups} decided in the claims log against concurrent claims, {prechecked} against earlier accepted ones)",
        accepted.len(),
        rejected.len()
    );
    report(&format!("{line}\n"));
    for w in &mut workers {
        assert!(w.stop(60).is_some_and(|s| s.success()), "a worker did not stop cleanly: {}", w.log_text());
    }
    accepted.len()
}
