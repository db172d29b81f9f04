//! The Kafka runtime under faults, against the real Kafka-protocol broker (issue 14, defects 3, 4 and 7):
//! a stage that hangs longer than `max.poll.interval.ms` keeps its group membership (partitions are paused,
//! polling goes on); a panicking stage has that input dead-lettered with the panic's message and the
//! partition commits past it; a record over the message size limit dead-letters its input instead of being
//! retried forever; a scaling step moves only the partitions that change owner (cooperative-sticky);
//! `distillery replay-dead-letters` sends transient dead letters back, once (issue 14, defect 2). (A fatal
//! error of the idempotent producer is injected with librdkafka's mock cluster: crates/distillery-kafka
//! tests/fatal_producer.rs.) And partitions paused while the broker went away (the member's session lost)
//! are fetched again once it is back (librdkafka keeps a partition's pause across a re-assignment).

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distillery_core::codec::fixtures;
use distillery_core::{Codec, Input, Metrics, Record, Stage, StageError, Topic};
use distillery_kafka::{KafkaConfig, KafkaPublisher, KafkaRuntimeError};
use distillery_runtime::http::Ready;
use distillery_runtime::{Publisher, RetryPolicy, RuntimeConfig};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};
use tokio_util::sync::CancellationToken;

fn kafka(test: &str) -> KafkaConfig {
    let brokers = std::env::var("DISTILLERY_TEST_KAFKA").expect(
        "DISTILLERY_TEST_KAFKA is not set: run through scripts/test (or scripts/test-servers start and source .cache/run/test-env)",
    );
    let tag =
        format!("{test}{}", &distillery_core::ids::hash_parts(&[test, &distillery_core::now_ms().to_string()])[..8]);
    KafkaConfig {
        brokers,
        topic_prefix: format!("{tag}."),
        group_prefix: format!("{tag}-"),
        session_timeout_ms: 6000,
        partitions: 3,
        statistics_interval_ms: 0,
        ..KafkaConfig::default()
    }
}

/// Documents by key: `hang:<ms>` sleeps, `quiet:<ms>` sleeps and makes nothing, `panic` panics, `big` makes a
/// 1.5 MB chunk, anything else one chunk.
struct Behaving;

impl Stage for Behaving {
    fn name(&self) -> &'static str {
        "behaving"
    }
    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Documents]
    }
    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Document(doc)) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected", "not a document"));
        };
        let key = doc.source.key.clone();
        if let Some(ms) = key.strip_prefix("hang:") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        }
        if let Some(ms) = key.strip_prefix("quiet:") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            return Ok(Vec::new());
        }
        if key == "panic" {
            panic!("the parser hit an impossible state in {key}");
        }
        let mut chunk = fixtures::chunk();
        chunk.id = format!("chunk-{}", doc.id);
        chunk.document_id = doc.id.clone();
        if key == "big" {
            chunk.text = "x".repeat(1_500_000);
        }
        Ok(vec![Record::Chunk(chunk)])
    }
}

fn doc(key: &str) -> Record {
    let mut d = fixtures::document();
    d.source.key = key.into();
    d.id = distillery_core::ids::hash_parts(&["doc", key]);
    Record::Document(d)
}

/// Every record of some topics from the start, until `want` matches or `limit` passes.
async fn read_until(
    cfg: &KafkaConfig,
    topics: &[Topic],
    limit: Duration,
    want: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", format!("{}reader-{}", cfg.group_prefix, distillery_core::now_ms()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let names = cfg.topic_names();
    let list: Vec<String> = topics.iter().map(|t| names.name(*t)).collect();
    consumer.subscribe(&list.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < limit && !want(&seen) {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            let topic = names.resolve(m.topic()).unwrap();
            seen.push(Codec::global().decode(m.payload().unwrap_or_default(), topic.record_kind()).unwrap());
        }
    }
    seen
}

fn runtime(concurrency: usize) -> RuntimeConfig {
    RuntimeConfig {
        concurrency: Some(concurrency),
        retry: RetryPolicy { max_attempts: 3, initial_backoff_ms: 50, max_backoff_ms: 200 },
        drain_timeout_secs: 10,
        ..RuntimeConfig::default()
    }
}

fn counter(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    let text = metrics.render();
    text.lines()
        .filter(|l| l.starts_with(&format!("distillery_{name}{{")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

struct Running {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), KafkaRuntimeError>>,
    metrics: Arc<Metrics>,
}

fn start(cfg: &KafkaConfig, rt: RuntimeConfig, publisher: Option<Arc<KafkaPublisher>>) -> Running {
    let (cfg, metrics, ready, cancel) = (cfg.clone(), Metrics::isolated(), Ready::default(), CancellationToken::new());
    let (m, r, c) = (metrics.clone(), ready.clone(), cancel.clone());
    let handle = tokio::spawn(async move {
        let publisher = match publisher {
            Some(p) => p,
            None => Arc::new(KafkaPublisher::new(&cfg)?),
        };
        distillery_kafka::run_stage_with(&cfg, &rt, Arc::new(Behaving), m, r, publisher, c).await
    });
    Running { cancel, handle, metrics }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_stage_keeps_its_group_membership() {
    let mut cfg = kafka("hung");
    // The broker evicts a member that does not poll for 6 s; the stage hangs 15 s on one input.
    cfg.max_poll_interval_ms = 6000;
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await.unwrap();
    let run = start(&cfg, runtime(1), None);
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    publisher.publish(vec![doc("hang:15000"), doc("after")]).await.unwrap();
    let chunks = read_until(&cfg, &[Topic::Chunks], Duration::from_secs(90), |r| r.len() >= 2).await;
    assert_eq!(chunks.len(), 2, "both inputs processed: {chunks:?}");
    let revoked = counter(&run.metrics, "rebalanced_partitions_total", &[("kind", "revoke")]);
    assert_eq!(revoked, 0, "the member was never evicted (no partition revoked) while its stage hung");
    run.cancel.cancel();
    run.handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_is_dead_lettered_and_the_partition_commits_past_it() {
    let cfg = kafka("panic");
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await.unwrap();
    let run = start(&cfg, runtime(4), None);
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    publisher.publish(vec![doc("panic"), doc("fine")]).await.unwrap();
    let out = read_until(&cfg, &[Topic::DeadLetter, Topic::Chunks], Duration::from_secs(60), |r| r.len() >= 2).await;
    let dead: Vec<_> = out.iter().filter_map(|r| if let Record::DeadLetter(d) = r { Some(d) } else { None }).collect();
    assert_eq!(dead.len(), 1, "{out:?}");
    assert_eq!(dead[0].error_kind, "panic");
    assert!(dead[0].error.contains("the parser hit an impossible state in panic"), "{}", dead[0].error);
    // Both offsets done: the committed position moved past the panicking input.
    let started = Instant::now();
    while counter(&run.metrics, "committed_offset", &[]) < 2 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(counter(&run.metrics, "committed_offset", &[]), 2, "{}", run.metrics.render());
    run.cancel.cancel();
    run.handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_over_the_size_limit_dead_letters_its_input() {
    let cfg = kafka("toolarge");
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await.unwrap();
    let run = start(&cfg, runtime(2), None);
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    publisher.publish(vec![doc("big"), doc("small")]).await.unwrap();
    let out = read_until(&cfg, &[Topic::DeadLetter, Topic::Chunks], Duration::from_secs(60), |r| r.len() >= 2).await;
    let dead: Vec<_> = out.iter().filter_map(|r| if let Record::DeadLetter(d) = r { Some(d) } else { None }).collect();
    assert_eq!(dead.len(), 1, "the oversized output dead-letters its input: {out:?}");
    assert_eq!(dead[0].error_kind, "publish_refused");
    assert!(dead[0].error.contains("message size limit"), "{}", dead[0].error);
    assert_eq!(out.iter().filter(|r| matches!(r, Record::Chunk(_))).count(), 1, "the small one went through");
    run.cancel.cancel();
    run.handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scaling_step_moves_only_the_partitions_that_change_owner() {
    let mut cfg = kafka("coop");
    cfg.partitions = 6;
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await.unwrap();
    let first = start(&cfg, runtime(2), None);
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    publisher.publish((0..6).map(|i| doc(&format!("before-{i}"))).collect()).await.unwrap();
    read_until(&cfg, &[Topic::Chunks], Duration::from_secs(60), |r| r.len() >= 6).await;
    assert_eq!(counter(&first.metrics, "rebalanced_partitions_total", &[("kind", "assign")]), 6);
    // A second replica joins: half the partitions move; the first member keeps the other half throughout.
    let second = start(&cfg, runtime(2), None);
    let started = Instant::now();
    while counter(&second.metrics, "rebalanced_partitions_total", &[("kind", "assign")]) < 3
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let revoked = counter(&first.metrics, "rebalanced_partitions_total", &[("kind", "revoke")]);
    let moved = counter(&second.metrics, "rebalanced_partitions_total", &[("kind", "assign")]);
    assert_eq!(moved, 3, "{}", second.metrics.render());
    assert_eq!(revoked, 3, "only the moved partitions are revoked from the first member (eager revokes all 6)");
    publisher.publish((0..6).map(|i| doc(&format!("after-{i}"))).collect()).await.unwrap();
    let chunks = read_until(&cfg, &[Topic::Chunks], Duration::from_secs(60), |r| r.len() >= 12).await;
    assert_eq!(chunks.len(), 12);
    for r in [first, second] {
        r.cancel.cancel();
        r.handle.await.unwrap().unwrap();
    }
}

/// The chaos suite's "broker unreachable" scenario left generate idle for good: with every slot taken its
/// partitions were paused; the broker went away long enough for the member's session to end (its partitions
/// lost); the slot freed while it had no partition (nothing to resume); the same partitions came back
/// still paused. Partitions must be fetched again after such an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_paused_when_the_broker_went_away_are_fetched_again_when_it_is_back() {
    let scope = common::Scope::new("pauselost");
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let broker = broker::Broker::start(&logs).await;
    let mut cfg = kafka("pauselost");
    cfg.brokers = broker.brokers();
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await.unwrap();
    let run = start(&cfg, runtime(1), None);
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    // One slot, taken for 15 s by an input that makes nothing: the partitions are paused.
    publisher.publish(vec![doc("quiet:15000")]).await.unwrap();
    let started = Instant::now();
    while counter(&run.metrics, "records_in_total", &[]) < 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "the input was not consumed: {}", run.metrics.render());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The broker away 25 s: the session (6 s) ends, the slot frees meanwhile, then the broker is back.
    broker.front.down();
    tokio::time::sleep(Duration::from_secs(25)).await;
    broker.front.up().await;
    let revoked = counter(&run.metrics, "rebalanced_partitions_total", &[("kind", "revoke")]);
    publisher.publish(vec![doc("after-the-outage")]).await.unwrap();
    let chunks = read_until(&cfg, &[Topic::Chunks], Duration::from_secs(90), |r| !r.is_empty()).await;
    assert_eq!(
        chunks.len(),
        1,
        "the input published after the outage was never consumed ({revoked} partitions revoked during it)"
    );
    run.cancel.cancel();
    run.handle.await.unwrap().unwrap();
}

/// Issue 14, defect 2: nothing replayed dead letters. `distillery replay-dead-letters` sends those of a
/// transient cause back to their topic, once; permanent ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_dead_letters_are_replayed_once() {
    let cfg = kafka("replay");
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await.unwrap();
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    let input = |key: &str| {
        let Record::Document(d) = doc(key) else { unreachable!() };
        Input {
            topic: Topic::Documents,
            partition: 0,
            offset: 7,
            key: Some(d.id.clone().into()),
            payload: distillery_core::Payload::Record(Record::Document(d)),
        }
    };
    let transient = distillery_runtime::dead_letter("extract", &input("outage"), "store_read", "S3 was down", 4);
    let permanent = distillery_runtime::dead_letter("extract", &input("bug"), "panic", "the stage panicked", 1);
    publisher.publish(vec![Record::DeadLetter(transient), Record::DeadLetter(permanent)]).await.unwrap();
    let replay = || {
        let out = std::process::Command::new(common::binary())
            .args(["replay-dead-letters", "--brokers", &cfg.brokers, "--prefix", &cfg.topic_prefix])
            .env("DISTILLERY__KAFKA__GROUP_PREFIX", &cfg.group_prefix)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = replay();
    assert_eq!(first["replayed"]["store_read"], 1, "{first}");
    assert_eq!(first["skipped"], 1, "the panic stays dead-lettered: {first}");
    let second = replay();
    assert_eq!(second["read"], 0, "nothing is replayed twice: {second}");
    // The replayed document is on its topic (a new group's first fetch can take over 20 s on this broker, so
    // one reader waits for the first record and then keeps reading for a while): exactly one came back.
    let lingered = std::sync::Mutex::new(None::<Instant>);
    let docs = read_until(&cfg, &[Topic::Documents], Duration::from_secs(120), |r| {
        let mut since = lingered.lock().unwrap();
        if r.is_empty() {
            return false;
        }
        since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(15)
    })
    .await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    let Record::Document(d) = &docs[0] else { panic!("{docs:?}") };
    assert_eq!(d.source.key, "outage");
}

/// A read to the end (what `distillery rejudge --kafka-config` and `replay-dead-letters` read with) returns
/// every record the topic held when it opened, over every partition, and nothing published after; its
/// group, once committed, starts the next read where this one ended. (The broker here reports a partition's
/// high watermark as its number of batches: a read that trusted it ended after each partition's first record.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_to_the_end_returns_every_record_the_topic_held_and_its_group_resumes_after_them() {
    let cfg = kafka("toend");
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await.unwrap();
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    let draft = |i: usize| {
        let mut d = fixtures::draft();
        d.id = format!("draft-{i}");
        d.context_id = format!("context-{}", i % 7);
        Record::Draft(d)
    };
    publisher.publish((0..30).map(draft).collect()).await.unwrap();
    let group = format!("{}rejudge-test", cfg.group_prefix);
    let ids = |mut read: distillery_kafka::replay::TopicToEnd| async move {
        let mut ids = Vec::new();
        while let Some((_, _, payload)) = read.next().await.unwrap() {
            let Record::Draft(d) = Codec::global().decode(&payload, Topic::Drafts.record_kind()).unwrap() else {
                panic!("not a draft")
            };
            ids.push(d.id);
        }
        read.commit().unwrap();
        ids.sort();
        ids
    };
    let first = distillery_kafka::replay::TopicToEnd::open(&cfg, Topic::Drafts, &group).await.unwrap();
    publisher.publish((30..35).map(draft).collect()).await.unwrap();
    let mut want: Vec<String> = (0..30).map(|i| format!("draft-{i}")).collect();
    want.sort();
    assert_eq!(ids(first).await, want, "every record held when the read opened, none published after");
    let second = distillery_kafka::replay::TopicToEnd::open(&cfg, Topic::Drafts, &group).await.unwrap();
    let mut later: Vec<String> = (30..35).map(|i| format!("draft-{i}")).collect();
    later.sort();
    assert_eq!(ids(second).await, later, "the group resumes where its committed read ended");
}
